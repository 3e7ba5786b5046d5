// Export: a pretrained checkpoint → timm/DINO-named safetensors that a PyTorch ViT loads (strict) and
// runs to the same CLS features as Locus's evaluated backbone.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { noGrad, randn, setNumThreads } from '../src/engine/index.js';
import { loadMetadata, loadTensors, saveTensors } from '../src/engine/io.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { resolveConfig } from '../src/train/config.js';
import { buildMethod } from '../src/train/loop.js';

setNumThreads(1);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/locus.js');
const FIXTURES = join(ROOT, 'test/fixtures');
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const TINY = [
  '--set',
  'model.dim=32',
  '--set',
  'model.depth=2',
  '--set',
  'model.heads=2',
  '--set',
  'optim.batchSize=8',
  '--set',
  'data.workers=0',
];

test('exported checkpoint loads into a PyTorch ViT and gives the same CLS features', {
  skip: hasTorch ? false : 'Debian python3-torch is not installed',
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'locus-export-'));
  const run = join(dir, 'run');
  execFileSync(process.execPath, [CLI, 'pretrain', '--steps', '2', '--out', run, ...TINY], {
    stdio: 'pipe',
    env: { ...process.env, LOCUS_THREADS: '1' },
  });
  const out = join(dir, 'vit.safetensors');
  execFileSync(process.execPath, [CLI, 'export', '--checkpoint', run, '--out', out], { stdio: 'pipe' });

  const meta = loadMetadata(out);
  const names = [...loadTensors(out).keys()].sort();
  assert.ok(
    names.includes('blocks.1.attn.qkv.weight') &&
      names.includes('patch_embed.proj.weight') &&
      names.includes('norm.bias'),
  );
  assert.ok(!names.some((n) => n.startsWith('backbone.') || n.startsWith('head')), 'only backbone tensors, timm names');

  // Locus side: the checkpoint's evaluated backbone (DINO's teacher) on a fixed input.
  const ck = loadCheckpoint(run);
  const method = buildMethod(resolveConfig(ck.config));
  method.student.loadStateDict(ck.student);
  method.teacher?.loadStateDict(ck.teacher);
  const vit = method.evalBackbone().eval();
  const size = Number(meta.img_size);
  const x = randn([3, 3, size, size]);
  const cls = noGrad(() => vit.forward(x).cls).toFloat32();
  const io = join(dir, 'x.safetensors');
  saveTensors(io, new Map([['x', x]]));

  const py = `
import json, sys
sys.path.insert(0, ${JSON.stringify(FIXTURES)})
import torch
from vit_reference import VisionTransformer, read_safetensors, write_safetensors
w, meta = read_safetensors(sys.argv[1])
m = VisionTransformer(int(meta['img_size']), int(meta['patch_size']), int(meta['in_chans']), int(meta['embed_dim']), int(meta['depth']), int(meta['num_heads']))
m.load_state_dict(w, strict=True)
m.eval()
x, _ = read_safetensors(sys.argv[2])
with torch.no_grad():
    cls, _ = m(x['x'])
write_safetensors(sys.argv[3], {'cls': cls.contiguous()})
`;
  const script = join(dir, 'load.py');
  writeFileSync(script, py);
  const res = join(dir, 'torch.safetensors');
  execFileSync('/usr/bin/python3', [script, out, io, res], { stdio: 'pipe' });
  const ref = loadTensors(res).get('cls')!.toFloat32();
  assert.equal(ref.length, cls.length);
  let maxRel = 0;
  const scale = Math.max(...Array.from(ref, Math.abs));
  for (let i = 0; i < ref.length; i++) maxRel = Math.max(maxRel, Math.abs(ref[i] - cls[i]) / scale);
  assert.ok(maxRel <= 1e-5, `max relative error ${maxRel}`);
});

test('export refuses an unknown format with the allowed values', () => {
  const r = spawnSync(
    process.execPath,
    [CLI, 'export', '--format', 'tflite', '--checkpoint', '/nonexistent', '--out', '/tmp/x'],
    { encoding: 'utf8' },
  );
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /unknown --format tflite \(allowed: safetensors, onnx\)/);
});
