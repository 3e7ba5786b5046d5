// Numerics against PyTorch (Debian's python3-torch under /usr/bin/python3): the same small ViT weights and
// input batch, moved through safetensors, give the same CLS/patch outputs and the same gradient for every
// parameter; and safetensors files move between Locus and Python with identical values.
//
// Error measure per tensor: max |locus − torch| / max |torch|. Both sides are checked in float64 (bound
// 1e-12: same kernels; measured ~4e-16) and in float32 (bound 1e-5, the acceptance figure; measured ~2e-7).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { arange, type DType, manualSeed, noGrad, randn, type Tensor, tensor, tidy } from '../src/engine/index.js';
import { loadTensors, saveTensors } from '../src/engine/io.js';
import { createVit } from '../src/nn/index.js';

// Debian's python3 has torch; the python3 first on PATH here does not. LOCUS_TORCH_PYTHON overrides.
const PYTHON = process.env.LOCUS_TORCH_PYTHON ?? '/usr/bin/python3';
const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/vit_reference.py');

function torchMissing(): string | false {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
  if (r.status === 0) return false;
  const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').pop();
  return `PyTorch is not available (\`${PYTHON} -c 'import torch'\` failed: ${why}); install Debian's python3-torch to run the numerics comparison`;
}
const skip = torchMissing();
if (skip) console.log(`engine_torch: skipped: ${skip}`);

function runPython(jobs: string[]): string {
  const r = spawnSync(PYTHON, [SCRIPT, ...jobs], { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${PYTHON} ${SCRIPT} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** max |a − b| / max |b| over all elements. */
function relErr(a: Tensor, b: Tensor): number {
  return tidy(() => {
    assert.deepEqual(a.shape, b.shape);
    const diff = a.to('float64').sub(b.to('float64')).abs().maxAll().item();
    const ref = b.to('float64').abs().maxAll().item();
    return ref === 0 ? diff : diff / ref;
  });
}

const CFG = { imgSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2 };

/** Builds the ViT in dtype, writes weights/input/loss weights, and computes outputs and gradients in Locus. */
function locusSide(dtype: DType, path: string): Map<string, Tensor> {
  manualSeed(11);
  const vit = createVit({ ...CFG, dropPathRate: 0 });
  vit.to(dtype);
  const o = { dtype };
  noGrad(() => {
    // make norms and biases non-trivial so that every gradient path is exercised
    for (const [, p] of vit.namedParameters()) tidy(() => p.add_(randn(p.shape, o).mul(0.05)));
  });
  const x = randn([2, 3, 16, 16], o).requiresGrad_();
  const rCls = randn([2, CFG.dim], o);
  const rPatch = randn([2, 16, CFG.dim], o);
  const file = new Map<string, Tensor>([
    ['x', x],
    ['r_cls', rCls],
    ['r_patch', rPatch],
  ]);
  for (const [n, p] of vit.stateDict()) file.set(`w.${n}`, p);
  saveTensors(path, file, { config: JSON.stringify(CFG) });

  const out = new Map<string, Tensor>();
  const r = tidy(() => {
    const { cls, patches } = vit.forward(x);
    return { cls: cls.detach(), patches: patches.detach(), loss: cls.mul(rCls).sum().add(patches.mul(rPatch).sum()) };
  });
  r.loss.backward();
  out.set('cls', r.cls);
  out.set('patches', r.patches);
  out.set('loss', r.loss.detach().reshape(1));
  out.set('grad.x', x.grad!);
  for (const [n, p] of vit.namedParameters()) out.set(`grad.${n}`, p.grad!);
  vit.dispose();
  return out;
}

test('a small ViT matches PyTorch: outputs and every parameter gradient', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'locus-torch-'));
  try {
    tidy(() => {
      const bounds: Record<string, number> = { float64: 1e-12, float32: 1e-5 };
      const mine = new Map<string, Map<string, Tensor>>();
      const jobs: string[] = [];
      for (const dt of ['float64', 'float32'] as const) {
        mine.set(dt, locusSide(dt, join(dir, `in_${dt}.safetensors`)));
        jobs.push(`vit:${join(dir, `in_${dt}.safetensors`)}:${join(dir, `out_${dt}.safetensors`)}`);
      }
      runPython(jobs);
      for (const dt of ['float64', 'float32'] as const) {
        const theirs = loadTensors(join(dir, `out_${dt}.safetensors`));
        const ours = mine.get(dt)!;
        assert.deepEqual([...theirs.keys()].sort(), [...ours.keys()].sort(), 'same outputs and parameter names');
        assert.equal(
          ours.size,
          4 + 6 + 2 * 12,
          'cls, patches, loss, grad.x; 6 embedding/final-norm params; 12 per block',
        );
        let worst = 0;
        let worstName = '';
        for (const [name, t] of ours) {
          const ref = theirs.get(name)!;
          assert.equal(ref.dtype, dt, name);
          const e = relErr(t, ref);
          if (e > worst) [worst, worstName] = [e, name];
          assert.ok(e <= bounds[dt], `${dt} ${name}: relative error ${e.toExponential(2)} > ${bounds[dt]}`);
        }
        console.log(
          `engine_torch ${dt}: worst relative error ${worst.toExponential(2)} (${worstName}) over ${ours.size} tensors`,
        );
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('safetensors move between Locus and Python with identical values', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'locus-st-'));
  try {
    tidy(() => {
      manualSeed(2);
      const base = arange(6).reshape(2, 3);
      const mine = new Map<string, Tensor>([
        ['f32', randn([3, 4])],
        ['f64', randn([2, 5], { dtype: 'float64' })],
        ['i64', tensor([-(2 ** 40), 0, 2 ** 50, 7], [2, 2], { dtype: 'int64' })],
        ['i32', tensor([-2147483648, 2147483647, 5], [3], { dtype: 'int32' })],
        ['u8', tensor([0, 128, 255], [3], { dtype: 'uint8' })],
        ['bool', tensor([1, 0, 0, 1], [4], { dtype: 'bool' })],
        ['scalar', tensor([3.25], [], { dtype: 'float64' })],
        ['empty', randn([0, 2])],
      ]);
      const src = join(dir, 'locus.safetensors');
      const dst = join(dir, 'python.safetensors');
      saveTensors(src, mine, { writer: 'locus' });
      const summary = JSON.parse(
        runPython([`roundtrip:${src}:${dst}`])
          .trim()
          .split('\n')
          .pop()!,
      );
      // Locus → Python: what Python read is what Locus wrote
      assert.deepEqual(summary.metadata, { writer: 'locus' });
      for (const [k, t] of mine) {
        const s = summary.tensors[k];
        assert.ok(s, `python read ${k}`);
        assert.deepEqual(s.shape, t.shape, k);
        const st = { float32: 'F32', float64: 'F64', int64: 'I64', int32: 'I32', uint8: 'U8', bool: 'BOOL' }[
          t.dtype as string
        ];
        assert.equal(s.dtype, st, k);
        assert.deepEqual((s.values as (number | boolean)[]).map(Number), t.toNumbers(), `${k} values in Python`);
      }
      // Python → Locus: the echo is bit-identical, and tensors made in Python have the expected values
      const back = loadTensors(dst);
      for (const [k, t] of mine) {
        const e = back.get(`echo.${k}`)!;
        assert.equal(e.dtype, t.dtype, k);
        assert.deepEqual(e.shape, t.shape, k);
        assert.deepEqual(e.toArray(), t.toArray(), `${k} echoed bit for bit`);
      }
      assert.deepEqual(back.get('py.F32')!.toArray(), base.to('float32').div(7).toArray());
      assert.deepEqual(back.get('py.F64')!.toArray(), base.to('float64').div(7).toArray());
      assert.deepEqual(back.get('py.I64')!.toNumbers(), base.sub(2 ** 40).toNumbers());
      assert.equal(back.get('py.I32')!.dtype, 'int32');
      assert.deepEqual(back.get('py.I32')!.toNumbers(), [-3, -2, -1, 0, 1, 2]);
      assert.deepEqual(back.get('py.U8')!.toNumbers(), [0, 50, 100, 150, 200, 250]);
      assert.equal(back.get('py.BOOL')!.dtype, 'bool');
      assert.deepEqual(back.get('py.BOOL')!.toNumbers(), [0, 1, 0, 1, 0, 1]);
      assert.deepEqual(back.get('py.F32')!.shape, [2, 3]);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
