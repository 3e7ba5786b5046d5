// SelfPatch: neighbour tables (hand-worked, wrap-around at the corners and wrap=false), top-k selection
// for given similarities, the class-attention aggregation (shape, attends only to [query; selected
// neighbours], masking of cells outside the grid), the reference head in PyTorch (Debian's python3-torch,
// skipped where absent), the loss against a float64 re-computation, the centre updates, a short run.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { neighbourTable } from '../src/data/geometry.js';
import { cat, manualSeed, noGrad, randn, setNumThreads, type Tensor, tensor, tidy } from '../src/engine/index.js';
import type { MethodContext, StepInfo } from '../src/methods/method.js';
import {
  gatherTokens,
  neighbourIndex,
  neighbourSimilarity,
  SelfPatch,
  SelfPatchHead,
  selfPatchLoss,
  selfPatchSchema,
  topkNeighbours,
} from '../src/methods/selfpatch.js';
import { AdamW, decayGroups, type VitConfig } from '../src/nn/index.js';

// Tiny tensors: one thread avoids the thread pool's hand-offs, which dominate on a busy 2-core machine.
setNumThreads(1);
const t = (name: string, fn: () => void) => test(name, () => tidy(fn));
const row = (a: Int32Array, i: number) => [...a.subarray(i * 8, i * 8 + 8)];
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

// ---------------------------------------------------------------- neighbour tables

// Cells of the 3x3 window in raster order: (r−1,c−1) (r−1,c) (r−1,c+1) (r,c−1) (r,c+1) (r+1,c−1) (r+1,c) (r+1,c+1).
t('neighbour tables: 3x3 with wrap-around', () => {
  const w = neighbourTable(3, 3);
  // patch 0 = (0,0): (2,2)=8 (2,0)=6 (2,1)=7 (0,2)=2 (0,1)=1 (1,2)=5 (1,0)=3 (1,1)=4
  assert.deepEqual(row(w, 0), [8, 6, 7, 2, 1, 5, 3, 4]);
  // patch 2 = (0,2): (2,1)=7 (2,2)=8 (2,0)=6 (0,1)=1 (0,0)=0 (1,1)=4 (1,2)=5 (1,0)=3
  assert.deepEqual(row(w, 2), [7, 8, 6, 1, 0, 4, 5, 3]);
  assert.deepEqual(row(w, 4), [0, 1, 2, 3, 5, 6, 7, 8]); // the centre: no wrapping
  // patch 6 = (2,0): (1,2)=5 (1,0)=3 (1,1)=4 (2,2)=8 (2,1)=7 (0,2)=2 (0,0)=0 (0,1)=1
  assert.deepEqual(row(w, 6), [5, 3, 4, 8, 7, 2, 0, 1]);
  // patch 8 = (2,2): (1,1)=4 (1,2)=5 (1,0)=3 (2,1)=7 (2,0)=6 (0,1)=1 (0,2)=2 (0,0)=0
  assert.deepEqual(row(w, 8), [4, 5, 3, 7, 6, 1, 2, 0]);
  // On a 3x3 torus every cell neighbours all 8 others.
  for (let i = 0; i < 9; i++)
    assert.deepEqual(
      row(w, i).sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 8].filter((j) => j !== i),
    );
});

t('neighbour tables: 3x3 without wrap', () => {
  const n = neighbourTable(3, 3, false);
  assert.deepEqual(row(n, 0), [-1, -1, -1, -1, 1, -1, 3, 4]);
  assert.deepEqual(row(n, 2), [-1, -1, -1, 1, -1, 4, 5, -1]);
  assert.deepEqual(row(n, 4), [0, 1, 2, 3, 5, 6, 7, 8]);
  assert.deepEqual(row(n, 8), [4, 5, -1, 7, -1, -1, -1, -1]);
});

t('neighbour tables: 4x4 corners with wrap-around, and without', () => {
  const w = neighbourTable(4, 4);
  // (0,0): (3,3)=15 (3,0)=12 (3,1)=13 (0,3)=3 (0,1)=1 (1,3)=7 (1,0)=4 (1,1)=5
  assert.deepEqual(row(w, 0), [15, 12, 13, 3, 1, 7, 4, 5]);
  // (0,3): (3,2)=14 (3,3)=15 (3,0)=12 (0,2)=2 (0,0)=0 (1,2)=6 (1,3)=7 (1,0)=4
  assert.deepEqual(row(w, 3), [14, 15, 12, 2, 0, 6, 7, 4]);
  // (3,0): (2,3)=11 (2,0)=8 (2,1)=9 (3,3)=15 (3,1)=13 (0,3)=3 (0,0)=0 (0,1)=1
  assert.deepEqual(row(w, 12), [11, 8, 9, 15, 13, 3, 0, 1]);
  // (3,3): (2,2)=10 (2,3)=11 (2,0)=8 (3,2)=14 (3,0)=12 (0,2)=2 (0,3)=3 (0,0)=0
  assert.deepEqual(row(w, 15), [10, 11, 8, 14, 12, 2, 3, 0]);
  const n = neighbourTable(4, 4, false);
  assert.deepEqual(row(n, 0), [-1, -1, -1, -1, 1, -1, 4, 5]);
  assert.deepEqual(row(n, 3), [-1, -1, -1, 2, -1, 6, 7, -1]);
  assert.deepEqual(row(n, 12), [-1, 8, 9, -1, 13, -1, -1, -1]);
  assert.deepEqual(row(n, 15), [10, 11, -1, 14, -1, -1, -1, -1]);
});

t('neighbour tables: the reference 14x14 example and a non-square grid', () => {
  // methods.md §2: patch 0 of 14x14 has neighbours {1, 13, 14, 15, 27, 182, 183, 195}.
  assert.deepEqual(
    row(neighbourTable(14, 14), 0).sort((a, b) => a - b),
    [1, 13, 14, 15, 27, 182, 183, 195],
  );
  // 4 rows x 6 columns, patch 0: (3,5)=23 (3,0)=18 (3,1)=19 (0,5)=5 (0,1)=1 (1,5)=11 (1,0)=6 (1,1)=7
  assert.deepEqual(row(neighbourTable(4, 6), 0), [23, 18, 19, 5, 1, 11, 6, 7]);
  // its tensor form: int64 table (−1 → 0) and the validity mask only without wrap
  const nb = neighbourIndex(3, 3, false);
  assert.deepEqual(nb.table.shape, [9, 8]);
  assert.deepEqual(nb.table.toNumbers().slice(0, 8), [0, 0, 0, 0, 1, 0, 3, 4]);
  assert.deepEqual(nb.valid?.toNumbers().slice(0, 8), [0, 0, 0, 0, 1, 0, 1, 1]);
  assert.equal(neighbourIndex(3, 3, true).valid, null);
});

// ---------------------------------------------------------------- ranking

t('neighbour similarity is the cosine of the tokens', () => {
  // 3x3 grid, 2-D tokens: patch j at angle 30°·j with length j+1 → cos(30°·(i − j)).
  const x = tensor(
    Array.from({ length: 9 }, (_, j) => [
      (j + 1) * Math.cos((j * Math.PI) / 6),
      (j + 1) * Math.sin((j * Math.PI) / 6),
    ]).flat(),
    [1, 9, 2],
  );
  const sim = neighbourSimilarity(x, neighbourIndex(3, 3, true).table).toNumbers();
  const table = neighbourTable(3, 3);
  for (const i of [0, 4, 8]) {
    const expected = row(table, i).map((j) => Math.cos(((i - j) * Math.PI) / 6));
    close(sim.slice(i * 8, i * 8 + 8), expected, 1e-6, `patch ${i}`);
  }
});

t('top-k neighbours for given similarities', () => {
  // 3x3 wrap, patch 0's cells [8, 6, 7, 2, 1, 5, 3, 4] get similarities
  // [0.1, 0.9, -0.3, 0.5, 0.7, 0.2, 0.8, -1]: the top 4 are 0.9 → 6, 0.8 → 3, 0.7 → 1, 0.5 → 2.
  const sim = Array(9 * 8).fill(0);
  sim.splice(0, 8, 0.1, 0.9, -0.3, 0.5, 0.7, 0.2, 0.8, -1);
  const s = tensor(sim, [1, 9, 8]);
  const w = topkNeighbours(s, neighbourIndex(3, 3, true), 4);
  assert.deepEqual(w.index.toNumbers().slice(0, 4), [6, 3, 1, 2]);
  assert.equal(w.valid, null);
  // k = 2 keeps the first two
  assert.deepEqual(
    topkNeighbours(s, neighbourIndex(3, 3, true), 2)
      .index.toNumbers()
      .slice(0, 2),
    [6, 3],
  );
  // Without wrap, patch 0's only cells are 1 (slot 4), 3 (slot 6), 4 (slot 7): a high similarity in an
  // outside slot (0.99 in slot 0) is ignored; the fourth pick is an outside cell, marked invalid.
  const sim2 = Array(9 * 8).fill(0);
  sim2.splice(0, 8, 0.99, 0.98, 0.97, 0.96, 0.2, 0.95, -0.5, 0.6);
  const n = topkNeighbours(tensor(sim2, [1, 9, 8]), neighbourIndex(3, 3, false), 4);
  assert.deepEqual(n.index.toNumbers().slice(0, 3), [4, 1, 3]);
  assert.deepEqual(n.valid?.toNumbers().slice(0, 4), [1, 1, 1, 0]);
});

// ---------------------------------------------------------------- class attention

t('class-attention aggregation: shape, and it sees only [query; selected neighbours]', () => {
  manualSeed(3);
  const D = 8;
  const head = new SelfPatchHead(D, 2);
  const x = randn([2, 16, D]);
  const agg = noGrad(() => head.aggregate(x, [4, 4], 4, true));
  assert.deepEqual(agg.shape, [2, 16, D]);
  // the selected neighbours of patch 5 in sample 1
  const nb = neighbourIndex(4, 4, true);
  const sel = topkNeighbours(neighbourSimilarity(x, nb.table), nb, 4)
    .index.toNumbers()
    .slice((16 + 5) * 4, (16 + 6) * 4);
  const others = neighbourTable(4, 4)
    .subarray(5 * 8, 6 * 8)
    .filter((j) => !sel.includes(j));
  assert.equal(others.length, 4);
  const xs = x.toFloat32();
  const x5 = xs.slice((16 + 5) * D, (16 + 6) * D);
  const edit = (j: number, f: (i: number) => number) => {
    const y = Float32Array.from(xs);
    for (let i = 0; i < D; i++) y[(16 + j) * D + i] = f(i);
    return noGrad(() => head.aggregate(tensor(y, [2, 16, D]), [4, 4], 4, true));
  };
  const at = (a: Tensor, p: number) => a.toNumbers().slice((16 + p) * D, (16 + p + 1) * D);
  // A non-selected neighbour turned into −x5 (cosine −1: still not selected) leaves patch 5's aggregate alone.
  close(
    at(
      edit(others[0], (i) => -2 * x5[i]),
      5,
    ),
    at(agg, 5),
    1e-6,
    'non-selected neighbour',
  );
  // A far cell (not in the window) changes nothing for patch 5 either.
  const far = [...Array(16).keys()].find(
    (j) =>
      j !== 5 &&
      !neighbourTable(4, 4)
        .subarray(5 * 8, 6 * 8)
        .includes(j),
  ) as number;
  close(
    at(
      edit(far, (i) => 5 * Math.sin(i)),
      5,
    ),
    at(agg, 5),
    1e-6,
    'far cell',
  );
  // Moving a selected neighbour towards x5 keeps it selected (its cosine only rises) and changes the aggregate.
  const changed = at(
    edit(sel[0], (i) => xs[(16 + sel[0]) * D + i] + x5[i]),
    5,
  );
  assert.ok(
    changed.some((v, i) => Math.abs(v - at(agg, 5)[i]) > 1e-4),
    'a selected neighbour must matter',
  );
  // The aggregate is the head run over exactly those k tokens.
  const direct = noGrad(() =>
    head.attend(gatherTokens(x, tensor(sel, [1, 1, 4]).to('int64').expand(2, 16, 4)).reshape(32, 4, D)),
  );
  close(at(direct.reshape(2, 16, D), 5), at(agg, 5), 1e-6, 'direct');
});

t('class-attention aggregation without wrap masks the cells outside the grid', () => {
  manualSeed(4);
  const D = 8;
  const head = new SelfPatchHead(D, 2);
  const x = randn([1, 9, D]);
  // k = 4 at corner 0 of a 3x3 grid without wrap: only cells 1, 3, 4 exist, so the aggregate must equal
  // the head run over those three tokens alone.
  const agg = noGrad(() => head.aggregate(x, [3, 3], 4, false))
    .toNumbers()
    .slice(0, D);
  const three = noGrad(() => head.attend(x.indexSelect(1, tensor([1, 3, 4], [3], { dtype: 'int64' })))).toNumbers();
  close(agg, three, 1e-6, 'corner');
});

// The reference head written in PyTorch in float64 (paraphrasing selfpatch_vision_transformer.py:
// get_local_index with modular wrap, cosine ranking, gather, 2 class-attention blocks, LN); skipped
// when Debian's python3-torch is absent.
const PY_REF = `
import json, math, sys, torch
d = json.load(sys.stdin)
P = {k: torch.tensor(v, dtype=torch.float64) for k, v in d['params'].items()}
x = torch.tensor(d['x'], dtype=torch.float64)
B, N, D = x.shape; H = d['heads']; k = d['k']; g = int(math.isqrt(N))
def ln(t, p): return torch.nn.functional.layer_norm(t, (D,), P[p + '.weight'], P[p + '.bias'], 1e-6)
def lin(t, p): return t @ P[p + '.weight'].T + P[p + '.bias']
def block(i, tokens, q):
    p = 'cls_blocks.%d.' % i
    u = ln(torch.cat([q, tokens], 1), p + 'norm1')
    M, n, _ = u.shape
    qq = lin(u[:, :1], p + 'attn.q').reshape(M, 1, H, D // H).permute(0, 2, 1, 3) * (D // H) ** -0.5
    kk = lin(u, p + 'attn.k').reshape(M, n, H, D // H).permute(0, 2, 1, 3)
    vv = lin(u, p + 'attn.v').reshape(M, n, H, D // H).permute(0, 2, 1, 3)
    a = (qq @ kk.transpose(-2, -1)).softmax(-1)
    q = q + lin((a @ vv).transpose(1, 2).reshape(M, 1, D), p + 'attn.proj')
    h = torch.nn.functional.gelu(lin(ln(q, p + 'norm2'), p + 'mlp.fc1'))
    return q + lin(h, p + 'mlp.fc2')
idx = []
for i in range(N):
    r, c = divmod(i, g)
    idx.append(sorted(((r + dr) % g) * g + (c + dc) % g for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc))
idx = torch.tensor(idx)
xn = torch.nn.functional.normalize(x, dim=-1)
sim = (xn[:, idx] @ xn.unsqueeze(-1)).squeeze(-1)
top = sim.topk(k, dim=-1)[1]
nb = torch.gather(x[:, idx], 2, top.unsqueeze(-1).expand(-1, -1, -1, D)).reshape(B * N, k, D)
q = P['cls_token'].expand(B * N, 1, D)
for i in range(2): q = block(i, nb, q)
agg = ln(q.reshape(B, N, D), 'norm')
q = P['cls_token'].expand(B, 1, D)
for i in range(2): q = block(i, x, q)
print(json.dumps({'agg': agg.flatten().tolist(), 'cls': ln(q.reshape(B, D), 'norm').flatten().tolist()}))
`;

function python(script: string, input: unknown): unknown | null {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  return JSON.parse(
    execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(input), maxBuffer: 1 << 26 }).toString(),
  );
}

test('the head matches a float64 PyTorch version of the reference (aggregates and CLS)', (ctx) =>
  tidy(() => {
    manualSeed(5);
    const D = 12;
    const head = new SelfPatchHead(D, 3);
    const x = randn([2, 16, D]);
    const params = Object.fromEntries([...head.stateDict()].map(([k, v]) => [k, nested(v)]));
    const out = python(PY_REF, { params, x: nested(x), heads: 3, k: 4 }) as { agg: number[]; cls: number[] } | null;
    if (!out) return ctx.skip('no torch under /usr/bin/python3');
    const agg = noGrad(() => head.aggregate(x, [4, 4], 4, true)).toNumbers();
    close(agg, out.agg, 2e-5, 'aggregates');
    close(noGrad(() => head.attend(x)).toNumbers(), out.cls, 2e-5, 'CLS');
  }));

function nested(t: Tensor): unknown {
  const flat = t.toNumbers();
  const build = (shape: number[], off: number): unknown => {
    if (shape.length === 0) return flat[off];
    const [n, ...rest] = shape;
    const stride = rest.reduce((a, b) => a * b, 1);
    return Array.from({ length: n }, (_, i) => build(rest, off + i * stride));
  };
  return build(t.shape, 0);
}

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
function ce(s: number[], tr: number[], c: number[], ts: number, tt: number): number {
  const z = tr.map((v, i) => (v - c[i]) / tt);
  const zm = Math.max(...z);
  const ez = z.map((v) => Math.exp(v - zm));
  const q = ez.map((v) => v / ez.reduce((a, b) => a + b, 0));
  const y = s.map((v) => v / ts);
  const ym = Math.max(...y);
  const lse = ym + Math.log(y.reduce((a, v) => a + Math.exp(v - ym), 0));
  return -q.reduce((a, qi, i) => a + qi * (y[i] - lse), 0);
}

t('SelfPatch loss equals a float64 re-computation of the reference formula', () => {
  const B = 2;
  const K = 5;
  const Kp = 4;
  const Ns = [4, 4, 1]; // two global views (2x2 patches) and one local (1 patch)
  const V = Ns.length;
  const mk = (n: number, seed: number) => numbers(n, seed);
  const rows = (a: number[], w: number) => Array.from({ length: a.length / w }, (_, i) => a.slice(i * w, i * w + w));
  const sCls = Ns.map((_, v) => mk(B * K, 10 + v));
  const sHead = Ns.map((_, v) => mk(B * K, 20 + v));
  const tCls = [0, 1].map((v) => mk(B * K, 30 + v));
  const sP = Ns.map((n, v) => mk(B * n * Kp, 40 + v));
  const tP = Ns.map((n, v) => mk(B * n * Kp, 50 + v));
  const c = mk(K, 60).map((v) => v / 4);
  const cp = mk(Kp, 61).map((v) => v / 4);
  const [ts, tt, wP, wCa] = [0.1, 0.04, 0.1, 0.5];
  const T = (a: number[], shape: number[]) => tensor(a, shape, { dtype: 'float64' });
  const got = selfPatchLoss({
    studentCls: sCls.map((a) => T(a, [B, K])),
    studentHeadCls: sHead.map((a) => T(a, [B, K])),
    teacherCls: tCls.map((a) => T(a, [B, K])),
    studentPatch: sP.map((a, v) => T(a, [B * Ns[v], Kp])),
    teacherPatch: tP.map((a, v) => T(a, [B * Ns[v], Kp])),
    center: T(c, [1, K]),
    patchCenter: T(cp, [1, Kp]),
    studentTemp: ts,
    teacherTemp: tt,
    patchWeight: wP,
    caClsWeight: wCa,
  });
  // c_loss: mean over (teacher global i, student view v ≠ i) of the batch mean
  const cl = (student: number[][]) => {
    let sum = 0;
    let n = 0;
    for (let i = 0; i < 2; i++)
      for (let v = 0; v < V; v++) {
        if (v === i) continue;
        const S = rows(student[v], K);
        const Tt = rows(tCls[i], K);
        sum += S.reduce((a, s, b) => a + ce(s, Tt[b], c, ts, tt), 0) / B;
        n++;
      }
    return sum / n;
  };
  const cLoss = (1 - wCa) * cl(sCls) + wCa * cl(sHead);
  // p_loss: per view the mean over batch and patches, then the mean over views
  const pLoss =
    Ns.reduce((acc, n, v) => {
      const S = rows(sP[v], Kp);
      const Tt = rows(tP[v], Kp);
      return acc + S.reduce((a, s, r) => a + ce(s, Tt[r], cp, ts, tt), 0) / (B * n);
    }, 0) / V;
  close([got.cLoss.item()], [cLoss], 1e-12, 'c_loss');
  close([got.pLoss.item()], [pLoss], 1e-12, 'p_loss');
  close([got.loss.item()], [cLoss + wP * pLoss], 1e-12, 'total');
});

// ---------------------------------------------------------------- the method

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
const CTX: MethodContext = { vit: VIT, batchSize: 4, totalSteps: 100, seed: 0 };
const OPTS = {
  outDim: 32,
  hiddenDim: 32,
  bottleneckDim: 16,
  patchOutDim: 24,
  patchHiddenDim: 32,
  localCount: 2,
  localSize: 8,
};

t('SelfPatch: centres follow their EMA from the teacher outputs of every crop', () => {
  manualSeed(6);
  const m = new SelfPatch(selfPatchSchema.parse(OPTS), CTX);
  const views = [randn([3, 3, 16, 16]), randn([3, 3, 16, 16]), randn([3, 3, 8, 8]), randn([3, 3, 8, 8])];
  const batch = { views, extras: {}, indices: [0, 1, 2], size: 3 };
  // Independent teacher outputs: CLS logits of all 4 crops; patch logits of every aggregate.
  const tm = m.teacher;
  const { cls, patch } = noGrad(() => {
    const outs = views.map((v) => tm.backbone.forward(v));
    const aggs = outs.map((o) => tm.caHead.aggregate(o.patches, o.grid, 4, true).reshape(-1, VIT.dim));
    return { cls: tm.cHead.forward(cat(outs.map((o) => o.cls))), patch: tm.pHead.forward(cat(aggs)) };
  });
  tidy(() => m.loss(batch, info(0, 1)));
  m.afterStep(info(0, 1), comm); // momentum 1: the teacher does not move
  close(tm.center.toNumbers(), cls.mean(0).mul(0.1).toNumbers(), 1e-5, 'CLS centre (all crops)');
  close(tm.patchCenter.toNumbers(), patch.mean(0).mul(0.1).toNumbers(), 1e-5, 'patch centre');
});

// DINO-style losses first rise while the centres catch up with the teacher's mean output (the teacher
// entropy grows from its uncentred start); the centres are therefore warmed up first with the teacher
// held fixed (momentum 1, no optimizer step), then the student trains against a slowly moving teacher.
t('SelfPatch: a short run gives finite, falling loss', () => {
  manualSeed(7);
  const m = new SelfPatch(selfPatchSchema.parse({ ...OPTS, freezeLastLayerSteps: 0 }), CTX);
  const { decay, noDecay } = decayGroups(m.student.namedParameters());
  const opt = new AdamW([
    { params: decay.map(([, p]) => p), lr: 1e-3, weightDecay: 0.04 },
    { params: noDecay.map(([, p]) => p), lr: 1e-3, weightDecay: 0 },
  ]);
  // four fixed images that differ in their colour means
  const off = randn([4, 3, 1, 1]).mul(2);
  const img = (s: number) => randn([4, 3, s, s]).mul(0.5).add(off);
  const batch = { views: [img(16), img(16), img(8), img(8)], extras: {}, indices: [0, 1, 2, 3], size: 4 };
  for (let s = 0; s < 40; s++) {
    tidy(() => m.loss(batch, info(s, 1)));
    m.afterStep(info(s, 1), comm);
  }
  const losses: number[] = [];
  for (let s = 0; s < 20; s++) {
    const i = info(s, 0.996);
    losses.push(
      tidy(() => {
        const { loss, logs } = m.loss(batch, i);
        opt.zeroGrad();
        loss.backward();
        for (const v of Object.values(logs)) assert.ok(Number.isFinite(typeof v === 'number' ? v : v.item()));
        return loss.item();
      }),
    );
    m.beforeOptimizerStep(i);
    opt.step();
    m.afterStep(i, comm);
  }
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  assert.ok(
    mean(losses.slice(-5)) < 0.75 * mean(losses.slice(0, 5)),
    `loss did not fall: ${losses.map((l) => l.toFixed(3))}`,
  );
});
