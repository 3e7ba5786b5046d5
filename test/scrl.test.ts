// SCRL (src/methods/scrl.ts): matched boxes pool the same content in both views (flip included), the loss
// against a float64 re-computation, images without boxes, and a short run on the default data.
import assert from 'node:assert/strict';
import test from 'node:test';
import { toTensors } from '../src/data/collate.js';
import { openDataset } from '../src/data/datasets.js';
import { boxToSource, sampleScrlBoxes, viewToSource } from '../src/data/geometry.js';
import { Rng } from '../src/data/rng.js';
import type { Box, ViewGeometry } from '../src/data/types.js';
import { buildBatch } from '../src/data/worker.js';
import { manualSeed, tensor, tidy } from '../src/engine/index.js';
import type { MethodContext, StepInfo } from '../src/methods/method.js';
import { roiAlign } from '../src/methods/roi.js';
import { pairBoxes, Scrl, scrlLoss, scrlSchema, tokensToMap } from '../src/methods/scrl.js';
import { cosineSchedule, decayGroups, SGD, type VitConfig } from '../src/nn/index.js';

const P = 4; // patch
const S = 32; // view side
const n = S / P; // 8x8 grid

/** Linear source content, 3 channels: f(x, y) = (x, y, x − 2y + 10). */
const content = (x: number, y: number) => [x, y, x - 2 * y + 10];

/**
 * Patch tokens [1, n·n, 3] (raster order of the view's output frame) of an ideal equivariant encoder:
 * each token is the content at its patch centre's source point.
 */
function tokens(g: ViewGeometry): number[] {
  const out: number[] = [];
  for (let r = 0; r < n; r++)
    for (let c = 0; c < n; c++) out.push(...content(...viewToSource(g, [(c + 0.5) * P, (r + 0.5) * P])));
  return out;
}

test('scrl: matched boxes of a flipped pair pool the same content (aligned); the reference (unaligned) shifts by half a patch', () => {
  const g1: ViewGeometry = { box: [6, 10, 38, 42], size: S, flipped: false, rotation: 0 }; // scale 1
  const g2: ViewGeometry = { box: [0, 4, 48, 52], size: S, flipped: true, rotation: 0 }; // scale 2/3, mirrored
  const pairs = sampleScrlBoxes(g1, g2, new Rng(7), { count: 30 });
  assert.equal(pairs.length, 30);
  // The method's path: tokens → [B, C, h, w] map, the two views batched as [view 1; view 2], view-2 indices + B.
  const toks = tensor([...tokens(g1), ...tokens(g2)], [2, n * n, 3], { dtype: 'float64' });
  const map = tokensToMap(toks, [n, n]);
  const rows = (i: 0 | 1) => Float64Array.from(pairs.flatMap((p) => [0, ...(p[i] as Box)]));
  const boxes = pairBoxes(rows(0), rows(1), 1);
  // Interior boxes only: bilinear interpolation of linear content is exact there (no border clamping).
  const inside = (b: Box, off: number) =>
    b[0] / P - off >= 0 && b[1] / P - off >= 0 && b[2] / P - off <= n - 1 && b[3] / P - off <= n - 1;
  const K = pairs.length;

  const al = roiAlign(map, boxes, { outputSize: 1, spatialScale: 1 / P, aligned: true }).toNumbers(); // [2K, 3]
  let checked = 0;
  pairs.forEach(([b1, b2], k) => {
    if (!inside(b1, 0.5) || !inside(b2, 0.5)) return;
    const src = boxToSource(g1, b1);
    const want = content((src[0] + src[2]) / 2, (src[1] + src[3]) / 2); // content at the box centre
    for (let c = 0; c < 3; c++) {
      assert.ok(Math.abs((al[3 * k + c] as number) - (want[c] as number)) < 1e-9, `view 1 box ${k}`);
      assert.ok(Math.abs((al[3 * (K + k) + c] as number) - (want[c] as number)) < 1e-9, `view 2 box ${k}`);
    }
    checked++;
  });
  assert.ok(checked >= 3, `only ${checked} interior boxes`);

  // aligned=False (the reference's setting): cell i is read as sitting at coordinate i, not i + 0.5, so each
  // view pools the content half a patch right/down of the box centre *in its own frame*; in the flipped view
  // that is half a patch to the left in the source: the two views disagree by the content's gradient.
  const un = roiAlign(map, boxes, { outputSize: 1, spatialScale: 1 / P, aligned: false }).toNumbers();
  checked = 0;
  pairs.forEach(([b1, b2], k) => {
    if (!inside(b1, 0) || !inside(b2, 0)) return;
    for (const [g, b, row] of [
      [g1, b1, k],
      [g2, b2, K + k],
    ] as [ViewGeometry, Box, number][]) {
      const want = content(...viewToSource(g, [(b[0] + b[2]) / 2 + P / 2, (b[1] + b[3]) / 2 + P / 2]));
      for (let c = 0; c < 3; c++)
        assert.ok(Math.abs((un[3 * row + c] as number) - (want[c] as number)) < 1e-9, `unaligned box ${row}`);
    }
    assert.ok(Math.abs((un[3 * k] as number) - (un[3 * (K + k)] as number)) > 1, 'the flip pair disagrees in x');
    checked++;
  });
  assert.ok(checked >= 3, `only ${checked} interior boxes (unaligned)`);
});

test('scrl: loss value against a float64 re-computation of the reference formula', () => {
  const K = 5;
  const d = 7;
  let s = 99;
  const rnd = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296 - 0.5;
  };
  const p = Array.from({ length: 2 * K * d }, rnd);
  const t = Array.from({ length: 2 * K * d }, rnd);
  const got = scrlLoss(tensor(p, [2 * K, d]), tensor(t, [2 * K, d])).item();
  // ℓ(x, y) = 2 − 2 x·y/(|x||y|); rows 0..K−1 are view 1, K..2K−1 view 2.
  const row = (a: number[], i: number) => a.slice(i * d, (i + 1) * d);
  const ell = (x: number[], y: number[]) => {
    const dot = x.reduce((acc, v, i) => acc + v * (y[i] as number), 0);
    const nx = Math.hypot(...x);
    const ny = Math.hypot(...y);
    return 2 - (2 * dot) / (nx * ny);
  };
  let want = 0;
  for (let k = 0; k < K; k++) want += ell(row(p, k), row(t, K + k)) + ell(row(p, K + k), row(t, k));
  want /= K;
  assert.ok(Math.abs(got - want) < 1e-5, `${got} vs ${want}`);
});

const VIT: VitConfig = {
  imgSize: 32,
  patchSize: 4,
  inChans: 3,
  dim: 32,
  depth: 2,
  heads: 2,
  mlpRatio: 2,
  qkvBias: true,
  dropPathRate: 0,
  maskToken: false,
};
const ctx = (totalSteps: number): MethodContext => ({ vit: VIT, batchSize: 16, totalSteps, seed: 0 });
const info = (step: number, totalSteps: number, momentum = 0.97): StepInfo => ({
  step,
  totalSteps,
  epoch: 0,
  stepsPerEpoch: totalSteps,
  lr: 0,
  weightDecay: 0,
  momentum,
});

test('scrl: images without boxes contribute nothing; a batch without boxes gives a zero loss', () => {
  manualSeed(1);
  const m = new Scrl(scrlSchema.parse({ hiddenDim: 64, outDim: 16 }), ctx(1));
  const img = (seed: number, images = 1) => {
    let s = seed;
    return Array.from({ length: images * 3 * 32 * 32 }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 4294967296;
    });
  };
  const boxes = (rows: number[][]) => tensor(rows.flat(), [rows.length, 5]);
  const [a1, a2] = [img(1), img(2)];
  // Image 0 has two boxes in each view; image 1 has none and its pixels change with `seed`.
  const run = (seed: number) =>
    tidy(() => {
      const other = img(seed);
      const views = [tensor([...a1, ...other], [2, 3, 32, 32]), tensor([...a2, ...other], [2, 3, 32, 32])];
      const b1 = boxes([
        [0, 2, 3, 20, 18],
        [0, 10, 12, 30, 30],
      ]);
      const b2 = boxes([
        [0, 0, 5, 16, 21],
        [0, 12, 8, 31, 28],
      ]);
      return m
        .loss({ views, extras: { scrl_boxes1: b1, scrl_boxes2: b2 }, indices: [0, 1], size: 2 }, info(0, 1))
        .loss.item();
    });
  const a = run(3);
  const b = run(4);
  assert.ok(Number.isFinite(a));
  assert.ok(Math.abs(a - b) < 1e-5, `${a} vs ${b}`);

  const zero = tidy(() => {
    const views = [tensor(img(1, 2), [2, 3, 32, 32]), tensor(img(2, 2), [2, 3, 32, 32])];
    const empty = tensor(new Float32Array(0), [0, 5]);
    const out = m.loss(
      { views, extras: { scrl_boxes1: empty, scrl_boxes2: empty }, indices: [0, 1], size: 2 },
      info(0, 1),
    );
    out.loss.backward();
    return { loss: out.loss.item(), skipped: out.logs.scrl_skipped };
  });
  assert.equal(zero.loss, 0);
  assert.equal(zero.skipped, 1);
  assert.throws(
    () =>
      tidy(() =>
        m.loss(
          {
            views: [tensor(img(1, 2), [2, 3, 32, 32]), tensor(img(2, 2), [2, 3, 32, 32])],
            extras: { scrl_boxes1: boxes([[0, 1, 1, 9, 9]]), scrl_boxes2: tensor(new Float32Array(0), [0, 5]) },
            indices: [0, 1],
            size: 2,
          },
          info(0, 1),
        ),
      ),
    /view 1 has 1 boxes but view 2 has 0/,
  );
});

test('scrl: the target starts from its own random init, not a copy of the online network', () => {
  manualSeed(2);
  const m = new Scrl(scrlSchema.parse({ hiddenDim: 32, outDim: 8 }), ctx(1));
  const a = m.student.encoder.patchEmbed.proj.weight.toNumbers();
  const b = m.teacher.encoder.patchEmbed.proj.weight.toNumbers();
  assert.ok(a.some((v, i) => v !== b[i]));
  assert.equal(
    m.teacher.parameters().some((p) => p.requiresGrad),
    false,
  );
});

test('scrl: a short run on the default data has a finite, falling loss', async () => {
  manualSeed(0);
  const steps = 20;
  const B = 16;
  const m = new Scrl(scrlSchema.parse({ hiddenDim: 256, outDim: 64 }), ctx(steps));
  const { decay, noDecay } = decayGroups(m.student.namedParameters());
  const opt = new SGD(
    [
      { params: decay.map(([, p]) => p), lr: 0, weightDecay: 1e-6, lars: true },
      { params: noDecay.map(([, p]) => p), lr: 0, weightDecay: 0, lars: false },
    ],
    { momentum: 0.9, trustCoef: 0.001 },
  );
  // A short-run lr (LARS steps are lr·0.001 relative; the reference's 0.45·B/256 needs thousands of steps).
  const lr = cosineSchedule(1.5, 0, steps, 4);
  const mom = cosineSchedule(0.97, 1, steps);
  const ds = await openDataset({ kind: 'scenes', split: 'train', length: B * steps });
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const raw = await buildBatch(
      ds,
      m.views(),
      0,
      0,
      Array.from({ length: B }, (_, i) => s * B + i),
    );
    const st = info(s, steps, mom[s] as number);
    const l = tidy(() => {
      const batch = toTensors(raw);
      const out = m.loss(batch, st);
      out.loss.backward();
      return out.loss.item();
    });
    opt.setSchedule(lr[s] as number);
    opt.step();
    opt.zeroGrad();
    m.afterStep(st, { worldSize: 1, allReduceMean: () => {} });
    losses.push(l);
    if (process.env.LOCUS_TEST_VERBOSE) console.log(s, l.toFixed(4));
  }
  assert.ok(losses.every(Number.isFinite), `non-finite loss: ${losses}`);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(losses.slice(0, 3));
  const last = mean(losses.slice(-5));
  assert.ok(
    last < first * 0.8,
    `loss did not fall: first ${first.toFixed(3)}, last ${last.toFixed(3)} (${losses.map((x) => x.toFixed(2)).join(' ')})`,
  );
});
