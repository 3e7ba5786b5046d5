// The method comparison's miniature (CI runs it; the real comparison runs outside CI): the calibration
// rows (supervised, random init), dino and byol on both networks, one seed, a few steps of a small model,
// tiny probes; the table, the sensitivity row and the claim section are written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'locus-compare-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('compare --mini: every probe for supervised, dino and byol (both networks) and a random init, the sensitivity row and the claims', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/bench/compare.js'), '--mini', '--out', tmp], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, LOCUS_THREADS: '1', MALLOC_ARENA_MAX: '1' },
    timeout: 600_000,
  });
  assert.equal(r.status, 0, r.stderr.split('\n').slice(-5).join('\n'));
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as {
    runs: { row: string; ok: boolean; evals: Record<string, string> }[];
  };
  assert.deepEqual(
    summary.runs.map((x) => [x.row, x.ok]),
    [
      ['supervised', true],
      ['dino (teacher, ref)', true],
      ['dino (student)', true],
      ['byol (student, ref)', true],
      ['byol (teacher)', true],
      ['random init', true],
    ],
  );
  for (const run of summary.runs)
    for (const k of ['knn', 'linear', 'knn-items', 'linear-items', 'seg', 'nnseg', 'parts', 'location'])
      assert.doesNotMatch(run.evals[k] ?? 'missing', /error|missing/, `${run.row}: ${k}`);
  const md = readFileSync(join(tmp, 'COMPARISON.md'), 'utf8');
  // a row per method and network plus the untrained baseline, every probe cell a number (with its interval)
  for (const m of [
    'supervised',
    'dino \\(teacher, ref\\)',
    'dino \\(student\\)',
    'byol \\(student, ref\\)',
    'random init',
  ]) {
    const row = md.split('\n').find((l) => new RegExp(`^\\| ${m} \\|`).test(l));
    assert.ok(row, `no row for ${m}`);
    const cells = row.split('|').slice(3, -1);
    assert.equal(cells.length, 18);
    for (const c of cells.slice(0, 17)) assert.match(c.trim(), /^\d+\.\d( \(±\d+\.\d\))?$/, `${m}: ${c}`);
    assert.match(cells[0] as string, /\(±\d+\.\d\)/, 'k-NN carries its interval');
  }
  const gap = md.split('\n').find((l) => l.startsWith('| **supervised − random init**')) as string;
  assert.ok(gap, 'no sensitivity row');
  assert.equal(
    gap
      .split('|')
      .slice(3, -1)
      .filter((c) => /^[+-]\d+\.\d$/.test(c.trim())).length,
    17,
  );
  assert.match(md, /\*\*selfpatch\*\*: not in this comparison/);
  assert.ok(existsSync(join(tmp, 'comparison.html')));
});

test('compare --from: one table from saved sittings (seeds side by side), refused across budgets', () => {
  // The miniature above saved its records beside its table. A second sitting: the same runs as seed 1, k-NN +10 points.
  const first = JSON.parse(readFileSync(join(tmp, 'COMPARISON.json'), 'utf8')) as {
    steps: number;
    seeds: number[];
    records: { seed: number; evals: { knn: { top1: number; by_feature: { cls: { top1: number } } } } }[];
    random: { seed: number }[];
  };
  const knn0 = first.records.find((r) => (r as { method?: string }).method === 'dino')?.evals.knn.by_feature.cls
    .top1 as number;
  const second = structuredClone(first);
  second.seeds = [1];
  for (const r of [...second.records, ...second.random]) r.seed = 1;
  for (const r of second.records) r.evals.knn.by_feature.cls.top1 += 0.1;
  writeFileSync(join(tmp, 'second.json'), JSON.stringify(second));
  const merge = (files: string[]) =>
    spawnSync(
      process.execPath,
      [join(ROOT, 'dist/bench/compare.js'), '--from', files.join(','), '--md', join(tmp, 'merged.md')],
      { cwd: ROOT, encoding: 'utf8' },
    );
  const r = merge([join(tmp, 'COMPARISON.json'), join(tmp, 'second.json')]);
  assert.equal(r.status, 0, r.stderr);
  const md = readFileSync(join(tmp, 'merged.md'), 'utf8');
  const row = md.split('\n').find((l) => l.startsWith('| dino (teacher, ref) |')) as string;
  // 2 seeds; k-NN mean of x and x + 10 points, sample std √50 ≈ 7.1 points; the interval half-width after it
  assert.match(row, /^\| dino \(teacher, ref\) \| 2 \| /);
  assert.match(
    row.split('|')[3]?.trim() as string,
    new RegExp(`^${(100 * knn0 + 5).toFixed(1)} ± 7\\.1 \\(±\\d+\\.\\d\\)$`),
  );
  assert.match(md, /^\| random init \| 2 \| /m);
  assert.match(md, /seeds: 0, 1;/);
  assert.match(md, /from 2 saved sittings/);

  second.steps = first.steps + 1;
  writeFileSync(join(tmp, 'other-budget.json'), JSON.stringify(second));
  const bad = merge([join(tmp, 'COMPARISON.json'), join(tmp, 'other-budget.json')]);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /not one budget/);
});
