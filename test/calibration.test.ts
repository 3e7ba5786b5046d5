// The calibration methods: supervised (its dense loss against a cross-entropy computed independently: by
// hand for pooled labels, by Debian's PyTorch for the upsampled head) and BYOL (its loss and EMA update
// against hand-computed values); both train, resume exactly, export and evaluate through the CLI.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TensorBatch } from '../src/data/collate.js';
import { manualSeed, noGrad, type Tensor, tensor, tidy } from '../src/engine/index.js';
import { symmetricRegression } from '../src/methods/bootstrap.js';
import { Byol, byolSchema } from '../src/methods/byol.js';
import type { MethodContext, StepInfo } from '../src/methods/method.js';
import { itemPresence, poolLabels, Supervised, supervisedSchema } from '../src/methods/supervised.js';
import type { VitConfig } from '../src/nn/index.js';
import { disposeCheckpoint, loadCheckpoint } from '../src/train/checkpoint.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'bin/locus.js');
const tmp = mkdtempSync(join(tmpdir(), 'locus-calib-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const VIT: VitConfig = {
  imgSize: 8,
  patchSize: 4,
  inChans: 3,
  dim: 16,
  depth: 1,
  heads: 2,
  mlpRatio: 2,
  qkvBias: true,
  dropPathRate: 0,
  maskToken: false,
};
const ctx: MethodContext = { vit: VIT, batchSize: 2, totalSteps: 10, seed: 0 };
const info: StepInfo = { step: 0, totalSteps: 10, epoch: 0, stepsPerEpoch: 10, lr: 0, weightDecay: 0, momentum: 0.9 };

function torchAvailable(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A 2-image batch: 8x8 images, 4x4 masks with classes 0..2 and one ignored pixel. */
function batch(): { b: TensorBatch; masks: Uint8Array } {
  manualSeed(3);
  const masks = Uint8Array.from([
    0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 0, 0, 2, 255, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 2, 2, 2, 2, 0, 0, 2, 2,
  ]);
  const img = Float32Array.from({ length: 2 * 3 * 8 * 8 }, (_, i) => Math.sin(i * 0.37));
  return {
    b: {
      views: [tensor(img, [2, 3, 8, 8])],
      extras: { mask: tensor(masks, [2, 4, 4]) },
      indices: [0, 1],
      size: 2,
    },
    masks,
  };
}

test('supervised: pooled patch labels by hand (majority, ignore left out) and item presence', () => {
  const { masks } = batch();
  const lab = poolLabels(masks, 2, 4, 4, [2, 2], 3, 255);
  // image 0: TL {0,0,0,0}=0, TR {1,1,1,1}=1, BL {2,2,2,255}=2, BR {0,0,0,0}=0; image 1: TL {1,1,1,0}=1,
  // TR {1,1,0,0}: tie 0/1 → lowest = 0, BL {2,2,0,0} → 0, BR {2,2,2,2}=2
  assert.deepEqual([...lab], [0, 1, 2, 0, 1, 0, 0, 2]);
  assert.deepEqual([...itemPresence(masks, 2, 16, 3)], [1, 1, 1, 1]);
});

test('supervised (pool): the dense loss equals a cross-entropy computed by hand from the token logits', () => {
  const m = new Supervised(supervisedSchema.parse({ classes: 3, dense: 'pool', itemWeight: 0, flipP: 0 }), ctx);
  const { b, masks } = batch();
  const lab = poolLabels(masks, 2, 4, 4, [2, 2], 3, 255);
  const loss = tidy(() => m.loss(b, info).loss.item());
  const logits = noGrad(() =>
    tidy(() => m.student.denseHead.forward(m.student.backbone.forward(b.views[0] as Tensor).patches).toFloat32()),
  );
  let sum = 0;
  for (let r = 0; r < 8; r++) {
    const z = [0, 1, 2].map((c) => logits[r * 3 + c] as number);
    const mx = Math.max(...z);
    const lse = mx + Math.log(z.reduce((a, v) => a + Math.exp(v - mx), 0));
    sum += lse - (z[lab[r] as number] as number);
  }
  assert.ok(Math.abs(loss - sum / 8) < 1e-5, `${loss} vs ${sum / 8}`);
  m.student.dispose();
});

test('supervised (upsample): the dense loss equals PyTorch interpolate + cross_entropy(ignore_index=255)', (t) => {
  if (!torchAvailable()) return t.skip('/usr/bin/python3 cannot import torch');
  const m = new Supervised(supervisedSchema.parse({ classes: 3, itemWeight: 0, flipP: 0 }), ctx);
  const { b, masks } = batch();
  const loss = tidy(() => m.loss(b, info).loss.item());
  const logits = noGrad(() =>
    tidy(() => m.student.denseHead.forward(m.student.backbone.forward(b.views[0] as Tensor).patches).toFloat32()),
  );
  const py = `
import json, sys, torch, torch.nn.functional as F
d = json.load(sys.stdin)
z = torch.tensor(d['z'], dtype=torch.float64).reshape(2, 2, 2, 3).permute(0, 3, 1, 2)
y = torch.tensor(d['y']).reshape(2, 4, 4).long()
up = F.interpolate(z, size=(4, 4), mode='bilinear', align_corners=False)
print(F.cross_entropy(up, y, ignore_index=255).item())`;
  const ref = Number(
    execFileSync('/usr/bin/python3', ['-c', py], {
      input: JSON.stringify({ z: [...logits], y: [...masks] }),
    }).toString(),
  );
  assert.ok(Math.abs(loss - ref) < 1e-5, `${loss} vs torch ${ref}`);
  m.student.dispose();
});

test('supervised: a mask value beyond supervised.classes fails naming the option', () => {
  const m = new Supervised(supervisedSchema.parse({ classes: 2 }), ctx);
  const { b } = batch();
  assert.throws(() => tidy(() => m.loss(b, info)), /mask value 2 ≥ supervised\.classes 2/);
  m.student.dispose();
});

test('byol: the symmetric loss by hand; the target starts as a copy and follows the EMA', () => {
  // rows [view-1 item; view-2 item]: ℓ(p1, t2) + ℓ(p2, t1) with ℓ = 2 − 2 cos
  const p = tensor([1, 0, 1, 1], [2, 2]);
  const tt = tensor([0, 1, -1, 0], [2, 2]);
  const l = symmetricRegression(p, tt).item();
  // ℓ([1,0], [−1,0]) = 4; ℓ([1,1], [0,1]) = 2 − √2
  assert.ok(Math.abs(l - (6 - Math.SQRT2)) < 1e-6, String(l));

  manualSeed(0);
  const m = new Byol(byolSchema.parse({ hiddenDim: 8, outDim: 4 }), ctx);
  const s0 = new Map(m.student.stateDict());
  for (const [k, v] of m.teacher.stateDict())
    assert.deepEqual(v.toFloat32(), s0.get(k)?.toFloat32(), `target ${k} is a copy`);
  const name = 'encoder.patch_embed.proj.weight';
  const before = m.teacher.stateDict().get(name)?.toFloat32() as Float32Array;
  const sp = m.student.namedParameters().find(([n]) => n === name)?.[1] as Tensor;
  noGrad(() => sp.add_(1)); // online moves by +1
  m.afterStep({ ...info, momentum: 0.9 }, { worldSize: 1, allReduceMean: () => {} });
  const after = m.teacher.stateDict().get(name)?.toFloat32() as Float32Array;
  // target ← 0.9·target + 0.1·(target + 1) = target + 0.1
  for (let i = 0; i < after.length; i++) assert.ok(Math.abs((after[i] as number) - (before[i] as number) - 0.1) < 1e-6);
  // the predictor is online only
  assert.ok(!m.teacher.stateDict().has('predictor.net.0.weight'));
  m.student.dispose();
  m.teacher.dispose();
});

function locus(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: tmp,
    encoding: 'utf8',
    env: { ...process.env, LOCUS_THREADS: '1', MALLOC_ARENA_MAX: '1', LOCUS_NO_PROGRESS: '1', ...env },
    timeout: 240_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const TINY = [
  'model.depth=1',
  'model.dim=32',
  'model.heads=2',
  'optim.batchSize=8',
  'data.dataset.length=48',
  'data.workers=1',
  'train.progress=plain',
  'train.ckptEvery=3',
];

for (const method of ['supervised', 'byol']) {
  test(`${method}: trains, resumes exactly after SIGTERM, exports and evaluates`, () => {
    const extra = method === 'byol' ? ['byol.hiddenDim=64', 'byol.outDim=32'] : [];
    const common = [
      'pretrain',
      '--method',
      method,
      '--steps',
      '6',
      ...[...TINY, ...extra].flatMap((s) => ['--set', s]),
    ];
    const a = join(tmp, `${method}-a`);
    const b = join(tmp, `${method}-b`);
    const ra = locus([...common, '--out', a]);
    assert.equal(ra.code, 0, ra.stderr);
    const rb = locus([...common, '--out', b], { LOCUS_TEST_SIGNAL_AT_STEP: '3' });
    assert.equal(rb.code, 0, rb.stderr);
    const rc = locus([...common, '--resume', b]);
    assert.equal(rc.code, 0, rc.stderr);
    const ca = loadCheckpoint(a);
    const cb = loadCheckpoint(b);
    try {
      assert.equal(cb.info.step, 6);
      for (const [k, t] of ca.student) assert.deepEqual(t.toFloat32(), cb.student.get(k)?.toFloat32(), `student.${k}`);
    } finally {
      disposeCheckpoint(ca);
      disposeCheckpoint(cb);
    }
    const out = join(tmp, `${method}.safetensors`);
    const ex = locus(['export', '--checkpoint', a, '--out', out]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.ok(existsSync(out));
    const ev = locus([
      'eval',
      'knn',
      '--checkpoint',
      out,
      '--no-save',
      '--set',
      'train.length=100',
      '--set',
      'test.length=100',
    ]);
    assert.equal(ev.code, 0, ev.stderr);
    assert.match(ev.stdout, /knn: top-1 [\d.]+% \[[\d.]+, [\d.]+\] \(cls\)/);
    if (method === 'byol') {
      // an EMA method: teacher and student are different networks, with different hashes
      const st = locus([
        'eval',
        'knn',
        '--checkpoint',
        a,
        '--no-save',
        '--json',
        '--backbone',
        'student',
        '--set',
        'train.length=100',
        '--set',
        'test.length=100',
      ]);
      const te = locus([
        'eval',
        'knn',
        '--checkpoint',
        a,
        '--no-save',
        '--json',
        '--backbone',
        'teacher',
        '--set',
        'train.length=100',
        '--set',
        'test.length=100',
      ]);
      assert.equal(st.code, 0, st.stderr);
      assert.equal(te.code, 0, te.stderr);
      const js = JSON.parse(st.stdout.trim().split('\n').at(-1) as string);
      const jt = JSON.parse(te.stdout.trim().split('\n').at(-1) as string);
      assert.notEqual(js.checkpoint.hash, jt.checkpoint.hash);
      assert.equal(js.checkpoint.network, 'student');
      assert.equal(jt.checkpoint.network, 'teacher');
      assert.notDeepEqual(js.by_feature, jt.by_feature);
    } else {
      const te = locus(['eval', 'knn', '--checkpoint', a, '--no-save', '--backbone', 'teacher']);
      assert.notEqual(te.code, 0);
      assert.match(
        te.stderr,
        /locus: error: --backbone teacher: method 'supervised' has no teacher \(EMA\) network \(allowed: student\)/,
      );
    }
  });
}
