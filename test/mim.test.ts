// Masked-patch prediction (iBOT-style): the block-mask generator (seeded determinism, ratio within its
// range, blocks are contiguous rectangles, the masking probability), the masked-patch loss and the whole
// `mim` / `dino+mim` objectives against float64 re-computations from independent forward passes, and
// short runs with finite, falling loss.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TensorBatch } from '../src/data/collate.js';
import { Rng } from '../src/data/rng.js';
import { cat, manualSeed, noGrad, randn, setNumThreads, type Tensor, tensor, tidy } from '../src/engine/index.js';
import { blockMask, IBOT_MASK_DEFAULTS, maskBatch, roundHalfEven, sampleMaskRatio } from '../src/methods/masking.js';
import type { Method, MethodContext, StepInfo } from '../src/methods/method.js';
import { dinoMimSchema, Mim, maskedPatchLoss, maskedRowWeights, mimSchema } from '../src/methods/mim.js';
import { AdamW, decayGroups, type VitConfig } from '../src/nn/index.js';

// Tiny tensors: one thread avoids the thread pool's hand-offs, which dominate on a busy 2-core machine.
setNumThreads(1);
const t = (name: string, fn: () => void) => test(name, () => tidy(fn));
const info = (step: number, momentum = 0.99): StepInfo => ({
  step,
  totalSteps: 100,
  epoch: 0,
  stepsPerEpoch: 100,
  lr: 1e-3,
  weightDecay: 0,
  momentum,
});
const comm = { worldSize: 1, allReduceMean: () => {} };

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, msg = ''): void {
  assert.equal(actual.length, expected.length, `${msg} length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${msg}[${i}]: ${a} vs ${e}`);
  }
}

// ---------------------------------------------------------------- masks

t('Python rounding: halves to even', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4, 2.6, 0].map(roundHalfEven), [0, 2, 2, 4, 2, 3, 0]);
});

t('block masks: seeded determinism', () => {
  const a = blockMask(8, 8, 0.4, new Rng(11));
  const b = blockMask(8, 8, 0.4, new Rng(11));
  assert.deepEqual(a, b);
  const c = blockMask(8, 8, 0.4, new Rng(12));
  assert.notDeepEqual([...a.mask], [...c.mask]);
  // a batch: the mask of a key does not depend on the other keys or their order
  const o = { ...IBOT_MASK_DEFAULTS, prob: 1 };
  const ab = maskBatch([[1], [2]], 8, 8, o, 5);
  const ba = maskBatch([[2], [1]], 8, 8, o, 5);
  assert.deepEqual([...ab.subarray(0, 64)], [...ba.subarray(64)]);
  assert.deepEqual([...ab.subarray(64)], [...ba.subarray(0, 64)]);
  assert.deepEqual([...maskBatch([[1], [2]], 8, 8, o, 5)], [...ab]);
  assert.notDeepEqual([...maskBatch([[1], [2]], 8, 8, o, 6)], [...ab]);
});

/** Number of 4-connected components of the 1-cells of an h×w mask. */
function components(mask: Uint8Array, h: number, w: number): number {
  const seen = new Uint8Array(mask.length);
  let n = 0;
  for (let s = 0; s < mask.length; s++) {
    if (!mask[s] || seen[s]) continue;
    n++;
    const stack = [s];
    seen[s] = 1;
    while (stack.length) {
      const i = stack.pop() as number;
      const [r, c] = [Math.floor(i / w), i % w];
      for (const [rr, cc] of [
        [r - 1, c],
        [r + 1, c],
        [r, c - 1],
        [r, c + 1],
      ]) {
        const j = rr * w + cc;
        if (rr >= 0 && rr < h && cc >= 0 && cc < w && mask[j] && !seen[j]) {
          seen[j] = 1;
          stack.push(j);
        }
      }
    }
  }
  return n;
}

t('block masks: ratio within range, contiguous rectangular blocks', () => {
  const rng = new Rng(1);
  let total = 0;
  let comps = 0;
  for (let trial = 0; trial < 300; trial++) {
    const [h, w] = trial % 3 === 0 ? [4, 4] : trial % 3 === 1 ? [8, 8] : [14, 14];
    const ratio = rng.range(0.1, 0.5);
    const { mask, blocks } = blockMask(h, w, ratio, rng);
    const count = mask.reduce((a, b) => a + b, 0);
    assert.ok(count <= ratio * h * w + 1e-9, `masked ${count} of ${h * w} > ratio ${ratio}`);
    // the mask is exactly the union of its blocks, each a rectangle strictly smaller than the grid
    const union = new Uint8Array(h * w);
    for (const b of blocks) {
      assert.ok(b.h >= 1 && b.w >= 1 && b.h < h && b.w < w, `block ${JSON.stringify(b)}`);
      assert.ok(
        b.top >= 0 && b.left >= 0 && b.top + b.h <= h && b.left + b.w <= w,
        `block ${JSON.stringify(b)} outside`,
      );
      for (let r = b.top; r < b.top + b.h; r++) for (let c = b.left; c < b.left + b.w; c++) union[r * w + c] = 1;
    }
    assert.deepEqual([...mask], [...union]);
    assert.ok(components(mask, h, w) <= blocks.length);
    if (h >= 8) {
      assert.ok(count > 0, `an ${h}x${w} mask with ratio ${ratio} is empty`);
      // iBOT's first block covers at least (min(h, w) div 3)² patches when the ratio allows it
      if (ratio * h * w >= Math.floor(Math.min(h, w) / 3) ** 2 + 2) assert.ok(blocks[0].h * blocks[0].w >= 2);
    }
    total += count / (h * w);
    comps += components(mask, h, w);
  }
  // blocks, not scattered patches: on average few components for ~30% of the grid masked
  assert.ok(comps / 300 < 4, `mean components ${comps / 300}`);
  assert.ok(total / 300 > 0.15 && total / 300 < 0.35, `mean masked share ${total / 300}`);
});

t('block masks: a view is masked with probability prob, its ratio drawn from the range', () => {
  const rng = new Rng(2);
  const ratios = Array.from({ length: 2000 }, () => sampleMaskRatio(rng, IBOT_MASK_DEFAULTS));
  const masked = ratios.filter((r) => r > 0);
  assert.ok(masked.length > 900 && masked.length < 1100, `${masked.length} of 2000 masked`);
  assert.ok(masked.every((r) => r >= 0.1 && r <= 0.5));
  assert.ok(Math.min(...masked) < 0.12 && Math.max(...masked) > 0.48);
});

// ---------------------------------------------------------------- loss

/** A seeded list of float64 numbers in [−2, 2). */
function numbers(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  });
}

/** −Σ softmax((t − c)/τt) · log_softmax(s/τs) over one row, in float64. */
function ce(s: ArrayLike<number>, tr: ArrayLike<number>, c: ArrayLike<number>, ts: number, tt: number): number {
  const K = s.length;
  const z = Array.from({ length: K }, (_, i) => ((tr[i] as number) - (c[i] as number)) / tt);
  const zm = Math.max(...z);
  const ez = z.map((v) => Math.exp(v - zm));
  const zs = ez.reduce((a, b) => a + b, 0);
  const y = Array.from({ length: K }, (_, i) => (s[i] as number) / ts);
  const ym = Math.max(...y);
  const lse = ym + Math.log(y.reduce((a, v) => a + Math.exp(v - ym), 0));
  return -ez.reduce((a, e, i) => a + (e / zs) * (y[i] - lse), 0);
}

/** iBOT's patch loss over views of [B, N, K] logits with masks, written as its loops, in float64. */
function ibotPatchLoss(
  s: number[][][][],
  tt: number[][][][],
  mask: number[][][],
  c: number[],
  ts: number,
  tTemp: number,
): number {
  let total = 0;
  for (let v = 0; v < s.length; v++) {
    let batch = 0;
    for (let b = 0; b < s[v].length; b++) {
      let sum = 0;
      let cnt = 0;
      for (let n = 0; n < s[v][b].length; n++) {
        if (!mask[v][b][n]) continue;
        sum += ce(s[v][b][n], tt[v][b][n], c, ts, tTemp);
        cnt++;
      }
      batch += sum / Math.max(cnt, 1);
    }
    total += batch / s[v].length;
  }
  return total / s.length;
}

const grid = (a: ArrayLike<number>, dims: number[]): number[][][][] => {
  const [V, B, N, K] = dims;
  return Array.from({ length: V }, (_, v) =>
    Array.from({ length: B }, (_, b) =>
      Array.from({ length: N }, (_, n) =>
        Array.from({ length: K }, (_, k) => a[((v * B + b) * N + n) * K + k] as number),
      ),
    ),
  );
};

t('masked-patch loss equals a float64 re-computation of iBOT’s loss', () => {
  const [V, B, N, K] = [2, 3, 4, 5];
  const s = numbers(V * B * N * K, 1);
  const tr = numbers(V * B * N * K, 2);
  const c = numbers(K, 3).map((x) => x / 4);
  // view 0: sample 0 masks patches 1, 2; sample 1 none; sample 2 all four. view 1: one patch each.
  // biome-ignore format: one row per (view, sample)
  const m = Uint8Array.from([
    0, 1, 1, 0,  0, 0, 0, 0,  1, 1, 1, 1,
    1, 0, 0, 0,  0, 0, 1, 0,  0, 0, 0, 1,
  ]);
  const { rows, weights } = maskedRowWeights(m, V * B, N);
  assert.deepEqual([...rows], [1, 2, 8, 9, 10, 11, 12, 18, 23]);
  const T = (a: number[], shape: number[]) => tensor(a, shape, { dtype: 'float64' });
  const idx = tensor(rows, [rows.length]).to('int64');
  const S = T(s, [V * B * N, K]).indexSelect(0, idx);
  const Tt = T(tr, [V * B * N, K]).indexSelect(0, idx);
  const got = maskedPatchLoss(S, Tt, tensor(weights, [rows.length]).to('float64'), T(c, [1, K]), 0.1, 0.07).item();
  const mask3 = Array.from({ length: V }, (_, v) =>
    Array.from({ length: B }, (_, b) => Array.from(m.subarray((v * B + b) * N, (v * B + b + 1) * N))),
  );
  const expected = ibotPatchLoss(grid(s, [V, B, N, K]), grid(tr, [V, B, N, K]), mask3, c, 0.1, 0.07);
  close([got], [expected], 1e-6, 'loss'); // weights are float32
});

// ---------------------------------------------------------------- the methods

const VIT: VitConfig = {
  imgSize: 16,
  patchSize: 4,
  inChans: 3,
  dim: 16,
  depth: 2,
  heads: 2,
  mlpRatio: 2,
  qkvBias: true,
  dropPathRate: 0,
  maskToken: false,
};
const CTX: MethodContext = { vit: VIT, batchSize: 3, totalSteps: 100, seed: 0 };
const HEAD = { outDim: 24, hiddenDim: 32, bottleneckDim: 16 };

function make(name: 'mim' | 'dino+mim', extra: object = {}): Mim {
  return name === 'mim'
    ? new Mim('mim', mimSchema.parse({ ...HEAD, ...extra }), CTX)
    : new Mim('dino+mim', dinoMimSchema.parse({ ...HEAD, localCount: 2, localSize: 8, ...extra }), CTX);
}

t('the student has the mask token, the teacher (evaluated backbone) has none', () => {
  const m = make('dino+mim');
  assert.ok(m.student.stateDict().has('backbone.masked_embed'));
  assert.ok(!m.teacher.stateDict().has('backbone.masked_embed'));
  assert.equal(m.evalBackbone(), m.teacher.backbone);
  assert.ok(m.teacher.stateDict().has('center') && m.teacher.stateDict().has('center2'));
  assert.ok(!make('mim').teacher.stateDict().has('center'));
  assert.equal(make('mim').views().localCount, 0);
  assert.equal(m.views().localCount, 2);
  assert.equal(make('mim', { sharedHead: false, patchOutDim: 20 }).student.head.lastLayer2?.weightV.shape[0], 20);
});

for (const name of ['mim', 'dino+mim'] as const) {
  t(`${name}: loss equals a float64 re-computation from independent forward passes`, () => {
    manualSeed(9);
    // CLS teacher temperature pinned to DINO's 0.04 and the patch one to its post-warm-up 0.07 (no warm-up), the
    // values the re-computation below uses
    const m = make(name, {
      maskProb: 1,
      warmupTeacherTempEpochs: 0,
      ...(name === 'dino+mim' ? { teacherTemp: 0.04, warmupTeacherTemp: 0.04 } : {}),
    });
    const B = 3;
    const views = [
      randn([B, 3, 16, 16]),
      randn([B, 3, 16, 16]),
      ...(name === 'dino+mim' ? [randn([B, 3, 8, 8]), randn([B, 3, 8, 8])] : []),
    ];
    const batch: TensorBatch = { views, extras: {}, indices: [4, 7, 9], size: B };
    const step = info(3);
    // centres away from zero so that centring is exercised
    noGrad(() => {
      m.teacher.center2.copy_(randn([1, 24]).mul(0.3));
      m.teacher.center?.copy_(randn([1, 24]).mul(0.3));
    });
    const got = m.loss(batch, step);
    // the same masks, drawn again
    const mask = m.masks(batch, step, 4, 4);
    assert.equal(mask.length, 2 * B * 16);
    assert.ok(mask.some((x) => x === 1));
    // independent passes: teacher on the unmasked globals, student with masked_embed at the masked patches
    const { sAll, tAll, sCls, tCls } = noGrad(() => {
      const g = cat(views.slice(0, 2), 0);
      const tOut = m.teacher.backbone.forward(g);
      const sOut = m.student.backbone.forward(g, { mask: tensor(mask, [2 * B, 16], { dtype: 'bool' }) });
      const head = (net: typeof m.student, x: Tensor) => net.head.lastLayer.forward(net.head.embed(x));
      const sc = [sOut.cls, ...(views.length > 2 ? [m.student.backbone.forward(cat(views.slice(2), 0)).cls] : [])];
      return {
        sAll: head(m.student, sOut.patches).toNumbers(),
        tAll: head(m.teacher, tOut.patches).toNumbers(),
        sCls: head(m.student, cat(sc, 0)).toNumbers(),
        tCls: head(m.teacher, tOut.cls).toNumbers(),
      };
    });
    const c2 = m.teacher.center2.toNumbers();
    const mask3 = [0, 1].map((v) =>
      Array.from({ length: B }, (_, b) => Array.from(mask.subarray((v * B + b) * 16, (v * B + b + 1) * 16))),
    );
    const mimLoss = ibotPatchLoss(grid(sAll, [2, B, 16, 24]), grid(tAll, [2, B, 16, 24]), mask3, c2, 0.1, 0.07);
    close([(got.logs.mim_loss as Tensor).item()], [mimLoss], 1e-5, 'mim loss');
    let expected = mimLoss;
    if (name === 'dino+mim') {
      const c = m.teacher.center?.toNumbers() as number[];
      const row = (a: number[], v: number, b: number) => a.slice((v * B + b) * 24, (v * B + b + 1) * 24);
      let sum = 0;
      let n = 0;
      for (let i = 0; i < 2; i++)
        for (let v = 0; v < views.length; v++) {
          if (v === i) continue;
          for (let b = 0; b < B; b++) sum += ce(row(sCls, v, b), row(tCls, i, b), c, 0.1, 0.04) / B;
          n++;
        }
      close([(got.logs.cls_loss as Tensor).item()], [sum / n], 1e-5, 'cls loss');
      expected += sum / n;
    }
    close([got.loss.item()], [expected], 1e-5, 'total');
  });
}

t('dino+mim: centres follow their EMA (CLS from the teacher globals, patch centre from all their patches)', () => {
  manualSeed(10);
  const m = make('dino+mim');
  const views = [randn([2, 3, 16, 16]), randn([2, 3, 16, 16]), randn([2, 3, 8, 8]), randn([2, 3, 8, 8])];
  const { cls, patch } = noGrad(() => {
    const out = m.teacher.backbone.forward(cat(views.slice(0, 2), 0));
    const head = (x: Tensor) => m.teacher.head.lastLayer.forward(m.teacher.head.embed(x));
    return { cls: head(out.cls), patch: head(out.patches.reshape(-1, 16)) };
  });
  tidy(() => m.loss({ views, extras: {}, indices: [0, 1], size: 2 }, info(0, 1)));
  m.afterStep(info(0, 1), comm);
  close(m.teacher.center?.toNumbers() ?? [], cls.mean(0).mul(0.1).toNumbers(), 1e-5, 'CLS centre');
  close(m.teacher.center2.toNumbers(), patch.mean(0).mul(0.1).toNumbers(), 1e-5, 'patch centre');
});

// DINO-style losses first rise while the centres catch up with the teacher's mean output; the centres
// are warmed up with the teacher held fixed, then the student trains against a slowly moving teacher.
// The step number is held at 0 so that every step draws the same masks (masks are keyed by step).
function shortRun(m: Method, views: Tensor[], steps: number): number[] {
  const { decay, noDecay } = decayGroups(m.student.namedParameters());
  const opt = new AdamW([
    { params: decay.map(([, p]) => p), lr: 1e-3, weightDecay: 0.04 },
    { params: noDecay.map(([, p]) => p), lr: 1e-3, weightDecay: 0 },
  ]);
  const batch: TensorBatch = { views, extras: {}, indices: [0, 1, 2, 3], size: 4 };
  for (let s = 0; s < 40; s++) {
    tidy(() => m.loss(batch, info(0, 1)));
    m.afterStep(info(0, 1), comm);
  }
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const i = info(0, 0.996);
    losses.push(
      tidy(() => {
        const { loss, logs } = m.loss(batch, i);
        opt.zeroGrad();
        loss.backward();
        for (const v of Object.values(logs)) assert.ok(Number.isFinite(typeof v === 'number' ? v : v.item()));
        return loss.item();
      }),
    );
    m.beforeOptimizerStep?.(i);
    opt.step();
    m.afterStep(i, comm);
  }
  return losses;
}

for (const name of ['mim', 'dino+mim'] as const) {
  t(`${name}: a short run gives finite, falling loss`, () => {
    manualSeed(7);
    const m = make(name, { maskProb: 1, freezeLastLayerSteps: 0 });
    const off = randn([4, 3, 1, 1]).mul(2);
    const img = (s: number) => randn([4, 3, s, s]).mul(0.5).add(off);
    const views = [img(16), img(16), ...(name === 'dino+mim' ? [img(8), img(8)] : [])];
    const losses = shortRun(m, views, 12);
    assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    assert.ok(
      mean(losses.slice(-4)) < 0.75 * mean(losses.slice(0, 4)),
      `loss did not fall: ${losses.map((l) => l.toFixed(3))}`,
    );
  });
}
