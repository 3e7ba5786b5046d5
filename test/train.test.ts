// The training runtime through the CLI (child processes, tiny models): exact resume after SIGTERM, NaN
// stops, checksum verification, one-line errors for bad input, no checkpoint ever overwritten; plus the
// config loader (files, --set, presets, messages).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { disposeCheckpoint, loadCheckpoint } from '../src/train/checkpoint.js';
import { configHash, loadConfig, parseSet, resolveConfig } from '../src/train/config.js';
import { type Run, runLocus, TINY_RUN } from './fixtures/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'locus-train-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A tiny DINO: 1-block ViT of width 32 on 32x32 scenes, batch 8, 6 steps per epoch. */
const TINY = [...TINY_RUN, 'dino.freezeLastLayerSteps=3'].flatMap((s) => ['--set', s]);

const locus = (args: string[], env: Record<string, string> = {}): Run => runLocus(tmp, args, { env });

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const metrics = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
const errorLines = (r: Run) => r.stderr.split('\n').filter((l) => l.startsWith('locus: error'));
/** The run's one error line (fails with the whole stderr and exit status otherwise). */
function errorLine(r: Run, what = ''): string {
  assert.notEqual(r.code, 0, `${what}: expected a failure`);
  const lines = errorLines(r);
  assert.equal(lines.length, 1, `${what}: exit ${r.code}, stderr: ${r.stderr}`);
  return lines[0] as string;
}

describe('resume', () => {
  test('20 steps = 10 steps, SIGTERM, --resume to 20: identical step-20 loss and weights', () => {
    const common = ['pretrain', '--steps', '20', ...TINY, '--set', 'train.ckptEvery=7'];
    const a = join(tmp, 'uninterrupted');
    const b = join(tmp, 'interrupted');
    const ra = locus([...common, '--out', a]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.match(ra.stdout, /run directory: .*uninterrupted/);
    assert.match(ra.stdout, /final checkpoint: .*step-000020\.safetensors/);

    // the test hook sends SIGTERM to the process itself after step 10 (the real signal path)
    const rb = locus([...common, '--out', b], { LOCUS_TEST_SIGNAL_AT_STEP: '10' });
    assert.equal(rb.code, 0, `SIGTERM exits 0: ${rb.stderr}`);
    assert.match(rb.stderr, /SIGTERM received/);
    assert.match(rb.stdout, /final checkpoint: .*step-000010\.safetensors/);
    assert.equal(metrics(b).at(-1)?.step, 10);

    const rc = locus([...common, '--resume', b]);
    assert.equal(rc.code, 0, rc.stderr);
    assert.match(rc.stdout, /step-000020\.safetensors/);

    const ma = metrics(a);
    const mb = metrics(b);
    assert.deepEqual(
      mb.map((r) => r.step),
      Array.from({ length: 20 }, (_, i) => i + 1),
      'metrics rows 1..20 once each',
    );
    for (let i = 0; i < 20; i++) assert.equal(mb[i]?.loss, ma[i]?.loss, `loss at step ${i + 1}`);

    const ca = loadCheckpoint(a);
    const cb = loadCheckpoint(b);
    try {
      assert.equal(ca.info.step, 20);
      assert.equal(cb.info.step, 20);
      for (const g of ['student', 'teacher', 'optim'] as const) {
        assert.deepEqual([...ca[g].keys()], [...cb[g].keys()]);
        for (const [k, t] of ca[g]) {
          const u = cb[g].get(k);
          assert.ok(u);
          assert.ok(Buffer.from(t.toFloat32().buffer).equals(Buffer.from(u.toFloat32().buffer)), `${g}.${k} differs`);
        }
      }
    } finally {
      disposeCheckpoint(ca);
      disposeCheckpoint(cb);
    }
  });

  test('--resume: other training math is refused, a longer run is allowed', () => {
    const dir = join(tmp, 'short');
    assert.equal(locus(['pretrain', '--steps', '3', ...TINY, '--out', dir]).code, 0);
    const r = locus(['pretrain', '--steps', '3', ...TINY, '--set', 'optim.lr=0.01', '--resume', dir]);
    assert.notEqual(r.code, 0);
    assert.match(errorLine(r), /optim\.lr/);
    const done = locus(['pretrain', '--resume', dir]);
    assert.equal(done.code, 0);
    assert.match(done.stderr, /already complete/, `exit ${done.code}, stderr: ${done.stderr}`);
    // a longer run is allowed: the schedules are recomputed for the new length
    const longer = locus(['pretrain', '--resume', dir, '--steps', '5']);
    assert.equal(longer.code, 0, longer.stderr);
    assert.match(longer.stderr, /optim\.steps 3 → 5/);
    assert.match(longer.stdout, /step-000005\.safetensors/);
    assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).optim.steps, 5);
  });
});

describe('failures', () => {
  test('a non-finite loss stops with the step and the last good checkpoint, which stays intact', () => {
    const dir = join(tmp, 'nan');
    const r = locus(['pretrain', '--steps', '20', ...TINY, '--set', 'train.ckptEvery=4', '--out', dir], {
      LOCUS_TEST_NAN_AT_STEP: '7',
    });
    const line = errorLine(r, 'NaN at step 7');
    assert.match(line, /non-finite loss \(NaN\) at step 7/);
    assert.match(line, /step-000004\.safetensors/);
    assert.deepEqual(readdirSync(join(dir, 'checkpoints')), ['step-000004.safetensors']);
    const c = loadCheckpoint(dir); // checksum verified
    assert.equal(c.info.step, 4);
    disposeCheckpoint(c);

    // a real divergence: a huge learning rate, no checkpoint yet
    const big = locus([
      'pretrain',
      '--steps',
      '10',
      ...TINY,
      '--set',
      'optim.lr=1e30',
      '--set',
      'optim.warmupSteps=0',
      '--out',
      join(tmp, 'nan2'),
    ]);
    assert.notEqual(big.code, 0);
    assert.match(errorLine(big), /non-finite loss \(\w+\) at step \d+; .*none/);
  });

  test('a corrupted checkpoint fails its checksum with one clear line', () => {
    const dir = join(tmp, 'corrupt');
    assert.equal(locus(['pretrain', '--steps', '2', ...TINY, '--out', dir]).code, 0);
    const file = join(dir, 'checkpoints', 'step-000002.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 0x40;
    writeFileSync(file, bytes);
    for (const args of [
      ['pretrain', '--steps', '4', ...TINY, '--resume', dir],
      ['eval', 'knn', '--checkpoint', file],
    ]) {
      const r = locus(args);
      assert.notEqual(r.code, 0);
      assert.match(errorLine(r), /corrupt checkpoint .*SHA-256 mismatch/);
    }
  });

  test('bad input: one line naming the problem, non-zero exit, existing checkpoints untouched', () => {
    const dir = join(tmp, 'existing');
    assert.equal(locus(['pretrain', '--steps', '2', ...TINY, '--out', dir]).code, 0);
    const file = join(dir, 'checkpoints', 'step-000002.safetensors');
    const before = sha(file);
    mkdirSync(join(tmp, 'empty'));
    const cases: [string[], RegExp][] = [
      [['--method', 'nope'], /unknown method 'nope' \(allowed: dino/],
      [['--set', 'optim.lr=-1'], /optim\.lr must be > 0 \(got -1\)/],
      [['--set', 'dino.localSize=18'], /dino\.localSize 18 is not divisible by model\.patchSize 4/],
      [['--set', 'model.imgSize=30'], /model\.imgSize 30 is not divisible by model\.patchSize 4/],
      [
        ['--set', 'data.dataset={"kind":"folder","root":"/no/such/folder"}'],
        /data\.dataset\.root '\/no\/such\/folder' does not exist/,
      ],
      [['--set', 'model.depht=2'], /unknown key model\.depht \(allowed: preset, imgSize/],
      [['--out', dir], /already holds a run; use --resume/],
      [['--resume', join(tmp, 'empty')], /not a run directory/],
    ];
    for (const [args, re] of cases) {
      const r = locus(['pretrain', '--steps', '2', ...TINY, ...args]);
      assert.match(errorLine(r, args.join(' ')), re);
    }
    assert.equal(sha(file), before, 'the existing checkpoint is unchanged');
    assert.deepEqual(readdirSync(join(dir, 'checkpoints')), ['step-000002.safetensors']);
  });
});

describe('distributed', () => {
  test('--nproc 2: two local ranks train one run (rank 0 writes it)', () => {
    const dir = join(tmp, 'nproc2');
    const r = locus(['pretrain', '--nproc', '2', '--steps', '4', ...TINY, '--set', 'train.ckptEvery=2', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /final checkpoint: .*step-000004\.safetensors/);
    assert.deepEqual(readdirSync(join(dir, 'checkpoints')), ['step-000002.safetensors', 'step-000004.safetensors']);
    assert.equal(metrics(dir).length, 4, 'one metrics row per step (rank 0 only)');
  });
});

describe('config', () => {
  test('defaults, YAML file, --set (JSON values, dotted paths), presets, hash', () => {
    const d = resolveConfig({});
    assert.equal(d.method, 'dino');
    assert.equal(d.model.imgSize % d.model.patchSize, 0);
    assert.equal((d.dino as { localSize: number }).localSize, 16);
    const yaml = join(tmp, 'c.yaml');
    writeFileSync(yaml, 'optim:\n  lr: 0.001\nmodel:\n  preset: small\n  depth: 2\n');
    const c = loadConfig({ file: yaml, sets: ['dino.globalScale=[0.3,1]', 'train.progress=none'], steps: 7 });
    assert.equal(c.optim.lr, 0.001);
    assert.equal(c.optim.steps, 7);
    assert.deepEqual([c.model.dim, c.model.depth, c.model.heads], [384, 2, 6]);
    assert.deepEqual((c.dino as { globalScale: number[] }).globalScale, [0.3, 1]);
    assert.equal(c.train.progress, 'none');
    assert.deepEqual(parseSet('a.b=hello'), [['a', 'b'], 'hello']);
    assert.deepEqual(parseSet('a=null'), [['a'], null]);
    // the hash covers the training math, not logging
    assert.equal(configHash(loadConfig({ sets: ['train.logEvery=5'] })), configHash(d));
    assert.notEqual(configHash(loadConfig({ sets: ['optim.lr=0.1'] })), configHash(d));
    assert.throws(() => loadConfig({ sets: ['optim'] }), /--set expects key=value/);
    assert.ok(!existsSync(join(tmp, 'runs')), 'config loading creates nothing');
  });

  test("a method's own optimiser defaults replace DINO's; values the user gives still win", () => {
    // SCRL's 200-epoch reference config (methods.md §4): LARS lr 0.45, cosine to 0, wd 1e-6, no clip; its EMA
    // 0.97 is the budget-aware one (teacherMomentum null → 0.970 at the default 300 steps)
    const s = resolveConfig({ method: 'scrl' }).optim;
    assert.deepEqual(
      [s.lr, s.minLr, s.weightDecay, s.weightDecayEnd, s.teacherMomentum, s.clip],
      [0.45, 0, 1e-6, 1e-6, null, 0],
    );
    assert.equal(s.batchSize, 64, 'fields the method does not set keep the shared defaults');
    const u = loadConfig({ sets: ['method=scrl', 'optim.lr=0.2', 'optim.clip=1'] }).optim;
    assert.deepEqual([u.lr, u.clip, u.weightDecay], [0.2, 1, 1e-6]);
    const l = resolveConfig({ method: 'loca' }).optim;
    assert.deepEqual([l.weightDecay, l.weightDecayEnd, l.lr], [0.1, 0.1, resolveConfig({}).optim.lr]);
    const d = resolveConfig({}).optim;
    assert.deepEqual([d.lr, d.weightDecay, d.weightDecayEnd, d.clip], [5e-4, 0.04, 0.4, 3], 'DINO keeps its own');
  });
});
