// GTSA (src/methods/gtsa.ts): quarter-turn rotation of maps (CCW, the data side's convention), RoI pooling
// commuting with it, the crop and patch-correspondence losses against a float64 re-computation written here,
// the rotation labels and loss composition of a real batch, the pc warm-up, and a short run.
import assert from 'node:assert/strict';
import test from 'node:test';
import { rot90 } from '../src/data/augment.js';
import { toTensors } from '../src/data/collate.js';
import { openDataset } from '../src/data/datasets.js';
import { gtsaBoxes, rotateBox, viewToSource } from '../src/data/geometry.js';
import { Rng } from '../src/data/rng.js';
import type { Box, ViewGeometry } from '../src/data/types.js';
import { makeViews } from '../src/data/views.js';
import { buildBatch, collate } from '../src/data/worker.js';
import { cat, manualSeed, noGrad, tensor, tidy } from '../src/engine/index.js';
import { Gtsa, gtsaPairLosses, gtsaSchema, rotateQuarter, unitStd } from '../src/methods/gtsa.js';
import type { MethodContext, StepInfo } from '../src/methods/method.js';
import { roiAlign } from '../src/methods/roi.js';
import { AdamW, clipGradPerTensor, cosineSchedule, decayGroups, type VitConfig } from '../src/nn/index.js';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
}
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string) => {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs((a[i] as number) - (b[i] as number)) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

/** One CCW quarter turn of a C×n×n map (flat CHW), by the geometry rule (x, y) → (y, n − x): out[r][c] = in[c][n−1−r]. */
function turn(m: number[], C: number, n: number, k: number): number[] {
  let cur = m;
  for (let t = 0; t < ((k % 4) + 4) % 4; t++) {
    const out = new Array<number>(cur.length);
    for (let ch = 0; ch < C; ch++)
      for (let r = 0; r < n; r++)
        for (let c = 0; c < n; c++) out[(ch * n + r) * n + c] = cur[(ch * n + c) * n + (n - 1 - r)] as number;
    cur = out;
  }
  return cur;
}

test('rotateQuarter: per-sample CCW quarter turns, the same as the data side rotating the image', () => {
  const C = 2;
  const n = 5;
  const rnd = lcg(3);
  const ks = [0, 1, 2, 3, 1, 3];
  const maps = ks.map(() => Array.from({ length: C * n * n }, rnd));
  const got = rotateQuarter(tensor(maps.flat(), [ks.length, C, n, n], { dtype: 'float64' }), ks).toNumbers();
  ks.forEach((k, b) => {
    // augment.rot90 works on HWC images: convert, rotate, convert back.
    const hwc = new Float32Array(n * n * C);
    for (let ch = 0; ch < C; ch++)
      for (let i = 0; i < n * n; i++) hwc[i * C + ch] = (maps[b] as number[])[ch * n * n + i] as number;
    const img = rot90({ data: hwc, width: n, height: n, channels: C }, k);
    const chw: number[] = [];
    for (let ch = 0; ch < C; ch++) for (let i = 0; i < n * n; i++) chw.push(img.data[i * C + ch] as number);
    close(got.slice(b * C * n * n, (b + 1) * C * n * n), chw, 1e-6, `k=${k}`);
    close(got.slice(b * C * n * n, (b + 1) * C * n * n), turn(maps[b] as number[], C, n, k), 0, `turn k=${k}`);
  });
});

test('RoI pooling commutes with quarter turns: RoI(rot(F), rotBox(b)) = rot(RoI(F, b)) (aligned, adaptive)', () => {
  const C = 3;
  const n = 8;
  const S = 32; // a 32-px view with patch 4
  const F = Array.from({ length: C * n * n }, lcg(11));
  const boxes: Box[] = [
    [3, 5, 29, 17],
    [0, 0, 32, 32],
    [10.3, 2.2, 14.9, 30.1],
    [0, 20, 7, 32],
  ];
  for (const out of [6, 3]) {
    const o = { outputSize: out, spatialScale: 1 / 4, samplingRatio: -1, aligned: true };
    for (const b of boxes) {
      const base = roiAlign(tensor(F, [1, C, n, n], { dtype: 'float64' }), [[0, ...b]], o).toNumbers();
      for (const k of [1, 2, 3]) {
        const rotated = tensor(turn(F, C, n, k), [1, C, n, n], { dtype: 'float64' });
        const lhs = roiAlign(rotated, [[0, ...rotateBox(b, k, S)]], o).toNumbers();
        close(lhs, turn(base, C, out, k), 1e-12, `out ${out} box [${b}] k ${k}`);
      }
    }
  }
});

/** Position-coding content of a 64-px source: unit vectors whose direction changes with x and with y. */
const content = (x: number, y: number) => {
  const w = (2 * Math.PI) / 48;
  return [Math.cos(w * x), Math.sin(w * x), Math.cos(w * y), Math.sin(w * y)];
};
/** [C, n, n] map of an ideal equivariant encoder for a view: content at each patch centre (rotated frame). */
function viewMap(g: ViewGeometry, patch: number): number[] {
  const n = g.size / patch;
  const out = new Array<number>(4 * n * n);
  for (let r = 0; r < n; r++)
    for (let c = 0; c < n; c++) {
      const f = content(...viewToSource(g, [(c + 0.5) * patch, (r + 0.5) * patch]));
      f.forEach((v, ch) => {
        out[(ch * n + r) * n + c] = v;
      });
    }
  return out;
}

test('gtsa crop loss: teacher RoI maps rotated by (angle_v − angle_i) CCW line up with the student (boxes from the data side)', () => {
  const views: ViewGeometry[] = [
    { box: [4, 2, 54, 52], size: 32, flipped: false, rotation: 1 },
    { box: [10, 12, 62, 60], size: 32, flipped: false, rotation: 2 },
    { box: [14, 16, 36, 38], size: 16, flipped: false, rotation: 3 },
    { box: [30, 20, 50, 40], size: 16, flipped: false, rotation: 0 },
  ];
  const gb = gtsaBoxes(views, 2);
  const maps = views.map((g) => tensor(viewMap(g, 4), [1, 4, g.size / 4, g.size / 4], { dtype: 'float64' }));
  const run = (rotation: number[]) =>
    gtsaPairLosses({
      teacher: maps.slice(0, 2),
      student: maps,
      gc: gb.gc,
      all: gb.all,
      rotation,
      patch: 4,
      roiOut: [6, 3],
      numMatches: [32, 8],
    }).crop.item();
  const right = run(views.map((v) => v.rotation));
  const wrong = run(views.map((v) => (4 - v.rotation) % 4)); // the opposite (clockwise) convention
  assert.ok(right < -0.97, `aligned crops should agree: crop loss ${right}`);
  assert.ok(wrong > right + 0.2, `the clockwise convention should disagree: ${wrong} vs ${right}`);
});

// ---------------------------------------------------------------- float64 re-computation of the losses

function refRoi(m: number[], C: number, n: number, box: number[], out: number, scale: number): number[] {
  const at = (c: number, y: number, x: number) => m[(c * n + y) * n + x] as number;
  const bil = (c: number, y: number, x: number) => {
    if (y < -1 || y > n || x < -1 || x > n) return 0;
    y = Math.max(y, 0);
    x = Math.max(x, 0);
    let y0 = Math.floor(y);
    let x0 = Math.floor(x);
    let y1 = y0 + 1;
    let x1 = x0 + 1;
    if (y0 >= n - 1) [y0, y1, y] = [n - 1, n - 1, n - 1];
    if (x0 >= n - 1) [x0, x1, x] = [n - 1, n - 1, n - 1];
    const ly = y - y0;
    const lx = x - x0;
    return (
      (1 - ly) * (1 - lx) * at(c, y0, x0) +
      (1 - ly) * lx * at(c, y0, x1) +
      ly * (1 - lx) * at(c, y1, x0) +
      ly * lx * at(c, y1, x1)
    );
  };
  const [x1, y1, x2, y2] = box.map((v) => v * scale - 0.5) as [number, number, number, number];
  const bw = (x2 - x1) / out;
  const bh = (y2 - y1) / out;
  const gx = Math.ceil((x2 - x1) / out);
  const gy = Math.ceil((y2 - y1) / out);
  const res: number[] = [];
  for (let c = 0; c < C; c++)
    for (let i = 0; i < out; i++)
      for (let j = 0; j < out; j++) {
        let s = 0;
        for (let iy = 0; iy < gy; iy++)
          for (let ix = 0; ix < gx; ix++) s += bil(c, y1 + (i + (iy + 0.5) / gy) * bh, x1 + (j + (ix + 0.5) / gx) * bw);
        res.push(s / Math.max(gx * gy, 1));
      }
  return res;
}
const cos = (a: number[], b: number[]) => {
  let d = 0;
  let na = 0;
  let nb = 0;
  a.forEach((v, i) => {
    d += v * (b[i] as number);
    na += v * v;
    nb += (b[i] as number) ** 2;
  });
  return d / Math.sqrt(na * nb);
};
/** Column (location) vectors of a flat [C, L] map. */
const columns = (m: number[], C: number, L: number) =>
  Array.from({ length: L }, (_, l) => Array.from({ length: C }, (_, c) => m[c * L + l] as number));
/** The reference's nearest-neighbour loss for one sample: best cosine per input location, the k best, mean of −cos. */
function refNn(input: number[][], cand: number[][], k: number): number {
  const best = input.map((x) => Math.max(...cand.map((y) => cos(x, y))));
  best.sort((a, b) => b - a);
  return -best.slice(0, k).reduce((a, b) => a + b, 0) / k;
}

test('gtsa losses: crop and patch-correspondence values against a float64 re-computation', () => {
  const rnd = lcg(5);
  const B = 2;
  const C = 5;
  const G = 2;
  const sizes = [8, 8, 4, 4]; // grids: 2 global, 2 local views
  const V = sizes.length;
  const maps = sizes.map((n) => Array.from({ length: B * C * n * n }, () => rnd() * 2 - 1));
  const rotation = Array.from({ length: B * V }, () => Math.floor(rnd() * 4));
  // Boxes: valid boxes in pixels of each view (32 px global, 16 px local, patch 4).
  const px = (v: number) => (sizes[v] as number) * 4;
  const box = (v: number) => {
    const S = px(v);
    const x1 = rnd() * S * 0.5;
    const y1 = rnd() * S * 0.5;
    return [x1, y1, x1 + 1 + rnd() * (S - x1 - 1), y1 + 1 + rnd() * (S - y1 - 1)];
  };
  const gc = new Float64Array(B * G * V * 4);
  const all = new Float64Array(B * V * G * 4);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < G; i++)
      for (let v = 0; v < V; v++) {
        gc.set(box(i), ((b * G + i) * V + v) * 4);
        all.set(box(v), ((b * V + v) * G + i) * 4);
      }
  const roiOut: [number, number] = [6, 3];
  const numMatches: [number, number] = [32, 8];
  const t = (v: number) =>
    tensor(maps[v] as number[], [B, C, sizes[v] as number, sizes[v] as number], { dtype: 'float64' });
  const got = gtsaPairLosses({
    teacher: [t(0), t(1)],
    student: [0, 1, 2, 3].map(t),
    gc,
    all,
    rotation,
    patch: 4,
    roiOut,
    numMatches,
  });

  let crop = 0;
  let pc = 0;
  let pairs = 0;
  const sample = (v: number, b: number) => {
    const n = sizes[v] as number;
    return (maps[v] as number[]).slice(b * C * n * n, (b + 1) * C * n * n);
  };
  for (let i = 0; i < G; i++)
    for (let v = 0; v < V; v++) {
      if (v === i) continue;
      const local = v >= G ? 1 : 0;
      const out = roiOut[local] as number;
      const M = numMatches[local] as number;
      let cropPair = 0;
      let pcPair = 0;
      for (let b = 0; b < B; b++) {
        const tb = Array.from(gc.subarray(((b * G + i) * V + v) * 4, ((b * G + i) * V + v) * 4 + 4));
        const sb = Array.from(all.subarray(((b * V + v) * G + i) * 4, ((b * V + v) * G + i) * 4 + 4));
        const tAl = turn(
          refRoi(sample(i, b), C, 8, tb, out, 0.25),
          C,
          out,
          (rotation[b * V + v] as number) - (rotation[b * V + i] as number),
        );
        const sAl = refRoi(sample(v, b), C, sizes[v] as number, sb, out, 0.25);
        const tc = columns(tAl, C, out * out);
        const sc = columns(sAl, C, out * out);
        cropPair += sc.reduce((a, s, l) => a - cos(s, tc[l] as number[]), 0) / (out * out);
        const teaCols = columns(sample(i, b), C, 64);
        const stuCols = columns(sample(v, b), C, (sizes[v] as number) ** 2);
        pcPair += 0.5 * (refNn(stuCols, teaCols, M) + refNn(teaCols, stuCols, M));
      }
      crop += cropPair / B;
      pc += pcPair / B;
      pairs++;
    }
  assert.equal(got.pairs, 6);
  assert.ok(Math.abs(got.crop.item() - crop / pairs) < 1e-10, `crop ${got.crop.item()} vs ${crop / pairs}`);
  assert.ok(Math.abs(got.pc.item() - pc / pairs) < 1e-10, `pc ${got.pc.item()} vs ${pc / pairs}`);
});

// ---------------------------------------------------------------- the method on real batches

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
const ctx = (totalSteps: number, batchSize = 8): MethodContext => ({ vit: VIT, batchSize, totalSteps, seed: 0 });
const info = (step: number, totalSteps: number, momentum = 0.99): StepInfo => ({
  step,
  totalSteps,
  epoch: 0,
  stepsPerEpoch: totalSteps,
  lr: 0,
  weightDecay: 0,
  momentum,
});

test('gtsa: rotation labels follow each view, total = crop + λ_pc·pc + 0.5·rot, pc off during the warm-up', async () => {
  manualSeed(4);
  const m = new Gtsa(gtsaSchema.parse({ rotHidden: 64, rotBottleneck: 16 }), ctx(100));
  assert.equal(m.pcCoef(info(9, 100)), 0);
  assert.equal(m.pcCoef(info(10, 100)), 0.5);
  const B = 4;
  const ds = await openDataset({ kind: 'scenes', split: 'train', length: B });
  const raw = await buildBatch(ds, m.views(), 0, 0, [0, 1, 2, 3]);
  for (const step of [0, 50]) {
    const r = tidy(() => {
      const batch = toTensors(raw);
      const out = m.loss(batch, info(step, 100));
      const logs = Object.fromEntries(
        Object.entries(out.logs).map(([k, v]) => [k, typeof v === 'number' ? v : v.item()]),
      );
      // Independent recomputation of the rotation loss: logits of each view's mean patch token, labels from view_rotation [B, V].
      const pooled = noGrad(() =>
        cat(
          m.student.encode(batch.views).tokens.map((t) => t.mean(1)),
          0,
        ),
      );
      const logits = noGrad(() => m.student.rotHead.forward(pooled)).toNumbers();
      return {
        loss: out.loss.item(),
        logs,
        logits,
        pooled: pooled.toNumbers(),
        rot: batch.extras.view_rotation?.toNumbers() as number[],
      };
    });
    const V = 10;
    let ce = 0;
    let hits = 0;
    for (let v = 0; v < V; v++)
      for (let b = 0; b < B; b++) {
        const z = r.logits.slice((v * B + b) * 4, (v * B + b) * 4 + 4);
        const label = r.rot[b * V + v] as number;
        const mx = Math.max(...z);
        ce += Math.log(z.reduce((a, x) => a + Math.exp(x - mx), 0)) + mx - (z[label] as number);
        if (z.indexOf(mx) === label) hits++;
      }
    ce /= V * B;
    assert.ok(Math.abs(r.logs.rot_loss - ce) < 1e-4, `rot loss ${r.logs.rot_loss} vs ${ce}`);
    assert.ok(Math.abs(r.logs.rot_acc - hits / (V * B)) < 1e-6);
    const lambda = step === 0 ? 0 : 0.5;
    assert.equal(r.logs.pc_coef, lambda);
    const want = r.logs.crop_loss + lambda * r.logs.pc_loss + 0.5 * r.logs.rot_loss;
    assert.ok(Math.abs(r.loss - want) < 1e-4, `total ${r.loss} vs ${want}`);
    assert.ok(r.logs.pc_loss < 0 && r.logs.pc_loss >= -1);
    // feat_std: the 2·B global rows (view-major) of the pooled tokens, L2-normalised, per-channel unbiased std,
    // mean over channels × √D.
    const D = VIT.dim;
    const rows = Array.from({ length: 2 * B }, (_, i) => {
      const x = r.pooled.slice(i * D, (i + 1) * D);
      const n = Math.sqrt(x.reduce((a, v) => a + v * v, 0));
      return x.map((v) => v / n);
    });
    let sd = 0;
    for (let c = 0; c < D; c++) {
      const col = rows.map((x) => x[c] as number);
      const mu = col.reduce((a, v) => a + v, 0) / col.length;
      sd += Math.sqrt(col.reduce((a, v) => a + (v - mu) ** 2, 0) / (col.length - 1));
    }
    const featStd = (sd / D) * Math.sqrt(D);
    assert.ok(Math.abs(r.logs.feat_std - featStd) < 1e-4, `feat_std ${r.logs.feat_std} vs ${featStd}`);
  }
});

test('unitStd (the collapse indicators feat_std / teacher_std): 0 for one direction, 1 for orthogonal or opposite unit vectors', () => {
  // [N, C, 1, 1] rows. (3, 4) and (6, 8) normalise to the same (0.6, 0.8): per-channel std 0.
  const one = unitStd(tensor([3, 4, 6, 8, 0.3, 0.4], [3, 2, 1, 1], { dtype: 'float64' })).item();
  assert.ok(Math.abs(one) < 1e-12, `collapsed: ${one}`);
  // (1, 0), (0, 5) → (1, 0), (0, 1): each channel holds {1, 0}, unbiased std √½; mean √½ × √2 = 1.
  const orth = unitStd(tensor([1, 0, 0, 5], [2, 2, 1, 1], { dtype: 'float64' })).item();
  assert.ok(Math.abs(orth - 1) < 1e-12, `orthogonal: ${orth}`);
  // (2, 0), (−1, 0): channel 0 holds {1, −1}, std √2; channel 1 std 0; mean √2/2 × √2 = 1.
  const opp = unitStd(tensor([2, 0, -1, 0], [2, 2, 1, 1], { dtype: 'float64' })).item();
  assert.ok(Math.abs(opp - 1) < 1e-12, `opposite: ${opp}`);
  // Locations of a [B, C, h, w] map count as rows: one sample whose 2 locations are (1, 0) and (0, 1) → 1.
  const map = unitStd(tensor([1, 0, 0, 1], [1, 2, 1, 2], { dtype: 'float64' })).item();
  assert.ok(Math.abs(map - 1) < 1e-12, `map locations: ${map}`);
});

test('gtsa: the teacher starts as a copy of the student encoder + projector and has no gradients', () => {
  manualSeed(6);
  const m = new Gtsa(gtsaSchema.parse({}), ctx(1));
  const s = m.student.stateDict();
  for (const [k, t] of m.teacher.stateDict()) assert.deepEqual(t.toNumbers(), s.get(k)?.toNumbers(), k);
  assert.equal(
    m.teacher.parameters().some((p) => p.requiresGrad),
    false,
  );
  assert.throws(
    () => new Gtsa(gtsaSchema.parse({ numMatches: [32, 17] }), ctx(1)),
    /gtsa.numMatches\[1\] 17 exceeds the 16 tokens/,
  );
});

test('gtsa: a short run on the default data has a finite, falling loss', async () => {
  manualSeed(0);
  const steps = 20;
  const B = 16;
  const m = new Gtsa(gtsaSchema.parse({}), ctx(steps, B));
  const { decay, noDecay } = decayGroups(m.student.namedParameters());
  const opt = new AdamW([
    { params: decay.map(([, p]) => p), lr: 0, weightDecay: 0.04 },
    { params: noDecay.map(([, p]) => p), lr: 0, weightDecay: 0 },
  ]);
  const lr = cosineSchedule(2e-3, 1e-6, steps, 2);
  const mom = cosineSchedule(0.99, 1, steps);
  const ds = await openDataset({ kind: 'scenes', split: 'train', length: B * steps });
  const params = m.student.parameters();
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
      const out = m.loss(toTensors(raw), st);
      out.loss.backward();
      // The crop loss alone (λ_pc switches on after 10% of the steps and would move the total).
      return (out.logs.crop_loss as { item(): number }).item();
    });
    clipGradPerTensor(params, 3);
    opt.setSchedule(lr[s] as number);
    opt.step();
    opt.zeroGrad();
    m.afterStep(st, { worldSize: 1, allReduceMean: () => {} });
    losses.push(l);
  }
  assert.ok(losses.every(Number.isFinite), `non-finite loss: ${losses}`);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(losses.slice(0, 3));
  const last = mean(losses.slice(-5));
  assert.ok(
    last < first - 0.2,
    `crop loss did not fall: first ${first.toFixed(3)}, last ${last.toFixed(3)} (${losses.map((x) => x.toFixed(2)).join(' ')})`,
  );
});

test('gtsa: rot_acc rises far above chance in a short run when the images carry an orientation cue', () => {
  // Synthetic sources whose luminance falls from top to bottom (a cue that survives colour jitter and
  // grayscale), with random blobs; views, rotations and boxes come from the real GTSA view recipe.
  manualSeed(0);
  const steps = 30;
  const B = 16;
  const m = new Gtsa(gtsaSchema.parse({}), ctx(steps, B));
  const { decay, noDecay } = decayGroups(m.student.namedParameters());
  const opt = new AdamW([
    { params: decay.map(([, p]) => p), lr: 2e-3, weightDecay: 0.04 },
    { params: noDecay.map(([, p]) => p), lr: 2e-3, weightDecay: 0 },
  ]);
  const image = (seed: number) => {
    const rnd = lcg(seed);
    const S = 64;
    const data = new Float32Array(S * S * 3);
    const blobs = Array.from({ length: 4 }, () => [rnd() * S, rnd() * S, 3 + rnd() * 6, rnd()] as const);
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) {
        let v = 0.9 - (0.8 * y) / S;
        for (const [bx, by, r, c] of blobs) if ((x - bx) ** 2 + (y - by) ** 2 < r * r) v = c;
        data.fill(v, (y * S + x) * 3, (y * S + x) * 3 + 3);
      }
    return { data, width: S, height: S, channels: 3 };
  };
  const recipe = m.views();
  const params = m.student.parameters();
  const acc: number[] = [];
  for (let s = 0; s < steps; s++) {
    const idx = Array.from({ length: B }, (_, i) => s * B + i);
    const raw = collate(
      idx.map((i) => makeViews(recipe, { image: image(i + 1) }, new Rng(1000 + i))),
      idx,
      recipe,
    );
    const st = info(s, steps);
    acc.push(
      tidy(() => {
        const out = m.loss(toTensors(raw), st);
        out.loss.backward();
        return (out.logs.rot_acc as { item(): number }).item();
      }),
    );
    clipGradPerTensor(params, 3);
    opt.step();
    opt.zeroGrad();
    m.afterStep(st, { worldSize: 1, allReduceMean: () => {} });
  }
  const last = acc.slice(-10).reduce((a, b) => a + b, 0) / 10;
  assert.ok(
    last > 0.6,
    `rot_acc over the last 10 steps ${last.toFixed(3)} (chance 0.25): ${acc.map((a) => a.toFixed(2)).join(' ')}`,
  );
});
