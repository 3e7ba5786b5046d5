// Gradient accumulation and mixed precision in the training loop (issue 14), through `locus pretrain`.
//
// - optim.accumulate = 2 at batch 8 gives the update of one batch of 16: the same student weights after a
//   step (drop path off, so both draw no masks; the loader's batches are functions of the sample indices).
// - train.precision = bf16 trains on cpu (finite losses that differ from fp32's); fp16 on a cpu without a
//   float16 matmul fails with one line naming train.precision.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { precisionUnsupported, tidy } from '../src/engine/index.js';
import { disposeCheckpoint, loadCheckpoint } from '../src/train/checkpoint.js';
import { runLocus } from './fixtures/cli.js';
import { TINY_DINO } from './fixtures/tiny.js';

const tmp = mkdtempSync(join(tmpdir(), 'locus-amp-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const sets = (xs: string[]) => xs.flatMap((s) => ['--set', s]);
const BASE = [
  ...TINY_DINO,
  'model.dropPath=0',
  'data.dataset.length=48',
  'data.dataset.size=32',
  'data.workers=1',
  'train.progress=none',
];

const locus = (args: string[]) => runLocus(tmp, args, { timeout: 240_000 });
const metrics = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
const lastCheckpoint = (dir: string) => {
  const files = readdirSync(join(dir, 'checkpoints')).filter((f) => f.endsWith('.safetensors'));
  return join(dir, 'checkpoints', files.sort().at(-1) as string);
};

test('optim.accumulate=2 at batch 8 gives the same update as one batch of 16', () => {
  const a = join(tmp, 'acc2');
  const b = join(tmp, 'big');
  const ra = locus([
    'pretrain',
    '--steps',
    '1',
    ...sets([...BASE, 'optim.batchSize=8', 'optim.accumulate=2']),
    '--out',
    a,
  ]);
  assert.equal(ra.code, 0, ra.stderr);
  const rb = locus(['pretrain', '--steps', '1', ...sets([...BASE, 'optim.batchSize=16']), '--out', b]);
  assert.equal(rb.code, 0, rb.stderr);
  const [ma, mb] = [metrics(a)[0], metrics(b)[0]];
  assert.ok(Math.abs(ma.loss - mb.loss) < 1e-5 * Math.abs(mb.loss), `loss ${ma.loss} vs ${mb.loss}`);
  const ca = loadCheckpoint(lastCheckpoint(a));
  const cb = loadCheckpoint(lastCheckpoint(b));
  let worst = 0;
  let moved = 0;
  for (const [k, t] of cb.student) {
    const u = ca.student.get(k);
    assert.ok(u, `student.${k} missing from the accumulated run`);
    // The key third of qkv.bias has a zero gradient in exact arithmetic (softmax ignores a constant per
    // query), so Adam turns its rounding noise into ±lr steps: compare its query and value thirds only.
    const parts = k.endsWith('attn.qkv.bias')
      ? [0, 2].map((i) => [i * (t.shape[0] / 3), t.shape[0] / 3])
      : [[0, t.shape[0]]];
    for (const [start, len] of parts)
      worst = Math.max(
        worst,
        tidy(() => {
          const [x, y] = [u.narrow(0, start, len), t.narrow(0, start, len)];
          return x.sub(y).abs().maxAll().item() / Math.max(1e-12, y.abs().maxAll().item());
        }),
      );
  }
  // the Adam state carries the gradient itself: exp_avg = (1 − β1)·g after one step
  for (const [k, t] of cb.optim) {
    const u = ca.optim.get(k);
    assert.ok(u, `optim.${k} missing`);
    const scale = tidy(() => t.abs().maxAll().item());
    if (scale > 0) moved++;
    worst = Math.max(
      worst,
      tidy(() => u.sub(t).abs().maxAll().item() / Math.max(1e-12, scale)),
    );
  }
  assert.ok(moved > 0, 'no optimizer state: the step did nothing');
  assert.ok(worst < 1e-4, `accumulated vs big batch: max rel diff ${worst}`);
  for (const c of [ca, cb]) disposeCheckpoint(c);
  // and a different micro-batching of a different batch does differ (the comparison can fail)
  const d = join(tmp, 'acc1');
  assert.equal(locus(['pretrain', '--steps', '1', ...sets([...BASE, 'optim.batchSize=8']), '--out', d]).code, 0);
  assert.notEqual(metrics(d)[0].loss, mb.loss);
});

test('train.precision=bf16 trains on cpu; its losses are finite and differ from fp32', () => {
  const a = join(tmp, 'bf16');
  const b = join(tmp, 'fp32');
  const ra = locus([
    'pretrain',
    '--steps',
    '2',
    ...sets([...BASE, 'optim.batchSize=8', 'train.precision=bf16']),
    '--out',
    a,
  ]);
  assert.equal(ra.code, 0, ra.stderr);
  assert.equal(locus(['pretrain', '--steps', '2', ...sets([...BASE, 'optim.batchSize=8']), '--out', b]).code, 0);
  const [la, lb] = [metrics(a).map((r) => r.loss), metrics(b).map((r) => r.loss)];
  assert.ok(la.every(Number.isFinite));
  assert.notDeepEqual(la, lb);
  assert.ok(Math.abs(la[0] - lb[0]) < 0.05 * Math.abs(lb[0]), `bf16 ${la[0]} vs fp32 ${lb[0]}`);
});

const fp16Why = precisionUnsupported('fp16', 'cpu');
test('train.precision=fp16 on a cpu without float16 matmul: one line naming train.precision', {
  skip: fp16Why === null && 'this cpu libtorch has float16 matmul',
}, () => {
  const r = locus([
    'pretrain',
    '--steps',
    '1',
    ...sets([...BASE, 'optim.batchSize=8', 'train.precision=fp16']),
    '--out',
    join(tmp, 'fp16'),
  ]);
  assert.notEqual(r.code, 0);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('locus: error'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] as string, /train\.precision fp16/);
});
