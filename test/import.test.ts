// Off-the-shelf checkpoints: files written by Debian's PyTorch (torch.save / safetensors, in timm, DINO,
// DeiT, iBOT and MAE layouts) load into Locus's ViT, which then computes PyTorch's CLS and patch tokens;
// unsafe pickles are refused without running anything; `pretrain --init` starts from the imported weights.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { noGrad, setNumThreads, type Tensor } from '../src/engine/index.js';
import { loadTensors } from '../src/engine/io.js';
import { PickleError, unpickle } from '../src/engine/pickle.js';
import { resolveBackbone } from '../src/eval/index.js';
import { VisionTransformer } from '../src/nn/index.js';
import { importBackbone, loadInto, readWeights, vitConfigOfImport } from '../src/train/import.js';

setNumThreads(1);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'bin/locus.js');
const FIXTURES = join(ROOT, 'test/fixtures');
const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
const skip = hasTorch ? false : 'Debian python3-torch is not installed';

let dir = '';
let ref: Map<string, Tensor>;
before(() => {
  if (!hasTorch) return;
  dir = mkdtempSync(join(tmpdir(), 'locus-import-'));
  execFileSync('/usr/bin/python3', [join(FIXTURES, 'torch_checkpoints.py'), dir], { stdio: 'pipe' });
  ref = loadTensors(join(dir, 'ref.safetensors'));
});

const maxDiff = (a: Tensor, b: Tensor): number => noGrad(() => a.sub(b).abs().flatten().amax(0).item());

function features(file: string, heads?: number): { cls: Tensor; patches: Tensor } {
  const bb = importBackbone(join(dir, file), { heads, quiet: true });
  try {
    return noGrad(() => bb.vit.forward(ref.get('x') as Tensor));
  } finally {
    bb.dispose();
  }
}

for (const [file, name] of [
  ['timm.pth', 'timm'],
  ['timm.safetensors', 'timm'],
  ['dino_checkpoint.pth', 'dino'],
  ['deit.pth', 'deit'],
  ['ibot_bf16.pth', 'ibot'],
  ['mae.pth', 'mae'],
] as const) {
  test(`${file}: CLS and patch tokens match PyTorch's forward within 1e-5`, { skip }, () => {
    const f = features(file);
    assert.deepEqual(f.cls.shape, [3, 128]);
    assert.deepEqual(f.patches.shape, [3, 16, 128]);
    assert.ok(maxDiff(f.cls, ref.get(`${name}.cls`) as Tensor) < 1e-5);
    assert.ok(maxDiff(f.patches, ref.get(`${name}.patches`) as Tensor) < 1e-5);
    // the comparison can fail: another checkpoint's tokens are far off
    const other = name === 'timm' ? 'mae' : 'timm';
    assert.ok(maxDiff(f.cls, ref.get(`${other}.cls`) as Tensor) > 1e-2);
  });
}

test('the architecture comes from the shapes; heads dim/64 or a flag, said so; heads and training state ignored', {
  skip,
}, () => {
  const w = readWeights(join(dir, 'dino_checkpoint.pth'));
  assert.deepEqual(w.arch, {
    imgSize: 32,
    patchSize: 8,
    inChans: 3,
    dim: 128,
    depth: 2,
    heads: 2,
    mlpRatio: 4,
    qkvBias: true,
  });
  assert.equal(w.container, 'teacher'); // DINO evaluates the teacher
  assert.equal(w.prefix, 'backbone.');
  assert.ok(w.notes.some((n) => /heads 2 = dim 128\/64/.test(n)));
  assert.ok(w.notes.some((n) => /took the 'teacher' dict.*student, optimizer, epoch, args, dino_loss/.test(n)));
  assert.ok(w.notes.some((n) => /ignored head\.\* \(2\)/.test(n)));
  for (const t of w.state.values()) t.dispose();
  const w4 = readWeights(join(dir, 'timm.pth'), { heads: 4 });
  assert.equal(w4.arch.heads, 4);
  assert.ok(w4.notes.some((n) => /heads 4 \(from --heads\)/.test(n)));
  for (const t of w4.state.values()) t.dispose();
  // 4 heads is another model: its tokens differ from PyTorch's 2-head forward
  assert.ok(maxDiff(features('timm.pth', 4).cls, ref.get('timm.cls') as Tensor) > 1e-3);
});

test('another input size: pos_embed resampled as timm does (bicubic), within 1e-5 of PyTorch', { skip }, () => {
  const w = readWeights(join(dir, 'timm.pth'));
  const vit = new VisionTransformer(vitConfigOfImport(w.arch, 64));
  try {
    loadInto(vit, w);
    assert.ok(maxDiff(vit.posEmbed, ref.get('timm.pos_embed64') as Tensor) < 1e-5);
    assert.ok(
      maxDiff(
        vit.blocks.items[1]?.stateDict().get('mlp.fc1.weight') as Tensor,
        w.state.get('blocks.1.mlp.fc1.weight') as Tensor,
      ) === 0,
    );
  } finally {
    vit.dispose();
    for (const t of w.state.values()) t.dispose();
  }
});

test('a whole pickled module (not a state dict) is refused in one line, naming its class', { skip }, () => {
  assert.throws(
    () => readWeights(join(dir, 'whole_model.pth')),
    /whole_model\.pth: the pickle holds a whole vit_reference\.VisionTransformer object, not a state dict/,
  );
});

test('a tensor only a foreign class could rebuild is refused, naming the global', { skip }, () => {
  assert.throws(
    () => readWeights(join(dir, 'foreign.pth')),
    /foreign\.pth: tensor 'blocks\.0\.attn\.qkv\.weight' is a tensor of a foreign type \(__main__\.Odd\).*refused/,
  );
});

test('a pickle that would run code (os.system via __reduce__) is refused without running it', { skip }, () => {
  assert.throws(() => readWeights(join(dir, 'evil.pth')), /evil\.pth: refused: the pickle calls posix\.system/);
  assert.equal(existsSync(join(dir, 'pwned')), false, 'the payload must not have run');
  // the same payload pickled by Python on its own (protocol 2 as torch.save writes, and protocol 5)
  for (const proto of [2, 5]) {
    const pkl = join(dir, `evil${proto}.pkl`);
    execFileSync('/usr/bin/python3', [
      '-c',
      `import os,pickle,sys
class E:
    def __reduce__(self): return (os.system, ('touch ${join(dir, 'pwned2')}',))
open(sys.argv[1],'wb').write(pickle.dumps({'a': [1, 2.5, 'x', None, True], 'e': E()}, protocol=${proto}))`,
      pkl,
    ]);
    assert.throws(() => unpickle(readFileSync(pkl)), PickleError);
    assert.equal(existsSync(join(dir, 'pwned2')), false);
  }
});

test('plain containers read as Python wrote them; unknown objects become placeholders', { skip }, () => {
  const out = join(dir, 'plain.pkl');
  execFileSync('/usr/bin/python3', [
    '-c',
    `import argparse,collections,pickle,sys
d = collections.OrderedDict(a=1, b=-2**40, c=2**70, f=0.25, s='é', t=(1, (2, 3)), l=[None, True, False], y=b'xy', z={1: 'one'})
d['ns'] = argparse.Namespace(lr=0.5)
open(sys.argv[1],'wb').write(pickle.dumps(d, protocol=int(sys.argv[2])))`,
    out,
    '4',
  ]);
  const v = unpickle(readFileSync(out)) as Map<string, unknown>;
  assert.equal(v.get('a'), 1);
  assert.equal(v.get('b'), -(2 ** 40));
  assert.equal(v.get('c'), 2n ** 70n);
  assert.equal(v.get('f'), 0.25);
  assert.equal(v.get('s'), 'é');
  assert.deepEqual(v.get('t'), [1, [2, 3]]);
  assert.deepEqual(v.get('l'), [null, true, false]);
  assert.deepEqual(v.get('y'), new Uint8Array([120, 121]));
  assert.equal((v.get('z') as Map<number, string>).get(1), 'one');
  const ns = v.get('ns') as { global: string; state: Map<string, unknown> };
  assert.equal(ns.global, 'argparse.Namespace');
  assert.equal(ns.state.get('lr'), 0.5);
});

test('locus eval --weights on a .pth prints JSON; on a code-running pickle it fails in one line', { skip }, () => {
  const out = execFileSync(
    process.execPath,
    [
      CLI,
      'eval',
      'knn',
      '--weights',
      join(dir, 'timm.pth'),
      '--set',
      'train.length=40',
      '--set',
      'test.length=20',
      '--json',
    ],
    { encoding: 'utf8', stdio: 'pipe', env: { ...process.env, LOCUS_THREADS: '1' } },
  );
  const r = JSON.parse(out.trim().split('\n').pop() as string);
  assert.equal(typeof r.top1, 'number');
  const bad = spawnSync(process.execPath, [CLI, 'eval', 'knn', '--weights', join(dir, 'evil.pth')], {
    encoding: 'utf8',
  });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /refused: the pickle calls posix\.system/);
  assert.equal(existsSync(join(dir, 'pwned')), false);
});

test('resolveBackbone imports a timm safetensors file that has no Locus metadata', { skip }, async () => {
  const bb = await resolveBackbone(join(dir, 'timm.safetensors'));
  try {
    const cls = noGrad(() => bb.vit.forward(ref.get('x') as Tensor).cls);
    assert.ok(maxDiff(cls, ref.get('timm.cls') as Tensor) < 1e-5);
  } finally {
    bb.dispose?.();
  }
});

test('pretrain --init: the first step starts from the imported weights', { skip }, async () => {
  const run = join(dir, 'init-run');
  // lr is 0 at step 0 (one warm-up step), so after it student and EMA teacher still hold the imported weights
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      'pretrain',
      '--init',
      join(dir, 'dino_checkpoint.pth'),
      '--steps',
      '1',
      '--out',
      run,
      '--set',
      'optim.warmupSteps=1',
      '--set',
      'optim.batchSize=4',
      '--set',
      'data.dataset.length=8',
      '--set',
      'data.workers=0',
      '--set',
      'dino.localCount=2',
    ],
    { encoding: 'utf8', env: { ...process.env, LOCUS_THREADS: '1' } },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /initialised 2 ViT backbone\(s\)/);
  const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')) as {
    model: Record<string, unknown>;
    dino: Record<string, unknown>;
  };
  assert.equal(config.model.dim, 128);
  assert.equal(config.model.patchSize, 8);
  assert.equal(config.model.init, join(dir, 'dino_checkpoint.pth'));
  assert.equal(config.dino.localSize, 16); // 96/224 of 32 px, rounded up to the 8-px patch
  const bb = await resolveBackbone(run);
  try {
    const f = noGrad(() => bb.vit.forward(ref.get('x') as Tensor));
    assert.ok(maxDiff(f.cls, ref.get('dino.cls') as Tensor) < 1e-5);
    assert.ok(maxDiff(f.patches, ref.get('dino.patches') as Tensor) < 1e-5);
  } finally {
    bb.dispose?.();
  }
});

test('pretrain --init with a model that does not fit the file: one line naming the field, no run directory', {
  skip,
}, () => {
  const run = join(dir, 'misfit-run');
  const r = spawnSync(
    process.execPath,
    [CLI, 'pretrain', '--init', join(dir, 'timm.pth'), '--steps', '1', '--out', run, '--set', 'model.depth=3'],
    { encoding: 'utf8' },
  );
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--init .*timm\.pth has model\.depth 2, the config sets model\.depth 3/);
  assert.equal(existsSync(run), false);
});
