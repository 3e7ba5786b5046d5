// Engine ops: creation and read-back per dtype, hand-computed values for the ops a ViT and its data
// pipeline use, deterministic freeing (tidy/keep/dispose), and errors that are JS Errors, never aborts.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  arange,
  cat,
  conv2d,
  crossEntropy,
  dispose,
  eye,
  full,
  gridSample,
  interpolate,
  keep,
  linspace,
  liveTensors,
  manualSeed,
  noGrad,
  ones,
  randn,
  scalar,
  stack,
  type Tensor,
  tensor,
  tidy,
  where,
  zeros,
} from '../src/engine/index.js';
import { decodeTensors, encodeTensors, fromEntries, loadTensors, saveTensors, toEntries } from '../src/engine/io.js';
import { native } from '../src/engine/native.js';

/** A test whose body runs in a tidy scope, so nothing it creates is left for the GC (keeps liveTensors exact). */
const t = (name: string, fn: () => void) => test(name, () => tidy(fn));

function close(actual: ArrayLike<number> | Tensor, expected: ArrayLike<number>, tol = 1e-6, msg = ''): void {
  const a = 'shape' in actual ? (actual as Tensor).toNumbers() : Array.from(actual as ArrayLike<number>);
  assert.equal(a.length, expected.length, `${msg} length ${a.length} vs ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - expected[i]) <= tol, `${msg} [${i}]: ${a[i]} vs ${expected[i]} (all: ${a})`);
  }
}

// ---- creation and read-back

t('creation and read-back for every dtype', () => {
  const cases: [Parameters<typeof tensor>[2] & {}, unknown][] = [
    [{ dtype: 'float32' }, Float32Array],
    [{ dtype: 'float64' }, Float64Array],
    [{ dtype: 'int64' }, BigInt64Array],
    [{ dtype: 'int32' }, Int32Array],
    [{ dtype: 'uint8' }, Uint8Array],
    [{ dtype: 'bool' }, Uint8Array],
  ];
  for (const [o, ctor] of cases) {
    const vals = o.dtype === 'bool' ? [1, 0, 1, 1, 0, 0] : [0, 1, 2, 3, 4, 5];
    const x = tensor(vals, [2, 3], o);
    assert.equal(x.dtype, o.dtype);
    assert.deepEqual(x.shape, [2, 3]);
    assert.equal(x.numel, 6);
    assert.ok(x.toArray() instanceof (ctor as typeof Float32Array), `${o.dtype} reads back as ${ctor}`);
    assert.deepEqual(x.toNumbers(), vals);
    assert.deepEqual(zeros([2, 2], o).toNumbers(), [0, 0, 0, 0]);
    assert.deepEqual(ones([3], o).toNumbers(), [1, 1, 1]);
    assert.equal(full([2], 1, o).dtype, o.dtype);
    // typed arrays keep their dtype, and conversion round-trips
    assert.deepEqual(tensor(x.toArray(), [2, 3], o).toNumbers(), vals);
    assert.deepEqual(x.to('float64').toNumbers(), vals);
  }
  assert.equal(tensor(new Float64Array([1.5])).dtype, 'float64');
  assert.equal(tensor(new BigInt64Array([2n])).dtype, 'int64');
  assert.equal(tensor(new Int32Array([2])).dtype, 'int32');
  assert.equal(tensor([1, 2]).dtype, 'float32');
  assert.deepEqual(full([2], 2.5, { dtype: 'float64' }).toNumbers(), [2.5, 2.5]);
  assert.deepEqual(arange(4).toNumbers(), [0, 1, 2, 3]);
  assert.equal(arange(4).dtype, 'int64');
  assert.deepEqual(arange(1, 2, 0.25, { dtype: 'float32' }).toNumbers(), [1, 1.25, 1.5, 1.75]);
  assert.deepEqual(linspace(0, 1, 5).toNumbers(), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(eye(2).toNumbers(), [1, 0, 0, 1]);
  assert.equal(scalar(3).item(), 3);
  assert.deepEqual(scalar(3).shape, []);
  assert.equal(tensor(new Float32Array(0), [0, 4]).numel, 0);
  // half types exist (no typed array; read through float32)
  assert.deepEqual(tensor([1, 2], [2]).to('float16').toFloat32(), new Float32Array([1, 2]));
  assert.deepEqual(tensor([1, 2], [2]).to('bfloat16').toFloat32(), new Float32Array([1, 2]));
});

t('random creation is seeded', () => {
  manualSeed(7);
  const a = randn([5]).toNumbers();
  manualSeed(7);
  assert.deepEqual(randn([5]).toNumbers(), a);
});

// ---- arithmetic

t('broadcasting arithmetic, by hand', () => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const row = tensor([10, 20, 30], [3]);
  const col = tensor([100, 200], [2, 1]);
  assert.deepEqual(a.add(row).toNumbers(), [11, 22, 33, 14, 25, 36]);
  assert.deepEqual(a.mul(col).toNumbers(), [100, 200, 300, 800, 1000, 1200]);
  assert.deepEqual(a.sub(row).toNumbers(), [-9, -18, -27, -6, -15, -24]);
  assert.deepEqual(row.div(a).shape, [2, 3]);
  close(row.div(a), [10, 10, 10, 2.5, 4, 5]);
  const outer = tensor([1, 2], [2, 1]).mul(tensor([1, 10, 100], [1, 3]));
  assert.deepEqual(outer.shape, [2, 3]);
  assert.deepEqual(outer.toNumbers(), [1, 10, 100, 2, 20, 200]);
  assert.deepEqual(a.add(1).toNumbers(), [2, 3, 4, 5, 6, 7]);
  assert.deepEqual(a.add(row, 2).toNumbers(), [21, 42, 63, 24, 45, 66]);
  assert.deepEqual(a.rsub(1).toNumbers(), [0, -1, -2, -3, -4, -5]);
  assert.deepEqual(a.pow(2).toNumbers(), [1, 4, 9, 16, 25, 36]);
  // integers stay integers with whole-number scalars
  assert.equal(arange(3).add(1).dtype, 'int64');
  assert.deepEqual(arange(3).mul(2).toNumbers(), [0, 2, 4]);
  // comparisons, where, masked fill, clamp
  const m = a.gt(3);
  assert.equal(m.dtype, 'bool');
  assert.deepEqual(m.toNumbers(), [0, 0, 0, 1, 1, 1]);
  assert.deepEqual(where(m, a, 0).toNumbers(), [0, 0, 0, 4, 5, 6]);
  assert.deepEqual(a.maskedFill(m, -1).toNumbers(), [1, 2, 3, -1, -1, -1]);
  assert.deepEqual(a.clamp(2, 5).toNumbers(), [2, 2, 3, 4, 5, 5]);
  close(tensor([0, 1, -1]).gelu(), [0, 0.8413447460685429, -0.15865525393145707]);
  close(tensor([-1, 2]).relu(), [0, 2]);
  close(tensor([0]).sigmoid(), [0.5]);
  // matmul/bmm/linear by hand
  const b = tensor([1, 0, 0, 1, 1, 1], [3, 2]);
  assert.deepEqual(a.matmul(b).toNumbers(), [4, 5, 10, 11]);
  const w = tensor([1, 1, 1, 0, 0, 1], [2, 3]);
  assert.deepEqual(a.matmul(w.T).toNumbers(), [6, 3, 15, 6]);
  const bmm = stack([a, a.mul(2)]).bmm(stack([b, b]));
  assert.deepEqual(bmm.toNumbers(), [4, 5, 10, 11, 8, 10, 20, 22]);
});

// ---- reductions

t('reductions, topk, sort', () => {
  const a = tensor([1, 5, 3, 4, 2, 6], [2, 3]);
  assert.equal(a.sum().item(), 21);
  assert.deepEqual(a.sum(0).toNumbers(), [5, 7, 9]);
  assert.deepEqual(a.sum(1, true).shape, [2, 1]);
  assert.deepEqual(a.mean(1).toNumbers(), [3, 4]);
  assert.deepEqual(a.amax(1).toNumbers(), [5, 6]);
  const [mv, mi] = a.max(1);
  assert.deepEqual(mv.toNumbers(), [5, 6]);
  assert.deepEqual(mi.toNumbers(), [1, 2]);
  assert.equal(mi.dtype, 'int64');
  assert.deepEqual(a.argmax(0).toNumbers(), [1, 0, 1]);
  assert.deepEqual(a.min(0)[0].toNumbers(), [1, 2, 3]);
  assert.equal(a.maxAll().item(), 6);
  close(a.norm(2, 1), [Math.sqrt(35), Math.sqrt(56)], 1e-5);
  close(
    a.logsumexp(1),
    [Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)), Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6))],
    1e-5,
  );
  close(a.var(1), [4, 4]);
  close(a.var(1, false), [8 / 3, 8 / 3], 1e-6);
  assert.deepEqual(a.cumsum(1).toNumbers(), [1, 6, 9, 4, 6, 12]);
  const [tv, ti] = tensor([3, 1, 4, 1, 5, 9, 2, 6]).topk(3);
  assert.deepEqual(tv.toNumbers(), [9, 6, 5]);
  assert.deepEqual(ti.toNumbers(), [5, 7, 4]);
  const [sv, si] = tensor([3, 1, 2]).sort();
  assert.deepEqual(sv.toNumbers(), [1, 2, 3]);
  assert.deepEqual(si.toNumbers(), [1, 2, 0]);
  const [lv] = a.topk(1, 1, false);
  assert.deepEqual(lv.toNumbers(), [1, 2]);
  close(a.softmax(1).sum(1), [1, 1]);
  close(tensor([0, Math.log(3)]).softmax(0), [0.25, 0.75]);
  close(tensor([0, Math.log(3)]).logSoftmax(0), [Math.log(0.25), Math.log(0.75)], 1e-6);
  // cross entropy: int targets and soft targets, by hand
  const logits = tensor([0, Math.log(3), 0, 0], [2, 2]);
  close(crossEntropy(logits, tensor([1, 0], [2], { dtype: 'int64' })), [(-Math.log(0.75) - Math.log(0.5)) / 2], 1e-6);
  const soft = tensor([0.5, 0.5, 1, 0], [2, 2]);
  close(crossEntropy(logits, soft), [(-(0.5 * Math.log(0.25) + 0.5 * Math.log(0.75)) - Math.log(0.5)) / 2], 1e-6);
  assert.equal(tensor([1, 0, 1], [3], { dtype: 'bool' }).any().item(), 1);
  assert.equal(tensor([1, 0, 1], [3], { dtype: 'bool' }).all().item(), 0);
});

// ---- indexing and shape

t('gather, scatter, index ops', () => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const idx = tensor([2, 0, 1, 1], [2, 2], { dtype: 'int64' });
  assert.deepEqual(a.gather(1, idx).toNumbers(), [3, 1, 5, 5]);
  const z = zeros([2, 3]);
  assert.deepEqual(z.scatter(1, idx, tensor([7, 8, 9, 10], [2, 2])).toNumbers(), [8, 0, 7, 0, 10, 0]);
  assert.deepEqual(z.scatter(1, idx, 1).toNumbers(), [1, 0, 1, 0, 1, 0]);
  assert.deepEqual(z.scatterAdd(1, idx, tensor([7, 8, 9, 10], [2, 2])).toNumbers(), [8, 0, 7, 0, 19, 0]);
  assert.deepEqual(a.indexSelect(1, tensor([2, 0], [2], { dtype: 'int64' })).toNumbers(), [3, 1, 6, 4]);
  assert.deepEqual(a.index([tensor([1, 0, 1], [3], { dtype: 'int64' })]).toNumbers(), [4, 5, 6, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(a.select(1, 1).toNumbers(), [2, 5]);
  assert.deepEqual(a.narrow(1, 1, 2).toNumbers(), [2, 3, 5, 6]);
  assert.deepEqual(a.slice(1, 0, undefined, 2).toNumbers(), [1, 3, 4, 6]);
  assert.deepEqual(a.T.contiguous().toNumbers(), [1, 4, 2, 5, 3, 6]);
  assert.deepEqual(a.permute(1, 0).shape, [3, 2]);
  assert.deepEqual(a.reshape(3, 2).shape, [3, 2]);
  assert.deepEqual(a.view(-1).shape, [6]);
  assert.deepEqual(a.unsqueeze(0).shape, [1, 2, 3]);
  assert.deepEqual(a.unsqueeze(0).squeeze(0).shape, [2, 3]);
  assert.deepEqual(tensor([1, 2], [2, 1]).expand(2, 3).toNumbers(), [1, 1, 1, 2, 2, 2]);
  assert.deepEqual(tensor([1, 2]).repeat(2).toNumbers(), [1, 2, 1, 2]);
  assert.deepEqual(a.flip(1).toNumbers(), [3, 2, 1, 6, 5, 4]);
  assert.deepEqual(tensor([1, 2, 3, 4], [1, 2, 2]).rot90(1).toNumbers(), [2, 4, 1, 3]);
  assert.deepEqual(tensor([0, 2, 1], [3], { dtype: 'int64' }).oneHot(3).toNumbers(), [1, 0, 0, 0, 0, 1, 0, 1, 0]);
  assert.deepEqual(
    a.indexPut([tensor([0], [1], { dtype: 'int64' }), tensor([2], [1], { dtype: 'int64' })], tensor([9])).toNumbers(),
    [1, 2, 9, 4, 5, 6],
  );
});

t('cat, stack, split, chunk', () => {
  const a = tensor([1, 2, 3, 4], [2, 2]);
  const b = tensor([5, 6], [1, 2]);
  const c = cat([a, b], 0);
  assert.deepEqual(c.shape, [3, 2]);
  assert.deepEqual(c.toNumbers(), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(cat([a, a], 1).toNumbers(), [1, 2, 1, 2, 3, 4, 3, 4]);
  const s = stack([a, a.mul(10)], 1);
  assert.deepEqual(s.shape, [2, 2, 2]);
  assert.deepEqual(s.toNumbers(), [1, 2, 10, 20, 3, 4, 30, 40]);
  const parts = c.split(2, 0);
  assert.equal(parts.length, 2);
  assert.deepEqual(parts[0].toNumbers(), [1, 2, 3, 4]);
  assert.deepEqual(parts[1].toNumbers(), [5, 6]);
  const [p, q] = tensor([1, 2, 3, 4, 5]).split([1, 4]);
  assert.deepEqual(p.toNumbers(), [1]);
  assert.deepEqual(q.toNumbers(), [2, 3, 4, 5]);
  assert.deepEqual(
    tensor([1, 2, 3, 4])
      .chunk(2)
      .map((x) => x.toNumbers()),
    [
      [1, 2],
      [3, 4],
    ],
  );
  assert.deepEqual(tensor([1, 2, 3, 4], [2, 2]).pad([1, 0], 0).toNumbers(), [0, 1, 2, 0, 3, 4]);
});

// ---- image ops

t('interpolate nearest and bilinear, small hand cases', () => {
  const x = tensor([0, 1, 2, 3], [1, 1, 2, 2]);
  assert.deepEqual(interpolate(x, [4, 4], 'nearest').toNumbers(), [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
  assert.deepEqual(interpolate(x, [1, 1], 'nearest').toNumbers(), [0]);
  // align_corners=false: source coordinate (i + 0.5)/2 − 0.5, clamped at 0 → 0, .25, .75, 1 along each axis;
  // the map is 2·y + x, so values are 2·fy + fx.
  const f = [0, 0.25, 0.75, 1];
  const expected = f.flatMap((fy) => f.map((fx) => 2 * fy + fx));
  close(interpolate(x, [4, 4], 'bilinear', false), expected);
  // align_corners=true: 0, .5, 1 along each axis
  close(interpolate(x, [3, 3], 'bilinear', true), [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3]);
  // downsampling 4x4 → 2x2 (align_corners=false) averages each 2x2 block's centre
  const y = arange(16, undefined, 1, { dtype: 'float32' }).reshape(1, 1, 4, 4);
  close(interpolate(y, [2, 2], 'bilinear'), [2.5, 4.5, 10.5, 12.5]);
});

t('gridSample with the identity grid returns its input', () => {
  manualSeed(1);
  const x = randn([2, 3, 4, 5]);
  const [N, , H, W] = x.shape;
  // pixel-centre coordinates (align_corners=false): (2j + 1)/W − 1
  const g = new Float32Array(N * H * W * 2);
  for (let n = 0; n < N; n++)
    for (let i = 0; i < H; i++)
      for (let j = 0; j < W; j++) {
        const o = ((n * H + i) * W + j) * 2;
        g[o] = (2 * j + 1) / W - 1;
        g[o + 1] = (2 * i + 1) / H - 1;
      }
  const grid = tensor(g, [N, H, W, 2]);
  close(gridSample(x, grid), x.toNumbers(), 1e-6);
  close(gridSample(x, grid, { mode: 'nearest' }), x.toNumbers(), 0);
  // a grid shifted by one pixel to the right, zero padding: the last column becomes 0
  const shifted = grid.add(tensor([2 / W, 0], [2]));
  const out = gridSample(x, shifted, { alignCorners: false });
  close(
    out.narrow(3, 0, W - 1),
    x
      .narrow(3, 1, W - 1)
      .contiguous()
      .toNumbers(),
    1e-6,
  );
  close(out.narrow(3, W - 1, 1), new Array(N * 3 * H).fill(0), 1e-6);
});

t('conv2d, small hand cases', () => {
  const x = tensor([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  // x[i][j] − x[i+1][j+1] = −4 everywhere, plus bias 1
  const k = tensor([1, 0, 0, -1], [1, 1, 2, 2]);
  const y = conv2d(x, k, tensor([1]));
  assert.deepEqual(y.shape, [1, 1, 2, 2]);
  assert.deepEqual(y.toNumbers(), [-3, -3, -3, -3]);
  // 3x3 box filter with padding 1: neighbourhood sums
  const box = conv2d(x, ones([1, 1, 3, 3]), null, { padding: 1 });
  assert.deepEqual(box.toNumbers(), [12, 21, 16, 27, 45, 33, 24, 39, 28]);
  // stride 2 (patch embedding) on 4x4 with a 2x2 ones kernel: block sums; two output channels
  const z = arange(16, undefined, 1, { dtype: 'float32' }).reshape(1, 1, 4, 4);
  const w2 = cat([ones([1, 1, 2, 2]), ones([1, 1, 2, 2]).mul(-1)]);
  const p = conv2d(z, w2, null, { stride: 2 });
  assert.deepEqual(p.shape, [1, 2, 2, 2]);
  assert.deepEqual(p.toNumbers(), [10, 18, 42, 50, -10, -18, -42, -50]);
});

// ---- memory: tidy, keep, dispose

test('tidy frees everything created inside except its result', () => {
  const before = liveTensors();
  const r = tidy(() => {
    const a = ones([10, 10]);
    const b = a.mul(2).add(1);
    const c = b.matmul(b).sum(1);
    return c.softmax(0);
  });
  assert.equal(liveTensors(), before + 1, 'only the result survives');
  assert.equal(r.shape[0], 10);
  r.dispose();
  assert.equal(liveTensors(), before);
  assert.ok(r.disposed);
  r.dispose(); // idempotent
  assert.equal(liveTensors(), before);
  // results in arrays/objects/Maps survive
  const o = tidy(() => {
    const a = ones([2]);
    return { a, list: [a.add(1), a.add(2)], m: new Map([['x', a.add(3)]]) };
  });
  assert.equal(liveTensors(), before + 4);
  dispose(o);
  assert.equal(liveTensors(), before);
  // a throwing body frees what it made
  assert.throws(() =>
    tidy(() => {
      ones([3]).add(1);
      throw new Error('boom');
    }),
  );
  assert.equal(liveTensors(), before);
});

test('nested tidy: the inner result moves to the outer scope', () => {
  const before = liveTensors();
  let inner: Tensor | undefined;
  const out = tidy(() => {
    const a = ones([4]);
    inner = tidy(() => a.add(1).mul(3));
    assert.equal(liveTensors(), before + 2, 'a and the inner result');
    const x = tidy(() => inner!.add(1));
    return x;
  });
  assert.equal(liveTensors(), before + 1);
  assert.ok(inner!.disposed, 'the inner result was freed by the outer tidy');
  assert.deepEqual(out.toNumbers(), [7, 7, 7, 7]);
  out.dispose();
  assert.equal(liveTensors(), before);
});

test('keep() takes a tensor out of every scope; dispose after use throws a clear error', () => {
  const before = liveTensors();
  let kept: Tensor | undefined;
  tidy(() => {
    tidy(() => {
      kept = keep(ones([3]).mul(5));
      ones([3]);
    });
  });
  assert.equal(liveTensors(), before + 1);
  assert.deepEqual(kept!.toNumbers(), [5, 5, 5]);
  kept!.dispose();
  assert.equal(liveTensors(), before);
  assert.throws(() => kept!.add(1), /tensor used after dispose\(\)/);
  assert.throws(() => kept!.shape, /tensor used after dispose\(\)/);
  // a second handle (alias) is independent of the first
  const a = ones([2]);
  const b = a.alias();
  a.dispose();
  assert.deepEqual(b.toNumbers(), [1, 1]);
  b.dispose();
  assert.equal(liveTensors(), before);
});

test('native bytes are reported to V8 only for tensors that can be left to the GC', () => {
  const ext = (): number => native.externalBytes();
  const MB4 = 4 * 2 ** 20;
  const before = ext();
  let inside = 0;
  const big = tidy(() => {
    const t = zeros([2 ** 20]); // 4 MiB, freed or handed out when the scope ends: not reported yet
    inside = ext() - before;
    return t;
  });
  assert.ok(inside < MB4 / 2, `inside a scope: +${inside} bytes`);
  assert.ok(ext() - before >= MB4, 'the result left the outermost scope: reported');
  big.dispose();
  assert.ok(ext() - before < MB4 / 2, 'dispose un-reports it');
  const free = zeros([2 ** 20]); // made outside any scope: reported at once
  assert.ok(ext() - before >= MB4);
  free.dispose();
  let kept: Tensor | undefined;
  tidy(() => {
    kept = keep(zeros([2 ** 20]));
  });
  assert.ok(ext() - before >= MB4, 'keep() reports');
  kept!.dispose();
  assert.ok(ext() - before < MB4 / 2);
});

test('noGrad turns recording off and restores it', () => {
  tidy(() => {
    const p = ones([2]).requiresGrad_();
    const y = noGrad(() => p.mul(2));
    assert.equal(y.requiresGrad, false);
    assert.equal(p.mul(2).requiresGrad, true);
    assert.throws(() =>
      noGrad(() => {
        throw new Error('x');
      }),
    );
    assert.equal(p.mul(2).requiresGrad, true, 'restored after a throw');
  });
});

// ---- errors: JS Errors with libtorch's message, never an abort

t('errors are JS Errors naming the problem', () => {
  assert.throws(
    () => randn([2, 3]).matmul(randn([4, 5])),
    (e: unknown) => e instanceof Error && e.message.includes('2x3') && e.message.includes('4x5'),
  );
  assert.throws(
    () => zeros([2], { dtype: 'float128' as never }),
    (e: unknown) => e instanceof Error && /unknown dtype 'float128'/.test(e.message),
  );
  assert.throws(() => randn([3]).indexSelect(0, tensor([5], [1], { dtype: 'int64' })), /out of range/);
  assert.throws(() => randn([3]).gather(0, tensor([5], [1], { dtype: 'int64' })), /out of bounds/);
  assert.throws(() => randn([3]).select(0, 7), /out of range/);
  assert.throws(() => randn([2, 3]).add(randn([4])), /size of tensor a \(3\) must match the size of tensor b \(4\)/);
  assert.throws(() => randn([6]).view(4), /invalid for input of size 6/);
  assert.throws(() => tensor(new Float32Array(3), [2, 2]), /buffer has 12 bytes, shape needs 16/);
  assert.throws(() => crossEntropy(randn([2, 3]), tensor([0, 5], [2], { dtype: 'int64' })), /out of bounds/);
  // the engine still works afterwards
  assert.equal(ones([2]).sum().item(), 2);
});

// ---- io.ts: safetensors round trips through tensors

test('saveTensors/loadTensors round-trip every dtype bit for bit; errors name the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'locus-io-'));
  try {
    tidy(() => {
      manualSeed(3);
      const src = new Map<string, Tensor>([
        ['f32', randn([3, 4])],
        ['f64', randn([2, 2], { dtype: 'float64' })],
        ['i64', tensor([-(2 ** 40), 5, 7], [3], { dtype: 'int64' })],
        ['i32', tensor([-3, 9], [2], { dtype: 'int32' })],
        ['u8', tensor([0, 255, 7], [3], { dtype: 'uint8' })],
        ['bool', tensor([1, 0], [2], { dtype: 'bool' })],
        ['scalar', scalar(2.5)],
        ['empty', zeros([0, 3])],
        ['noncontig', randn([3, 5]).T],
      ]);
      const path = join(dir, 'a.safetensors');
      saveTensors(path, src, { note: 'hi' });
      const back = loadTensors(path);
      assert.deepEqual([...back.keys()].sort(), [...src.keys()].sort());
      for (const [k, v] of src) {
        const w = back.get(k)!;
        assert.equal(w.dtype, v.dtype, k);
        assert.deepEqual(w.shape, v.shape, k);
        assert.deepEqual(w.toArray(), v.contiguous().toArray(), k);
      }
      // byte-exact: saving what was loaded gives the same file
      const path2 = join(dir, 'b.safetensors');
      saveTensors(path2, back, { note: 'hi' });
      assert.ok(readFileSync(path).equals(readFileSync(path2)));
      assert.ok(encodeTensors(back, { note: 'hi' }).equals(readFileSync(path)));
      // entries helpers
      const e = toEntries(src);
      assert.equal(e.f32.dtype, 'F32');
      assert.equal(e.bool.dtype, 'BOOL');
      assert.equal(e.i64.dtype, 'I64');
      assert.deepEqual(fromEntries(e).get('u8')!.toNumbers(), [0, 255, 7]);
      assert.deepEqual(decodeTensors(readFileSync(path)).get('i32')!.toNumbers(), [-3, 9]);
      // truncated file: the error names the file and the problem
      const bytes = readFileSync(path);
      const cut = join(dir, 'cut.safetensors');
      writeFileSync(cut, bytes.subarray(0, bytes.length - 10));
      assert.throws(
        () => loadTensors(cut),
        (err: unknown) => err instanceof Error && err.message.includes(cut) && /truncated/.test(err.message),
      );
      assert.throws(() => loadTensors(join(dir, 'missing.safetensors')), /missing\.safetensors/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
