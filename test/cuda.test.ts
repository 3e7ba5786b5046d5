// On a CUDA device (skipped without one; CI has none, the GPU machine runs it): the ViT computes the same on the
// GPU as on the CPU, forward and backward; DINO's first steps give the CPU's losses; every method trains on cuda
// and its checkpoint is evaluated on the CPU.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { cudaAvailable, manualSeed, randn, tidy } from '../src/engine/index.js';
import { methodNames } from '../src/methods/index.js';
import { createVit } from '../src/nn/index.js';
import { TINY_DINO } from './fixtures/tiny.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'bin/locus.js');
const skip = !cudaAvailable() && 'no CUDA device (a CUDA build of the addon on a GPU machine runs these)';
const tmp = mkdtempSync(join(tmpdir(), 'locus-cuda-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Largest |a − b| over max(1, |b|)-scaled entries. */
function maxRelErr(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++)
    m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)) / Math.max(1, Math.abs(b[i] as number)));
  return m;
}

test('ViT forward and backward on cuda match the cpu', { skip }, () => {
  manualSeed(0);
  const cfg = { imgSize: 32, patchSize: 8, dim: 64, depth: 2, heads: 4, dropPathRate: 0 };
  const cpu = createVit(cfg);
  const gpu = createVit(cfg);
  gpu.loadStateDict(cpu.stateDict());
  gpu.to(undefined, 'cuda');
  const x = randn([3, 3, 32, 32]);
  const run = (m: typeof cpu, input: typeof x) =>
    tidy(() => {
      const o = m.forward(input, { attention: true });
      // a scalar that touches CLS, patches and the attention maps
      o.cls
        .pow(2)
        .sum()
        .add(o.patches.tanh().sum())
        .add(o.attention?.mul(3).sum() ?? 0)
        .backward();
      return [o.cls, o.patches, o.attention].map((t) => t?.to('float32', 'cpu').toArray() as Float32Array);
    });
  const a = run(cpu, x);
  const b = run(gpu, x.to(undefined, 'cuda'));
  assert.equal(b.length, 3);
  // TF32 may be on for cuDNN convolutions (the patch embedding): 10-bit mantissa, hence 2e-3
  for (let i = 0; i < 3; i++) assert.ok(maxRelErr(b[i] as Float32Array, a[i] as Float32Array) < 2e-3, `output ${i}`);
  const grads = new Map(gpu.namedParameters());
  for (const [name, p] of cpu.namedParameters()) {
    const g = grads.get(name)?.grad;
    assert.ok(p.grad && g, `${name} has a gradient on both devices`);
    assert.equal(g.device.startsWith('cuda'), true, `${name}.grad lives on ${g.device}`);
    const err = maxRelErr(g.to('float32', 'cpu').toArray() as Float32Array, p.grad.toArray() as Float32Array);
    assert.ok(err < 5e-3, `${name}.grad: cuda vs cpu max rel. error ${err}`);
  }
});

const TINY = [
  ...TINY_DINO,
  'optim.batchSize=8',
  'data.dataset.length=32',
  'data.dataset.size=32',
  'data.workers=1',
  'train.progress=none',
];

function pretrain(name: string, method: string, steps: number, extra: string[], env: Record<string, string> = {}) {
  const out = join(tmp, name);
  const sets = [...TINY, ...extra].flatMap((s) => ['--set', s]);
  const where = existsSync(join(out, 'config.json')) ? ['--resume', out] : ['--out', out];
  const r = spawnSync(
    process.execPath,
    [BIN, 'pretrain', '--method', method, '--steps', String(steps), '--seed', '3', ...sets, ...where, '--json'],
    { encoding: 'utf8', env: { ...process.env, MALLOC_ARENA_MAX: '1', ...env }, timeout: 300_000 },
  );
  assert.equal(r.status, 0, `${method}: ${r.stderr}`);
  const losses = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { loss: number }).loss);
  return { out, losses };
}

test('DINO: the first steps on cuda give the cpu losses (same seed, same batches)', { skip }, () => {
  // no stochastic depth: its random draws would come from different generators on the two devices
  const cpu = pretrain('dino-cpu', 'dino', 4, ['train.device=cpu', 'model.dropPath=0']);
  const gpu = pretrain('dino-cuda', 'dino', 4, ['train.device=cuda', 'model.dropPath=0']);
  assert.equal(gpu.losses.length, 4);
  for (let i = 0; i < 4; i++) {
    const [c, g] = [cpu.losses[i] as number, gpu.losses[i] as number];
    assert.ok(Math.abs(c - g) < 2e-3 * Math.max(1, Math.abs(c)), `step ${i + 1}: cpu ${c} vs cuda ${g}`);
  }
});

test('resume on cuda continues exactly: the GPU generator (stochastic depth) is checkpointed', { skip }, () => {
  // depth 2 with drop-path 0.5: the second block's drop mask is drawn on the GPU at every step
  const extra = ['train.device=cuda', 'model.depth=2', 'model.dropPath=0.5', 'train.ckptEvery=100'];
  const whole = pretrain('resume-whole', 'dino', 6, extra);
  pretrain('resume-split', 'dino', 6, extra, { LOCUS_TEST_SIGNAL_AT_STEP: '3' }); // SIGTERM after step 3
  const split = pretrain('resume-split', 'dino', 6, extra); // --resume
  assert.equal(split.losses.length, 6);
  // CUDA atomics may reorder sums in the backward pass: equal up to float noise, not bit for bit
  for (let i = 0; i < 6; i++) {
    const [a, b] = [whole.losses[i] as number, split.losses[i] as number];
    assert.ok(Math.abs(a - b) < 1e-5 * Math.max(1, Math.abs(a)), `step ${i + 1}: ${a} vs resumed ${b}`);
  }
});

for (const method of methodNames())
  test(`${method}: trains on cuda and its checkpoint is evaluated on the cpu`, { skip }, () => {
    const { out, losses } = pretrain(`m-${method}`, method, 3, ['train.device=cuda']);
    assert.equal(losses.length, 3);
    assert.ok(
      losses.every((l) => Number.isFinite(l)),
      `losses ${losses}`,
    );
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { train: { device: string } };
    assert.equal(config.train.device, 'cuda');
    const r = spawnSync(
      process.execPath,
      [
        BIN,
        'eval',
        'location',
        '--checkpoint',
        out,
        '--json',
        '--no-save',
        ...['epochs=2', 'train.length=40', 'test.length=20'].flatMap((s) => ['--set', s]),
      ],
      { encoding: 'utf8', env: { ...process.env, MALLOC_ARENA_MAX: '1' }, timeout: 300_000 },
    );
    assert.equal(r.status, 0, `eval: ${r.stderr}`);
    const res = JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, unknown>;
    assert.ok(Object.keys(res).length > 0);
  });
