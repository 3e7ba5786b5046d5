// Autograd against central finite differences in float64, for every loss-relevant op and for a ViT block;
// and a tiny MLP that fits a fixed batch with AdamW.
//
// Error measure: for each input, max_i |autograd_i − numeric_i| / max_i |numeric_i| (the gradient's
// infinity-norm relative error), which must be ≤ 1e-6. Step h = 1e-6 in float64: truncation error
// O(h²) and rounding O(1e-16/h) are both ~1e-10 relative, far below the bound.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  conv2d,
  cosineSimilarity,
  crossEntropy,
  gridSample,
  interpolate,
  layerNorm,
  linear,
  manualSeed,
  noGrad,
  normalize,
  rand,
  randint,
  randn,
  type Tensor,
  tensor,
  tidy,
} from '../src/engine/index.js';
import { AdamW, Block, Linear, Mlp, Module } from '../src/nn/index.js';

const F64 = { dtype: 'float64' } as const;
const H = 1e-6;
const TOL = 1e-6;

/** Leaves with requiresGrad, float64, random normal. */
const leaf = (shape: number[], scale = 1): Tensor => randn(shape, F64).mul(scale).requiresGrad_();

/**
 * Checks d loss()/d p for every p in params (leaves, perturbed in place) and returns the worst relative error.
 * loss must return a scalar.
 */
function gradcheck(name: string, params: Tensor[], loss: () => Tensor): number {
  for (const p of params) p.grad = null;
  tidy(() => loss().backward());
  let worst = 0;
  for (const [pi, p] of params.entries()) {
    const analytic = tidy(() => p.grad?.toNumbers() ?? new Array(p.numel).fill(0));
    const base = p.detach().contiguous().toArray() as Float64Array;
    const numeric = new Float64Array(p.numel);
    const evalAt = (i: number, v: number): number =>
      tidy(() =>
        noGrad(() => {
          const vals = Float64Array.from(base);
          vals[i] = v;
          p.copy_(tensor(vals, p.shape, F64));
          return loss().item();
        }),
      );
    for (let i = 0; i < p.numel; i++) numeric[i] = (evalAt(i, base[i] + H) - evalAt(i, base[i] - H)) / (2 * H);
    noGrad(() => tidy(() => p.copy_(tensor(base, p.shape, F64))));
    let maxDiff = 0;
    let maxRef = 0;
    for (let i = 0; i < p.numel; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(analytic[i] - numeric[i]));
      maxRef = Math.max(maxRef, Math.abs(numeric[i]));
    }
    assert.ok(maxRef > 1e-8, `${name}: input ${pi} has a zero gradient (the check would be vacuous)`);
    const rel = maxDiff / maxRef;
    assert.ok(rel <= TOL, `${name}: input ${pi} [${p.shape}] relative gradient error ${rel.toExponential(2)} > ${TOL}`);
    worst = Math.max(worst, rel);
    if (process.env.GRADCHECK_VERBOSE) console.log(`${name} input ${pi}: rel ${rel.toExponential(2)}`);
  }
  return worst;
}

/** Runs one op's gradient check with a fixed seed; the projection weights are drawn once. */
function check(name: string, make: () => { params: Tensor[]; f: () => Tensor }): void {
  test(`gradcheck: ${name}`, () => {
    tidy(() => {
      manualSeed(42);
      const { params, f } = make();
      // a fixed random projection makes the scalar depend on every output element differently
      const R = tidy(() => noGrad(() => randn(f().shape, F64)));
      const rel = gradcheck(name, params, () => f().mul(R).sum());
      assert.ok(rel <= TOL);
    });
  });
}

check('linear', () => {
  const x = leaf([3, 4]);
  const w = leaf([5, 4]);
  const b = leaf([5]);
  return { params: [x, w, b], f: () => linear(x, w, b) };
});

check('matmul (batched, broadcast)', () => {
  const a = leaf([2, 3, 4]);
  const b = leaf([4, 2]);
  return { params: [a, b], f: () => a.matmul(b) };
});

check('softmax', () => {
  const x = leaf([3, 5]);
  return { params: [x], f: () => x.softmax(-1) };
});

check('logSoftmax', () => {
  const x = leaf([3, 5]);
  return { params: [x], f: () => x.logSoftmax(1) };
});

check('crossEntropy with class-index targets', () => {
  const x = leaf([4, 6]);
  const y = tensor([0, 5, 2, 2], [4], { dtype: 'int64' });
  return { params: [x], f: () => crossEntropy(x, y) };
});

check('crossEntropy with soft targets (DINO: student temperature 0.1)', () => {
  const x = leaf([4, 6]);
  const target = randn([4, 6], F64).div(0.04).softmax(-1);
  return { params: [x], f: () => crossEntropy(x.div(0.1), target) };
});

check('layerNorm', () => {
  const x = leaf([3, 8]);
  const w = leaf([8]);
  const b = leaf([8]);
  return { params: [x, w, b], f: () => layerNorm(x, [8], w, b, 1e-6) };
});

check('gelu (exact)', () => {
  const x = leaf([12], 2);
  return { params: [x], f: () => x.gelu() };
});

check('conv2d (stride 2, padding 1)', () => {
  const x = leaf([2, 2, 5, 5]);
  const w = leaf([3, 2, 3, 3]);
  const b = leaf([3]);
  return { params: [x, w, b], f: () => conv2d(x, w, b, { stride: 2, padding: 1 }) };
});

check('conv2d (patch embedding: kernel = stride = 2)', () => {
  const x = leaf([1, 3, 4, 4]);
  const w = leaf([4, 3, 2, 2]);
  const b = leaf([4]);
  return { params: [x, w, b], f: () => conv2d(x, w, b, { stride: 2 }) };
});

check('gather', () => {
  const x = leaf([3, 5]);
  const idx = tensor([0, 4, 4, 1, 2, 3], [3, 2], { dtype: 'int64' });
  return { params: [x], f: () => x.gather(1, idx) };
});

check('interpolate bilinear (align_corners false and true)', () => {
  const x = leaf([1, 2, 3, 4]);
  return {
    params: [x],
    f: () =>
      interpolate(x, [5, 7], 'bilinear', false)
        .sum()
        .add(interpolate(x, [4, 3], 'bilinear', true).pow(2).sum()),
  };
});

check('gridSample (input and grid)', () => {
  const x = leaf([1, 2, 4, 5]);
  // grid points inside the map, away from pixel centres (bilinear is not differentiable across them)
  const grid = rand([1, 3, 3, 2], F64).mul(1.6).sub(0.8).requiresGrad_();
  return { params: [x, grid], f: () => gridSample(x, grid, { alignCorners: false }) };
});

check('normalize', () => {
  const x = leaf([3, 4]);
  return { params: [x], f: () => normalize(x, -1) };
});

check('cosineSimilarity', () => {
  const a = leaf([3, 6]);
  const b = leaf([3, 6]);
  return { params: [a, b], f: () => cosineSimilarity(a, b, 1) };
});

test('gradcheck: a ViT block in float64 (all parameters and the input)', () => {
  tidy(() => {
    manualSeed(5);
    const block = new Block(8, 2, { mlpRatio: 2 }).to('float64');
    // non-trivial norms (ones/zeros at init would make some gradients degenerate)
    noGrad(() => {
      for (const [, p] of block.namedParameters()) p.add_(randn(p.shape, F64).mul(0.1));
    });
    for (const [n, p] of block.namedParameters()) assert.equal(p.dtype, 'float64', n);
    const x = leaf([2, 5, 8]);
    const R = randn([2, 5, 8], F64);
    const params = [x, ...block.parameters()];
    assert.equal(params.length, 1 + 12);
    const rel = gradcheck('Block', params, () => {
      const [y] = block.forward(x);
      return y.mul(R).sum();
    });
    assert.ok(rel <= TOL);
    block.dispose();
  });
});

test('Module.to(dtype) converts in place and keeps identity', () => {
  tidy(() => {
    const lin = new Linear(3, 2);
    const w = lin.weight;
    const before = lin.weight.toNumbers();
    lin.to('float64');
    assert.equal(lin.weight, w, 'same Tensor object');
    assert.equal(w.dtype, 'float64');
    assert.ok(w.requiresGrad);
    assert.deepEqual(w.toNumbers(), before, 'values preserved (float32 → float64 exact)');
    assert.equal(lin.stateDict().get('bias')!.dtype, 'float64');
    lin.dispose();
  });
});

test('a tiny MLP fits a fixed batch with AdamW (loss < 0.05 within 300 steps)', () => {
  manualSeed(0);
  class Net extends Module {
    readonly mlp: Mlp;
    readonly head: Linear;
    constructor() {
      super();
      this.mlp = this.child('mlp', new Mlp(8, 32, 16));
      this.head = this.child('head', new Linear(16, 4));
    }
    forward(x: Tensor): Tensor {
      return this.head.forward(this.mlp.forward(x).gelu());
    }
  }
  const net = new Net();
  const x = randn([32, 8]);
  const y = randint(0, 4, [32]);
  const opt = new AdamW([{ params: net.parameters(), lr: 1e-2, weightDecay: 0 }]);
  const first = tidy(() => crossEntropy(net.forward(x), y).item());
  let last = first;
  let steps = 0;
  for (; steps < 300 && last >= 0.05; steps++) {
    const loss = tidy(() => crossEntropy(net.forward(x), y));
    opt.zeroGrad();
    loss.backward();
    last = loss.item();
    loss.dispose();
    opt.step();
  }
  assert.ok(first > 1, `starts near log(4): ${first}`);
  assert.ok(last < 0.05, `loss ${last} after ${steps} steps (from ${first})`);
  if (process.env.GRADCHECK_VERBOSE) console.log(`MLP: loss ${first} → ${last} in ${steps} steps`);
  net.dispose();
  x.dispose();
  y.dispose();
  for (const s of [...opt.expAvg.flat(), ...opt.expAvgSq.flat()]) s.dispose();
});
