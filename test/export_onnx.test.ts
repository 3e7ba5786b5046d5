// ONNX export: the exported backbone, run by onnxruntime-web (its WASM backend, inside Node), gives the
// same CLS and patch features as Locus's forward pass, for any batch size; and `locus export --format onnx`
// on a real checkpoint does the same for the run's evaluated backbone.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-web';
import { manualSeed, noGrad, randn, setNumThreads } from '../src/engine/index.js';
import { loadRunCheckpoint } from '../src/eval/index.js';
import { createVit, type VisionTransformer } from '../src/nn/vit.js';
import { exportOnnx } from '../src/train/export_onnx.js';
import { TINY_DINO } from './fixtures/tiny.js';

setNumThreads(1);
manualSeed(0);
ort.env.wasm.numThreads = 1; // single-threaded WASM: no worker threads, deterministic
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/locus.js');
const tmp = mkdtempSync(join(tmpdir(), 'locus-onnx-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** max |a − b| / max |a|. */
function maxRelError(ref: Float32Array, got: Float32Array): number {
  assert.equal(got.length, ref.length);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i] as number));
    err = Math.max(err, Math.abs((ref[i] as number) - (got[i] as number)));
  }
  assert.ok(scale > 0, 'reference is all zeros');
  return err / scale;
}

/** Runs the ONNX model and Locus's forward on the same random batch; returns the errors. */
async function compare(session: ort.InferenceSession, vit: VisionTransformer, batch: number) {
  const c = vit.cfg;
  const x = randn([batch, c.inChans, c.imgSize, c.imgSize]);
  const ref = noGrad(() => vit.forward(x));
  const out = await session.run({
    images: new ort.Tensor('float32', x.toFloat32(), [batch, c.inChans, c.imgSize, c.imgSize]),
  });
  const L = vit.gridSize ** 2;
  assert.deepEqual(out.cls?.dims, [batch, c.dim]);
  assert.deepEqual(out.patches?.dims, [batch, L, c.dim]);
  return {
    cls: maxRelError(ref.cls.toFloat32(), out.cls?.data as Float32Array),
    patches: maxRelError(ref.patches.toFloat32(), out.patches?.data as Float32Array),
  };
}

async function session(path: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(new Uint8Array(readFileSync(path)));
}

/** Every parameter random (LN weights, biases too), so a misplaced bias or transpose cannot hide. */
function randomize(vit: VisionTransformer): void {
  noGrad(() => {
    for (const p of vit.parameters()) p.copy_(randn(p.shape).mul(0.5));
  });
}

test('exported ViT runs in onnxruntime-web and matches forward() for batches of 2 and 3', async (t) => {
  const configs = [
    { imgSize: 16, patchSize: 4, dim: 16, depth: 2, heads: 2 },
    { imgSize: 12, patchSize: 3, dim: 24, depth: 1, heads: 3, mlpRatio: 2, qkvBias: false },
  ];
  for (const [i, cfg] of configs.entries()) {
    const vit = createVit(cfg).eval();
    randomize(vit);
    const path = join(tmp, `vit${i}.onnx`);
    const r = exportOnnx(vit, path);
    assert.equal(r.opset, 17);
    const s = await session(path);
    assert.deepEqual(s.inputNames, ['images']);
    assert.deepEqual(s.outputNames, ['cls', 'patches']);
    for (const batch of [2, 3]) {
      const e = await compare(s, vit, batch);
      t.diagnostic(`${JSON.stringify(cfg)} batch ${batch}: max rel error ${JSON.stringify(e)}`);
      assert.ok(e.cls <= 1e-5, `cls: max relative error ${e.cls}`);
      assert.ok(e.patches <= 1e-5, `patches: max relative error ${e.patches}`);
    }
    await s.release();
    vit.dispose();
  }
});

test('locus export --format onnx: a checkpoint runs in onnxruntime-web like its evaluated backbone', async (t) => {
  const env = { ...process.env, LOCUS_THREADS: '1', MALLOC_ARENA_MAX: '1' };
  const run = join(tmp, 'run');
  const tiny = [...TINY_DINO, 'optim.batchSize=8', 'data.dataset.length=16', 'data.workers=0'].flatMap((s) => [
    '--set',
    s,
  ]);
  const p = spawnSync(process.execPath, [CLI, 'pretrain', '--steps', '1', ...tiny, '--out', run], {
    encoding: 'utf8',
    env,
    timeout: 180_000,
  });
  assert.equal(p.status, 0, p.stderr);
  const out = join(tmp, 'vit.onnx');
  const e = spawnSync(
    process.execPath,
    [CLI, 'export', '--format', 'onnx', '--checkpoint', run, '--out', out, '--json'],
    {
      encoding: 'utf8',
      env,
      timeout: 60_000,
    },
  );
  assert.equal(e.status, 0, e.stderr);
  const j = JSON.parse(e.stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;
  assert.equal(j.path, out);
  assert.equal(j.method, 'dino');

  const bb = loadRunCheckpoint(run);
  try {
    const s = await session(out);
    for (const batch of [2, 3]) {
      const err = await compare(s, bb.vit, batch);
      t.diagnostic(`checkpoint batch ${batch}: max rel error ${JSON.stringify(err)}`);
      assert.ok(err.cls <= 1e-5 && err.patches <= 1e-5, `max relative error ${JSON.stringify(err)}`);
    }
    await s.release();
  } finally {
    bb.dispose?.();
  }
});

test('export names the allowed formats for an unknown one', () => {
  const r = spawnSync(process.execPath, [CLI, 'export', '--format', 'tflite', '--checkpoint', tmp, '--out', 'x'], {
    encoding: 'utf8',
    env: { ...process.env, LOCUS_THREADS: '1' },
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unknown --format tflite \(allowed: safetensors, onnx\)/);
});
