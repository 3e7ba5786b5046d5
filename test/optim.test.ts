// AdamW's per-parameter step counts against torch.optim.AdamW (Debian's python3-torch): one parameter has
// no gradient for its first k steps (DINO's frozen prototypes), so its bias correction must count from its
// own first gradient; the counts survive a checkpoint round trip, and old checkpoints without them migrate.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { setNumThreads, type Tensor, tensor, tidy } from '../src/engine/index.js';
import { AdamW } from '../src/nn/index.js';

setNumThreads(1);
const PYTHON = process.env.LOCUS_TORCH_PYTHON ?? '/usr/bin/python3';
const K = 3; // parameter b gets no gradient for its first K steps
const STEPS = 8;
const LR = 0.1;
const WD = 0.05;

/** Deterministic gradients: g_a(t)[i] = sin(t+i), g_b(t)[i] = cos(2t+i) (null for t < K). */
function grads(t: number): { a: number[]; b: number[] | null } {
  return {
    a: [0, 1, 2].map((i) => Math.sin(t + 1 + i)),
    b: t < K ? null : [0, 1].map((i) => Math.cos(2 * t + i)),
  };
}
const A0 = [0.5, -0.25, 1];
const B0 = [2, -1];

function build(): { a: Tensor; b: Tensor; opt: AdamW } {
  const a = tensor(A0, [3], { dtype: 'float64' });
  const b = tensor(B0, [2], { dtype: 'float64' });
  a.requiresGrad_(true);
  b.requiresGrad_(true);
  const opt = new AdamW([{ params: [a, b], lr: LR, weightDecay: WD }]);
  return { a, b, opt };
}
function runSteps(s: { a: Tensor; b: Tensor; opt: AdamW }, from: number, to: number): void {
  for (let t = from; t < to; t++) {
    const g = grads(t);
    s.a.grad = tensor(g.a, [3], { dtype: 'float64' });
    if (g.b) s.b.grad = tensor(g.b, [2], { dtype: 'float64' });
    s.opt.step();
    s.opt.zeroGrad();
  }
}
const values = (t: Tensor) => [...(tidy(() => t.detach().toArray()) as Float64Array)];

function torchReference(): { a: number[]; b: number[] } | null {
  try {
    execFileSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const py = `
import json, math, sys, torch
d = json.load(sys.stdin)
a = torch.tensor(d['a0'], dtype=torch.float64, requires_grad=True)
b = torch.tensor(d['b0'], dtype=torch.float64, requires_grad=True)
opt = torch.optim.AdamW([a, b], lr=d['lr'], weight_decay=d['wd'])
for t in range(d['steps']):
    a.grad = torch.tensor([math.sin(t + 1 + i) for i in range(3)], dtype=torch.float64)
    b.grad = None if t < d['k'] else torch.tensor([math.cos(2 * t + i) for i in range(2)], dtype=torch.float64)
    opt.step()
    opt.zero_grad(set_to_none=True)
print(json.dumps({'a': a.tolist(), 'b': b.tolist()}))
`;
  const input = JSON.stringify({ a0: A0, b0: B0, lr: LR, wd: WD, steps: STEPS, k: K });
  return JSON.parse(execFileSync(PYTHON, ['-c', py], { input }).toString());
}

/** Adam by hand with a global step count (the old, wrong bias correction) for parameter b. */
function bWithGlobalStep(): number[] {
  const p = [...B0];
  const m = [0, 0];
  const v = [0, 0];
  for (let t = K; t < STEPS; t++) {
    const g = grads(t).b as number[];
    const step = t + 1;
    for (let i = 0; i < 2; i++) {
      p[i] = (p[i] as number) * (1 - LR * WD);
      m[i] = 0.9 * (m[i] as number) + 0.1 * (g[i] as number);
      v[i] = 0.999 * (v[i] as number) + 0.001 * (g[i] as number) ** 2;
      const denom = Math.sqrt(v[i] as number) / Math.sqrt(1 - 0.999 ** step) + 1e-8;
      p[i] = (p[i] as number) - ((LR / (1 - 0.9 ** step)) * (m[i] as number)) / denom;
    }
  }
  return p;
}

test('AdamW counts bias-correction steps per parameter from its first gradient, as torch.optim.AdamW', (t) => {
  const s = build();
  runSteps(s, 0, STEPS);
  assert.deepEqual([...s.opt.stepCounts[0]], [STEPS, STEPS - K]);
  const ref = torchReference();
  if (!ref) {
    t.skip(`${PYTHON} cannot import torch`);
    return;
  }
  const got = { a: values(s.a), b: values(s.b) };
  for (const k of ['a', 'b'] as const)
    got[k].forEach((x, i) => {
      assert.ok(Math.abs(x - (ref[k][i] as number)) < 1e-12, `${k}[${i}]: ${x} vs torch ${ref[k][i]}`);
    });
  // the test can fail: a global step count would put b measurably elsewhere
  const wrong = bWithGlobalStep();
  assert.ok(Math.abs((wrong[0] as number) - (ref.b[0] as number)) > 1e-3, 'the global-step variant differs from torch');
});

test('AdamW step counts survive a checkpoint round trip; old checkpoints without them migrate', () => {
  const whole = build();
  runSteps(whole, 0, STEPS);

  const first = build();
  runSteps(first, 0, 5);
  const saved = first.opt.stateTensors();
  assert.deepEqual([...((saved.get('0.step') as Tensor).toArray() as Float64Array)], [5, 5 - K]);
  const resumed = build();
  tidy(() => {
    resumed.a.detach().copy_(first.a.detach());
    resumed.b.detach().copy_(first.b.detach());
  });
  resumed.opt.loadState(saved, first.opt.step_);
  runSteps(resumed, 5, STEPS);
  assert.deepEqual(values(resumed.a), values(whole.a));
  assert.deepEqual(values(resumed.b), values(whole.b));

  // An old checkpoint (no 0.step): a parameter with moments takes the global step, one without takes 0.
  const early = build();
  runSteps(early, 0, 2); // b has had no gradient yet
  const old = new Map([...early.opt.stateTensors()].filter(([k]) => k !== '0.step'));
  const migrated = build();
  migrated.opt.loadState(old, 2);
  assert.deepEqual([...migrated.opt.stepCounts[0]], [2, 0]);
  const partial = new Map([...old, ['1.step', tensor([1], [1], { dtype: 'float64' })]]);
  assert.throws(() => migrated.opt.loadState(partial, 2), /does not match/);
});
