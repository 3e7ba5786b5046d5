// The zoo comparison: `npm run compare -- --weights a.pth,b.safetensors --runs RUN` evaluates off-the-shelf
// checkpoints (saved by Debian's PyTorch) and a Locus run with the probes into one table, a random init of
// each architecture in the row after its checkpoints.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const tmp = mkdtempSync(join(tmpdir(), 'locus-zoo-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const env = { ...process.env, LOCUS_THREADS: '1', MALLOC_ARENA_MAX: '1' };

test('compare --weights: checkpoints and a run, every asked probe, random init beside each architecture', {
  skip: hasTorch ? false : 'Debian python3-torch is not installed',
}, () => {
  execFileSync('/usr/bin/python3', [join(ROOT, 'test/fixtures/torch_checkpoints.py'), tmp], { stdio: 'pipe' });
  const run = join(tmp, 'run');
  execFileSync(
    process.execPath,
    [
      join(ROOT, 'bin/locus.js'),
      'pretrain',
      '--steps',
      '2',
      '--out',
      run,
      ...['model.depth=1', 'model.dim=32', 'model.heads=2', 'optim.batchSize=8', 'data.workers=0'].flatMap((s) => [
        '--set',
        s,
      ]),
    ],
    { stdio: 'pipe', env },
  );
  const md = join(tmp, 'ZOO.md');
  const weights = ['dino_checkpoint.pth', 'timm.safetensors', 'missing.pth'].map((f) => join(tmp, f)).join(',');
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'dist/bench/compare.js'),
      '--weights',
      weights,
      '--runs',
      run,
      '--mini',
      '--evals',
      'knn,location',
      '--md',
      md,
    ],
    { cwd: ROOT, encoding: 'utf8', env, timeout: 300_000 },
  );
  assert.equal(r.status, 0, r.stderr.split('\n').slice(-5).join('\n'));
  const rows = readFileSync(md, 'utf8')
    .split('\n')
    .filter((l) => /^\| (`|\*random)/.test(l));
  const names = rows.map((l) => l.split('|')[1]?.trim());
  assert.deepEqual(names, [
    '`dino_checkpoint.pth`',
    '`timm.safetensors`',
    '*random init*',
    '`missing.pth`',
    '`run`',
    '*random init*',
  ]);
  const cells = (l: string) =>
    l
      .split('|')
      .slice(5, -1)
      .map((c) => c.trim());
  for (const i of [0, 1, 2, 4, 5]) {
    const c = cells(rows[i] as string);
    assert.equal(c.length, 9);
    assert.match(c[0] as string, /^\d+\.\d$/, `k-NN of ${names[i]}`);
    assert.match(c[8] as string, /^\d+\.\d$/, `location of ${names[i]}`);
    assert.equal(c[2], '–'); // seg was not asked for
  }
  assert.match(rows[0] as string, /weights \(teacher\/backbone\.\) \| dim 128 · depth 2 · heads 2 · patch 8 · 32 px/);
  assert.match(rows[3] as string, /failed: .*missing\.pth' does not exist/);
  assert.match(rows[4] as string, /dino run, 2 steps \| dim 32 · depth 1/);
  // two different checkpoints of one architecture: different numbers are possible, the random row sits after both
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as { rows: { ok: boolean }[] };
  assert.deepEqual(
    summary.rows.map((x) => x.ok),
    [true, true, true, false, true, true],
  );
});
