// LOCA: labels as the method uses them, token dropping, Sinkhorn, the loss against an independent
// float64 re-computation written here, config errors, and a short training run on the default data.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { toTensors } from '../src/data/collate.js';
import { locationLabels } from '../src/data/geometry.js';
import { Loader } from '../src/data/loader.js';
import type { ViewGeometry } from '../src/data/types.js';
import { liveTensors, manualSeed, setNumThreads, type Tensor, tensor, tidy } from '../src/engine/index.js';
import {
  checkLocaOptions,
  keptCount,
  keptTokenIndices,
  locaDef,
  locaLosses,
  locaOptionsSchema,
  queryTargets,
  sinkhorn,
} from '../src/methods/loca.js';
import type { Collectives, StepInfo } from '../src/methods/method.js';
import { AdamW, clipGradGlobal, decayGroups, type VitConfig } from '../src/nn/index.js';
import { resolveConfig } from '../src/train/config.js';

// Tiny tensors: one libtorch thread. With all cores on a shared machine, OpenMP oversubscription made
// a step of this tiny model 50x slower (1.5 s instead of 30 ms).
setNumThreads(1);

const nums = (t: Tensor) => t.toNumbers();
const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
const allClose = (a: number[], b: number[], tol: number, what: string) => {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) close(a[i] as number, b[i] as number, tol, `${what}, entry ${i}`);
};
const one: Collectives = { worldSize: 1, allReduceMean: () => {} };

const tinyVit: VitConfig = {
  imgSize: 32,
  patchSize: 4,
  inChans: 3,
  dim: 48,
  depth: 2,
  heads: 3,
  mlpRatio: 2,
  qkvBias: true,
  dropPathRate: 0,
  maskToken: false,
};
const ctx = { vit: tinyVit, batchSize: 8, totalSteps: 10, seed: 0 };

// Reference = source box [16,16,48,48] at 32 px (4-px cells of 4 source px); focal query = source box
// [40,8,56,24] at 16 px (1 source px per px), flipped. Query patch (r, c) centre: output (4c+2, 4r+2)
// → unflipped u = 14 − 4c → source (54 − 4c, 10 + 4r) → reference (38 − 4c, 4r − 6):
// column floor(9.5 − c) = 9, 8 (outside), 7, 6; row floor(r − 1.5) = −2, −1 (outside), 0, 1.
test('focal query labels: flipped, partly outside the reference (hand-worked)', () => {
  const ref: ViewGeometry = { box: [16, 16, 48, 48], size: 32, flipped: false, rotation: 0 };
  const focal: ViewGeometry = { box: [40, 8, 56, 24], size: 16, flipped: true, rotation: 0 };
  const expected = [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 7, 6, -1, -1, 15, 14]; // prettier-ignore
  assert.deepEqual([...locationLabels(ref, focal, 4)], expected);
  // Unflipped, the same box reads the other way: u = 4c + 2 → reference column floor(6.5 + c) = 6, 7, 8, 9.
  const unflipped = [-1, -1, -1, -1, -1, -1, -1, -1, 6, 7, -1, -1, 14, 15, -1, -1];
  assert.deepEqual([...locationLabels(ref, { ...focal, flipped: false }, 4)], unflipped);
});

// B = 2, P = 4 reference positions, query0 of 4 patches keeping [3, 0], 2 focal queries of 2 patches.
test('query targets: query0 labels gathered at the kept indices, then the focal ones; cluster rows b·P + label', () => {
  tidy(() => {
    const q0 = tensor([0, 1, 2, -1, 3, 3, -1, 2], [2, 4], { dtype: 'int64' });
    // labelsFocal [B, F, nf]: sample 0: focal0 [1, 2], focal1 [-1, 0]; sample 1: focal0 [3, -1], focal1 [2, 2]
    const focal = tensor([1, 2, -1, 0, 3, -1, 2, 2], [2, 2, 2], { dtype: 'int64' });
    const keep = tensor([3, 0], [2], { dtype: 'int64' });
    const { labels, rows } = queryTargets(q0, focal, keep, 4);
    // sample 0: query0 [-1, 0], focal [1, 2, -1, 0]; sample 1: query0 [2, 3], focal [3, -1, 2, 2]
    assert.deepEqual(labels.shape, [2, 6]);
    assert.deepEqual(nums(labels), [-1, 0, 1, 2, -1, 0, 2, 3, 3, -1, 2, 2]);
    // rows: b·4 + max(label, 0)
    assert.deepEqual(nums(rows), [0, 0, 1, 2, 0, 0, 6, 7, 7, 4, 6, 6]);
    assert.deepEqual(nums(queryTargets(q0, null, keep, 4).labels), [-1, 0, 2, 3]);
  });
});

test('kept-token counts and consecutive runs', () => {
  assert.equal(keptCount(64, 0.2), 13);
  assert.equal(keptCount(64, 70 / 196), 23);
  assert.equal(keptCount(196, 0.2), 39); // the reference's count at 14x14
  assert.equal(keptCount(196, 70 / 196), 70);
  manualSeed(3);
  const offsets = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const idx = tidy(() => nums(keptTokenIndices(64, 13, 'consecutive')));
    assert.equal(idx.length, 13);
    assert.deepEqual(
      idx,
      Array.from({ length: 13 }, (_, j) => (idx[0] as number) + j),
    );
    assert.ok((idx[0] as number) >= 0 && (idx[12] as number) <= 63);
    offsets.add(idx[0] as number);
  }
  assert.equal(offsets.size, 52); // every offset 0..51 occurs
  assert.deepEqual(
    tidy(() => nums(keptTokenIndices(64, 5, 'first'))),
    [0, 1, 2, 3, 4],
  );
  const u = tidy(() => nums(keptTokenIndices(64, 23, 'unstructured')));
  assert.equal(new Set(u).size, 23);
  assert.ok(u.every((v) => v >= 0 && v < 64));
  assert.throws(() => keptTokenIndices(64, 65, 'first'), /cannot keep 65 of 64/);
});

test('method sizes: 64 reference positions, 13 kept after the encoder, 23 query0 tokens kept', () => {
  const m = locaDef.create(locaDef.schema.parse({}), ctx) as unknown as {
    nPositions: number;
    refKept: number;
    q0Kept: number;
    q0Tokens: number;
  };
  assert.deepEqual([m.nPositions, m.refKept, m.q0Tokens, m.q0Kept], [64, 13, 64, 23]);
});

// P = [[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]: column sums (0.8, 0.5, 0.7) → rows (3/4, 3/5, 1/7) and
// (1/4, 2/5, 6/7), row sums 209/140 and 211/140 → (105, 84, 20)/209 and (35, 56, 120)/211.
test('Sinkhorn: one round by hand, three rounds against float64, global column sums', () => {
  tidy(() => {
    const p = tensor([0.6, 0.3, 0.1, 0.2, 0.2, 0.6], [2, 3], { dtype: 'float64' });
    const hand = [105 / 209, 84 / 209, 20 / 209, 35 / 211, 56 / 211, 120 / 211];
    allClose(nums(sinkhorn(p, 1)), hand, 1e-12, 'one round');

    // three rounds on a 5x4 matrix, recomputed with plain loops
    const R = 5;
    const K = 4;
    const raw = Array.from({ length: R * K }, (_, i) => 0.05 + ((i * 7919) % 13) / 13);
    const q = raw.slice();
    for (let it = 0; it < 3; it++) {
      for (let k = 0; k < K; k++) {
        let s = 0;
        for (let r = 0; r < R; r++) s += q[r * K + k] as number;
        for (let r = 0; r < R; r++) q[r * K + k] = (q[r * K + k] as number) / s;
      }
      for (let r = 0; r < R; r++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += q[r * K + k] as number;
        for (let k = 0; k < K; k++) q[r * K + k] = (q[r * K + k] as number) / s;
      }
    }
    const got = nums(sinkhorn(tensor(raw, [R, K], { dtype: 'float64' }), 3));
    allClose(got, q, 1e-12, 'three rounds');
    for (let r = 0; r < R; r++)
      close(
        got.slice(r * K, r * K + K).reduce((a, b) => a + b),
        1,
        1e-12,
        `row ${r} sum`,
      );

    // Two ranks holding the same rows: column sums double, which equals Sinkhorn on the stacked matrix.
    const twin: Collectives = { worldSize: 2, allReduceMean: () => {} }; // mean of two equal values
    const stacked = nums(sinkhorn(tensor([...raw, ...raw], [2 * R, K], { dtype: 'float64' }), 3)).slice(0, R * K);
    allClose(nums(sinkhorn(tensor(raw, [R, K], { dtype: 'float64' }), 3, twin)), stacked, 1e-12, 'two ranks');
  });
});

// The loss formula, written out independently in float64 (scenic trainer.py L132-172).
function referenceLoss(
  pos: number[][],
  labels: number[],
  rows: number[],
  student: number[][],
  teacher: number[][],
  temp: number,
  sharp: number,
): { pos: number; cluster: number; memax: number; acc: number } {
  const softmax = (v: number[]) => {
    const m = Math.max(...v);
    const e = v.map((x) => Math.exp(x - m));
    const s = e.reduce((a, b) => a + b);
    return e.map((x) => x / s);
  };
  const valid = labels.map((l) => l !== -1);
  const nValid = valid.filter(Boolean).length;
  let posSum = 0;
  let hits = 0;
  labels.forEach((l, i) => {
    if (l === -1) return;
    const p = softmax(pos[i] as number[]);
    posSum -= Math.log(p[l] as number);
    const row = pos[i] as number[];
    if (row.indexOf(Math.max(...row)) === l) hits++;
  });
  // Sinkhorn, 3 rounds, on softmax(teacher / sharp)
  let t = teacher.map((r) => softmax(r.map((x) => x / sharp)));
  const K = (t[0] as number[]).length;
  for (let it = 0; it < 3; it++) {
    const col = Array.from({ length: K }, (_, k) => t.reduce((a, r) => a + (r[k] as number), 0));
    t = t.map((r) => r.map((x, k) => x / (col[k] as number)));
    t = t.map((r) => {
      const s = r.reduce((a, b) => a + b);
      return r.map((x) => x / s);
    });
  }
  let clusterSum = 0;
  const pbar = Array(K).fill(0);
  student.forEach((s, i) => {
    const q = softmax(s.map((x) => x / temp));
    q.forEach((v, k) => {
      pbar[k] += v / student.length;
    });
    if (!valid[i]) return;
    const tgt = t[rows[i] as number] as number[];
    clusterSum -= tgt.reduce((a, w, k) => a + w * Math.log(q[k] as number), 0);
  });
  const memax = pbar.reduce((a, v) => a + v * Math.log(v), 0);
  return { pos: posSum / (nValid + 1e-8), cluster: clusterSum / (nValid + 1e-8), memax, acc: hits / nValid };
}

// N = 6 query patches, P = 4 positions, K = 3 prototypes, teacher rows R = B·P = 8.
const POS = [
  [2.0, 0.5, -1.0, 0.1],
  [0.3, 0.2, 1.5, -0.7],
  [-0.4, 0.9, 0.0, 0.8],
  [1.1, -0.3, 0.4, 0.2],
  [0.0, 0.0, 0.0, 3.0],
  [0.6, 0.7, -0.2, 0.1],
];
const LABELS = [0, 2, -1, 3, 3, 1];
const ROWS = [0, 2, 0, 7, 3, 5];
const STUDENT = [
  [0.9, -0.2, 0.1],
  [-0.5, 0.3, 0.8],
  [0.2, 0.2, -0.9],
  [0.0, 0.7, -0.1],
  [0.4, -0.6, 0.5],
  [-0.3, -0.1, 0.6],
];
const TEACHER = [
  [0.8, -0.1, 0.2],
  [0.1, 0.5, -0.4],
  [-0.6, 0.3, 0.9],
  [0.2, 0.2, 0.2],
  [0.7, -0.8, 0.0],
  [-0.2, 0.6, 0.1],
  [0.3, -0.3, 0.5],
  [-0.9, 0.4, 0.6],
];

test('loss for fixed inputs matches a float64 re-computation', () => {
  const want = referenceLoss(POS, LABELS, ROWS, STUDENT, TEACHER, 0.1, 0.05);
  tidy(() => {
    const f64 = (a: number[][]) => tensor(a.flat(), [a.length, (a[0] as number[]).length], { dtype: 'float64' });
    const got = locaLosses({
      posLogits: f64(POS),
      labels: tensor(LABELS, [6], { dtype: 'int64' }),
      rows: tensor(ROWS, [6], { dtype: 'int64' }),
      studentLogits: f64(STUDENT),
      teacherLogits: f64(TEACHER),
      temperature: 0.1,
      sharpening: 0.05,
      sinkhornIters: 3,
      comm: one,
    });
    close(got.pos.item(), want.pos, 1e-10, 'position loss');
    close(got.cluster.item(), want.cluster, 1e-10, 'cluster loss');
    close(got.memax.item(), want.memax, 1e-10, 'me-max');
    close(got.total.item(), want.pos + want.cluster + want.memax, 1e-10, 'total');
    close(got.acc.item(), want.acc, 1e-12, 'accuracy');
    close(got.acc.item(), 4 / 5, 1e-12, 'accuracy by hand'); // valid rows' argmax 0, 2, 0, 3, 1 vs labels 0, 2, 3, 3, 1
    close(got.validFrac.item(), 5 / 6, 1e-12, 'valid share');
  });
});

// The same formula in PyTorch (Debian's python3-torch under /usr/bin/python3), with gradients.
const TORCH_LOSS = `
import json, sys, torch
import torch.nn.functional as F
d = json.loads(sys.stdin.read())
t = lambda k: torch.tensor(d[k], dtype=torch.float64)
pos = t('pos').requires_grad_(); stu = t('student').requires_grad_()
labels = torch.tensor(d['labels']); rows = torch.tensor(d['rows'])
valid = (labels != -1).double(); n = valid.sum() + 1e-8
l_pos = F.cross_entropy(pos, labels, ignore_index=-1, reduction='sum') / n
q = F.softmax(t('teacher') / 0.05, dim=-1)
for _ in range(3):
    q = q / q.sum(0, keepdim=True)
    q = q / q.sum(1, keepdim=True)
logp = F.log_softmax(stu / 0.1, dim=-1)
l_cl = -(q[rows] * logp).sum(-1).mul(valid).sum() / n
pbar = logp.exp().mean(0)
memax = (pbar * pbar.log()).sum()
total = l_pos + l_cl + memax
total.backward()
print(json.dumps({'total': total.item(), 'gpos': pos.grad.flatten().tolist(), 'gstu': stu.grad.flatten().tolist()}))
`;

test('loss value and gradients match PyTorch', (t) => {
  const python = process.env.LOCUS_TORCH_PYTHON ?? '/usr/bin/python3';
  const input = JSON.stringify({ pos: POS, labels: LABELS, rows: ROWS, student: STUDENT, teacher: TEACHER });
  const r = spawnSync(python, ['-c', TORCH_LOSS], { input, encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) {
    t.skip(`PyTorch unavailable under ${python}: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`);
    return;
  }
  const want = JSON.parse(r.stdout) as { total: number; gpos: number[]; gstu: number[] };
  tidy(() => {
    const f64 = (a: number[][]) =>
      tensor(a.flat(), [a.length, (a[0] as number[]).length], { dtype: 'float64' }).requiresGrad_();
    const pos = f64(POS);
    const stu = f64(STUDENT);
    const got = locaLosses({
      posLogits: pos,
      labels: tensor(LABELS, [6], { dtype: 'int64' }),
      rows: tensor(ROWS, [6], { dtype: 'int64' }),
      studentLogits: stu,
      teacherLogits: f64(TEACHER),
      temperature: 0.1,
      sharpening: 0.05,
      sinkhornIters: 3,
    });
    got.total.backward();
    close(got.total.item(), want.total, 1e-10, 'total');
    allClose(nums(pos.grad as Tensor), want.gpos, 1e-10, 'd/d position logits');
    allClose(nums(stu.grad as Tensor), want.gstu, 1e-10, 'd/d student cluster logits');
  });
});

test('config: defaults, and one clear message per bad field', () => {
  const d = locaOptionsSchema.parse({});
  assert.deepEqual(
    [d.refSize, d.querySize, d.focalSize, d.focalCount, d.refKeep, d.refSelection],
    [32, 32, 16, 9, 0.2, 'consecutive'],
  );
  assert.deepEqual([d.temperature, d.sharpening, d.sinkhornIters, d.maxGradNorm], [0.1, 0.05, 3, 1]);
  assert.equal(checkLocaOptions(d, { patchSize: 4 }), null);
  const fails = (set: Record<string, unknown>, msg: string) =>
    assert.throws(
      () => resolveConfig({ method: 'loca', loca: set }),
      (e: Error) => e.message === `config error: ${msg}`,
    );
  fails({ focalSize: 32 }, 'loca.focalSize (32) must be smaller than loca.refSize (32)');
  fails({ focalSize: 18 }, 'loca.focalSize (18) must be a multiple of model.patchSize (4)');
  fails({ refKeep: 0 }, 'loca.refKeep must be > 0 (got 0)');
  assert.throws(
    () => resolveConfig({ method: 'loca', loca: { focalsize: 8 } }),
    /^ConfigError: config error: unknown key loca\.focalsize \(allowed: refSize, /,
  );
  assert.equal(resolveConfig({ method: 'loca' }).loca?.constructor, Object);
  // create() refuses the same options on its own
  assert.throws(
    () => locaDef.create({ ...d, focalSize: 40 }, ctx),
    /^Error: loca\.focalSize \(40\) must be smaller than loca\.refSize \(32\)$/,
  );
});

test('short training run on the default data: finite, falling loss; position accuracy above chance', async (t) => {
  manualSeed(0);
  const opts = locaDef.schema.parse({ outDim: 64, hiddenDim: 64, bottleneckDim: 32, focalCount: 3 });
  const steps = 100;
  const method = locaDef.create(opts, { ...ctx, batchSize: 16, totalSteps: steps });
  const loader = new Loader({
    dataset: { kind: 'scenes', split: 'train', length: 256 },
    views: method.views(),
    batchSize: 16,
    seed: 1,
    workers: 1,
  });
  const { decay, noDecay } = decayGroups(method.student.namedParameters());
  const opt = new AdamW([
    { params: decay.map(([, p]) => p), lr: 1e-3, weightDecay: 0.1 },
    { params: noDecay.map(([, p]) => p), lr: 1e-3, weightDecay: 0 },
  ]);
  const losses: number[] = [];
  const accs: number[] = [];
  let step = 0;
  let live = 0;
  try {
    for (let epoch = 0; step < steps; epoch++) {
      for await (const b of loader.epoch(epoch)) {
        if (step >= steps) break;
        const info: StepInfo = {
          step,
          totalSteps: steps,
          epoch,
          stepsPerEpoch: 16,
          lr: 1e-3,
          weightDecay: 0.1,
          momentum: 0.99,
        };
        const [loss, acc] = tidy(() => {
          const batch = toTensors(b);
          const out = method.loss(batch, info);
          out.loss.backward();
          if (step === 0) {
            // gradient reaches the student's cross-attention and heads, never the EMA teacher
            const s = new Map(method.student.namedParameters());
            for (const n of [
              'cross_attention_block.attn.kv.weight',
              'position_predictor.weight',
              'projection_head.mlp.0.weight',
              'backbone.pos_embed',
            ])
              assert.ok(s.get(n)?.grad, `no gradient for ${n}`);
            assert.ok(
              method.teacher?.parameters().every((p) => p.grad === null),
              'the teacher got a gradient',
            );
          }
          return [out.loss.item(), (out.logs.pos_acc as Tensor).item()];
        });
        assert.ok(method.clip && method.clip.mode === 'global');
        clipGradGlobal(method.student.parameters(), method.clip.maxNorm);
        opt.step();
        opt.zeroGrad();
        method.afterStep(info, one);
        assert.ok(Number.isFinite(loss), `step ${step}: loss ${loss}`);
        losses.push(loss);
        accs.push(acc);
        if (step === 2) live = liveTensors();
        if (step === 3) assert.equal(liveTensors(), live, 'a training step leaks tensors');
        step++;
      }
    }
  } finally {
    await loader.close();
  }
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const first = mean(losses.slice(0, 5));
  const last = mean(losses.slice(-10));
  assert.ok(last < first, `loss did not fall: ${first.toFixed(3)} → ${last.toFixed(3)}`);
  // ~900 valid query patches a step: at chance (1/64) the mean of 10 steps is 0.016 ± 0.0013.
  const acc = mean(accs.slice(-10));
  t.diagnostic(`loss ${first.toFixed(3)} → ${last.toFixed(3)}, pos_acc (last 10 steps) ${acc.toFixed(3)}`);
  assert.ok(acc > 2 / 64, `position accuracy ${acc.toFixed(3)} not clearly above chance (1/64)`);
});
