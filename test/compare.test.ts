// The method comparison's miniature (CI runs it; the real comparison runs outside CI): two methods,
// one seed, a few steps of a small model, tiny probes; the table and the claim section are written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'locus-compare-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('compare --mini: every probe for dino and loca and a random init, a table with the claim section', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/bench/compare.js'), '--mini', '--out', tmp], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, LOCUS_THREADS: '1', MALLOC_ARENA_MAX: '1' },
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr.split('\n').slice(-5).join('\n'));
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as {
    runs: { method: string; ok: boolean; evals: Record<string, string> }[];
  };
  assert.deepEqual(
    summary.runs.map((x) => [x.method, x.ok]),
    [
      ['dino', true],
      ['loca', true],
    ],
  );
  for (const run of summary.runs)
    for (const k of ['knn', 'linear', 'seg', 'parts', 'location'])
      assert.doesNotMatch(run.evals[k] ?? 'missing', /error|missing/, k);
  const md = readFileSync(join(tmp, 'COMPARISON.md'), 'utf8');
  // a row per method plus the untrained baseline, every cell a number
  for (const m of ['dino', 'loca', '\\*random init\\*']) {
    const row = md.split('\n').find((l) => new RegExp(`^\\| ${m} \\|`).test(l));
    assert.ok(row, `no row for ${m}`);
    const cells = row.split('|').slice(3, -1);
    assert.equal(cells.length, 10);
    for (const c of cells.slice(0, 9)) assert.match(c.trim(), /^\d+\.\d$/, `${m}: ${c}`);
  }
  assert.match(md, /\*\*loca − dino\*\*: seg mIoU [+-]\d/);
  assert.ok(existsSync(join(tmp, 'comparison.html')));
});
