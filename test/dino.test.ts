// DINO: the loss against a float64 computation by hand (and PyTorch's DINOLoss formula via Debian's
// python3-torch where present), the centre EMA, the teacher EMA after one real step, the frozen last
// layer, the interpolated position embedding at the native size, and a loss that falls on a fixed set.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import type { TensorBatch } from '../src/data/collate.js';
import {
  cat,
  interpolate,
  manualSeed,
  noGrad,
  randn,
  setNumThreads,
  type Tensor,
  tensor,
  tidy,
} from '../src/engine/index.js';
import { dinoCrossEntropy } from '../src/methods/common.js';
import { Dino, dinoDef, dinoSchema } from '../src/methods/dino.js';
import type { MethodContext, StepInfo } from '../src/methods/method.js';
import { AdamW, clipGradPerTensor, createVit, decayGroups, type VitConfig } from '../src/nn/index.js';

setNumThreads(1);
const comm = { worldSize: 1, allReduceMean: () => {} };
const info = (step: number, o: Partial<StepInfo> = {}): StepInfo => ({
  step,
  totalSteps: 100,
  epoch: 1,
  stepsPerEpoch: 100,
  lr: 1e-3,
  weightDecay: 0.04,
  momentum: 0.99,
  ...o,
});
const vit: VitConfig = {
  imgSize: 16,
  patchSize: 4,
  inChans: 3,
  dim: 32,
  depth: 2,
  heads: 2,
  mlpRatio: 2,
  qkvBias: true,
  dropPathRate: 0.1,
  maskToken: false,
};
const ctx: MethodContext = { vit, batchSize: 4, totalSteps: 100, seed: 0 };
const tinyOpts = (o: Record<string, unknown> = {}) =>
  dinoSchema.parse({ outDim: 16, hiddenDim: 24, bottleneckDim: 8, localCount: 2, localSize: 8, ...o });

function batch(B: number, seed: number, locals = 2): TensorBatch {
  manualSeed(seed);
  const views = [
    randn([B, 3, 16, 16]),
    randn([B, 3, 16, 16]),
    ...Array.from({ length: locals }, () => randn([B, 3, 8, 8])),
  ];
  return { views, extras: {}, indices: [], size: B };
}

function close(a: ArrayLike<number>, e: ArrayLike<number>, tol: number, msg: string): void {
  assert.equal(a.length, e.length, `${msg}: length`);
  for (let i = 0; i < a.length; i++)
    assert.ok(
      Math.abs((a[i] as number) - (e[i] as number)) <= tol * (1 + Math.abs(e[i] as number)),
      `${msg}[${i}]: ${a[i]} vs ${e[i]}`,
    );
}

/** Deterministic pseudo-random numbers for the hand computation. */
function numbers(n: number, seed: number, scale: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * scale;
  });
}

// DINOLoss.forward by hand in float64: mean over pairs (i teacher global, v ≠ i) of the batch mean of
// −Σ_k softmax((t_i − c)/τt)_k · log_softmax(s_v/τs)_k.
function dinoLossByHand(s: number[][][], t: number[][][], c: number[], ts: number, tt: number): number {
  const softmax = (x: number[]) => {
    const m = Math.max(...x);
    const e = x.map((v) => Math.exp(v - m));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / z);
  };
  const logSoftmax = (x: number[]) => {
    const m = Math.max(...x);
    const lz = m + Math.log(x.reduce((a, v) => a + Math.exp(v - m), 0));
    return x.map((v) => v - lz);
  };
  let total = 0;
  let n = 0;
  t.forEach((ti, i) => {
    s.forEach((sv, v) => {
      if (v === i) return;
      let sum = 0;
      ti.forEach((row, b) => {
        const q = softmax(row.map((x, k) => (x - (c[k] as number)) / tt));
        const lp = logSoftmax((sv[b] as number[]).map((x) => x / ts));
        sum += -q.reduce((a, qk, k) => a + qk * (lp[k] as number), 0);
      });
      total += sum / ti.length;
      n++;
    });
  });
  return total / n;
}

test('DINO loss equals a float64 computation by hand (and PyTorch where present)', () => {
  const V = 5;
  const B = 3;
  const K = 7;
  const s = Array.from({ length: V }, (_, v) => Array.from({ length: B }, (_, b) => numbers(K, 100 + v * 10 + b, 4)));
  const t = Array.from({ length: 2 }, (_, v) => Array.from({ length: B }, (_, b) => numbers(K, 900 + v * 10 + b, 4)));
  const c = numbers(K, 7, 1);
  const [ts, tt] = [0.1, 0.04];
  const expected = dinoLossByHand(s, t, c, ts, tt);
  const got = tidy(() => {
    const f64 = (x: number[][]) => tensor(x.flat(), [x.length, K], { dtype: 'float64' });
    return dinoCrossEntropy(s.map(f64), t.map(f64), tensor(c, [1, K], { dtype: 'float64' }), ts, tt).item();
  });
  assert.ok(Math.abs(got - expected) < 1e-10, `engine ${got} vs by hand ${expected}`);
  const f32 = tidy(() => {
    const f = (x: number[][]) => tensor(x.flat(), [x.length, K]);
    return dinoCrossEntropy(s.map(f), t.map(f), tensor(c, [1, K]), ts, tt).item();
  });
  assert.ok(Math.abs(f32 - expected) < 1e-4 * expected, `float32 ${f32} vs ${expected}`);

  // PyTorch: the formula of main_dino.py DINOLoss.forward on the same numbers.
  let torchOk = true;
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
  } catch {
    torchOk = false;
  }
  if (!torchOk) {
    console.log('# skipped the PyTorch comparison: /usr/bin/python3 cannot import torch');
    return;
  }
  const py = `
import json, sys, torch
import torch.nn.functional as F
d = json.load(sys.stdin)
s = torch.tensor(d['s'], dtype=torch.float64); t = torch.tensor(d['t'], dtype=torch.float64)
c = torch.tensor(d['c'], dtype=torch.float64)[None]
so = (s.reshape(-1, s.shape[-1]) / d['ts']).chunk(s.shape[0])
to = F.softmax((t.reshape(-1, t.shape[-1]) - c) / d['tt'], dim=-1).detach().chunk(2)
total, n = 0, 0
for iq, q in enumerate(to):
    for v in range(len(so)):
        if v == iq: continue
        total += torch.sum(-q * F.log_softmax(so[v], dim=-1), dim=-1).mean(); n += 1
print(float(total / n))
`;
  const out = execFileSync('/usr/bin/python3', ['-c', py], { input: JSON.stringify({ s, t, c, ts, tt }) }).toString();
  const ref = Number(out.trim());
  assert.ok(Math.abs(got - ref) < 1e-10, `engine ${got} vs PyTorch ${ref}`);
});

test('the centre follows c ← m·c + (1−m)·mean(teacher outputs of the global crops)', () => {
  manualSeed(1);
  const m = new Dino(tinyOpts(), ctx);
  noGrad(() => m.teacher.center.copy_(randn([1, 16])));
  const b = batch(4, 2);
  const c0 = m.teacher.center.toFloat32();
  const expectedMean = tidy(() =>
    noGrad(() =>
      cat(m.teacher.forward(b.views.slice(0, 2)), 0)
        .mean(0)
        .toFloat32(),
    ),
  );
  const out = tidy(() => m.loss(b, info(0)));
  tidy(() => m.afterStep(info(0, { momentum: 1 }), comm)); // momentum 1: the teacher stays put
  const c1 = m.teacher.center.toFloat32();
  const expected = Array.from(c0, (c, k) => 0.9 * c + 0.1 * (expectedMean[k] as number));
  close(c1, expected, 1e-6, 'centre');
  out.loss.dispose();
});

test('after one step the teacher equals m·t0 + (1−m)·s1', () => {
  manualSeed(3);
  const m = new Dino(tinyOpts(), ctx);
  const { decay, noDecay } = decayGroups(m.student.namedParameters());
  const opt = new AdamW([
    { params: decay.map(([, p]) => p), lr: 1e-2, weightDecay: 0.04 },
    { params: noDecay.map(([, p]) => p), lr: 1e-2, weightDecay: 0 },
  ]);
  const t0 = new Map([...m.teacher.namedParameters()].map(([n, p]) => [n, p.toFloat32()]));
  const step = info(0, { momentum: 0.9 });
  const out = tidy(() => m.loss(batch(4, 4), step));
  out.loss.backward();
  clipGradPerTensor(m.student.parameters(), 3);
  m.beforeOptimizerStep(step);
  opt.step();
  opt.zeroGrad();
  const s1 = new Map([...m.student.namedParameters()].map(([n, p]) => [n, p.toFloat32()]));
  tidy(() => m.afterStep(step, comm));
  let checked = 0;
  let moved = 0;
  for (const [n, p] of m.teacher.namedParameters()) {
    const a = t0.get(n) as Float32Array;
    const s = s1.get(n) as Float32Array;
    const expected = Array.from(a, (x, i) => 0.9 * x + 0.1 * (s[i] as number));
    close(p.toFloat32(), expected, 1e-6, n);
    if (s.some((x, i) => x !== a[i])) moved++;
    checked++;
  }
  assert.ok(checked > 10 && moved > 10, `checked ${checked} tensors, ${moved} moved`);
  out.loss.dispose();
});

test('the last layer is frozen during the first epoch (freezeLastLayerEpochs) and trains after', () => {
  manualSeed(5);
  const m = new Dino(tinyOpts({ normLastLayer: false }), ctx);
  const run = (s: StepInfo) => {
    const out = tidy(() => m.loss(batch(4, 6), s));
    out.loss.backward();
    out.loss.dispose();
    m.beforeOptimizerStep(s);
    const grads = m.student.head.lastLayer.parameters().map((p) => p.grad);
    const other = m.student.backbone.parameters()[0]?.grad ?? null;
    const r = { lastLayerGrads: grads.filter((g) => g !== null).length, otherHasGrad: other !== null };
    for (const g of [...grads, other]) g?.dispose();
    for (const p of m.student.parameters()) p.grad = null;
    return r;
  };
  const frozen = run(info(0, { epoch: 0 }));
  assert.equal(frozen.lastLayerGrads, 0, 'no last-layer gradients in epoch 0');
  assert.ok(frozen.otherHasGrad);
  const live = run(info(100, { epoch: 1 }));
  assert.equal(live.lastLayerGrads, 2, 'weight_v and weight_g get gradients from epoch 1 on');
});

test('teacher temperature: per-epoch linspace warm-up like DINO (epochRules data), or per-step', () => {
  const m = new Dino(
    tinyOpts({ warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherTempEpochs: 4, epochRules: 'data' }),
    ctx,
  );
  const at = (epoch: number) => m.teacherTemp(info(0, { epoch }));
  close([at(0), at(1), at(3), at(4), at(9)], [0.04, 0.05, 0.07, 0.07, 0.07], 1e-12, 'epochs');
  const s = new Dino(tinyOpts({ warmupTeacherTemp: 0.02, teacherTemp: 0.04, warmupTeacherTempSteps: 3 }), ctx);
  close(
    [0, 1, 2, 3].map((k) => s.teacherTemp(info(k))),
    [0.02, 0.03, 0.04, 0.04],
    1e-12,
    'steps',
  );
});

test('the interpolated position embedding equals the stored one at the native size', () => {
  tidy(() => {
    manualSeed(7);
    const v = createVit({ imgSize: 32, patchSize: 4, dim: 24, depth: 1, heads: 2 });
    const stored = v.posEmbed.toFloat32();
    close(v.positionEmbedding(8, 8).toFloat32(), stored, 0, 'native size');
    // the resize itself is the identity at the same size (bicubic, align_corners=false)
    const grid = v.posEmbed.narrow(1, 1, 64).reshape(1, 8, 8, 24).permute(0, 3, 1, 2);
    close(interpolate(grid, [8, 8], 'bicubic').toFloat32(), grid.contiguous().toFloat32(), 1e-6, 'bicubic identity');
    // other sizes interpolate (local crops): right shape, CLS position untouched
    const small = v.positionEmbedding(4, 4);
    assert.deepEqual(small.shape, [1, 17, 24]);
    close(small.narrow(1, 0, 1).toFloat32(), stored.subarray(0, 24), 0, 'cls position');
  });
});

// DINO's loss is H(teacher) + KL(teacher‖student). On a tiny fixed set, centring keeps raising the teacher's
// entropy over tens of steps (the anti-collapse pressure), so the check covers the first steps of a DINO-like
// schedule (linear lr warm-up, EMA 0.996): the total loss and its KL part fall while the student fits the teacher.
test('the loss is finite and falls over a few steps on a fixed small set', () => {
  manualSeed(11);
  const m = dinoDef.create(tinyOpts({ outDim: 32 }), { ...ctx, vit: { ...vit, dropPathRate: 0 } }) as Dino;
  const { decay, noDecay } = decayGroups(m.student.namedParameters());
  const opt = new AdamW([
    { params: decay.map(([, p]) => p), lr: 0, weightDecay: 0.04 },
    { params: noDecay.map(([, p]) => p), lr: 0, weightDecay: 0 },
  ]);
  const fixed = batch(8, 12);
  const losses: number[] = [];
  const kls: number[] = [];
  const steps = Number(process.env.DINO_TEST_STEPS ?? 10);
  for (let k = 0; k < steps; k++) {
    const s = info(k, { momentum: 0.996, epoch: 1, lr: 1e-3 * Math.min(1, k / 4) });
    opt.setSchedule(s.lr, s.weightDecay);
    const out = tidy(() => m.loss(fixed, s));
    losses.push(out.loss.item());
    kls.push((out.logs.kl_teacher_student as Tensor).item());
    out.loss.backward();
    out.loss.dispose();
    for (const v of Object.values(out.logs)) if (typeof v !== 'number') v.dispose();
    clipGradPerTensor(m.student.parameters(), 3);
    m.beforeOptimizerStep(s);
    opt.step();
    opt.zeroGrad();
    tidy(() => m.afterStep(s, comm));
  }
  const show = (a: number[]) => a.map((l) => l.toFixed(3)).join(' ');
  if (process.env.SHOW) console.log(`# loss ${show(losses)}\n# kl ${show(kls)}`);
  assert.ok(losses.every(Number.isFinite), `finite: ${losses}`);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(mean(losses.slice(-3)) < 0.9 * mean(losses.slice(0, 3)), `loss falls: ${show(losses)}`);
  assert.ok(mean(kls.slice(-3)) < 0.5 * mean(kls.slice(0, 3)), `KL(teacher‖student) falls: ${show(kls)}`);
});
