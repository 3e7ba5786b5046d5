// Own data: folder pretraining at ViT-Ti/16-style sizes from the original non-square photos (views'
// boxes in the original image's pixels), bad files named in <run>/skipped.jsonl, skipBadImages=false
// stopping before the run directory, class names from classes.txt, the standard eval Resize +
// CenterCrop, native libvips crop + resize against PIL, and the README's own-data commands as written.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { openDataset } from '../src/data/datasets.js';
import { decodeRaw, toFloat } from '../src/data/decode.js';
import { Loader } from '../src/data/loader.js';
import { nativeResizedCrop, resizeCenterCrop } from '../src/data/resample.js';
import { Rng } from '../src/data/rng.js';
import { makeViews, multiCrop, renderViews } from '../src/data/views.js';
import { locationEval } from '../src/eval/location.js';
import { pretrain } from '../src/train/pretrain.js';
import { TINY_DINO } from './fixtures/tiny.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'bin/locus.js');
const PY = '/usr/bin/python3';
const tmp = mkdtempSync(join(tmpdir(), 'locus-own-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A smooth, non-symmetric colour picture (so crops, flips and resizes are all visible). */
function picture(w: number, h: number, seed: number): Buffer {
  const b = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      b[i] = (x * 255) / w;
      b[i + 1] = (y * 255) / h;
      b[i + 2] = 128 + 100 * Math.sin((x + 2 * y + seed * 17) / 9);
    }
  return b;
}

async function save(path: string, w: number, h: number, seed: number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const s = sharp(picture(w, h, seed), { raw: { width: w, height: h, channels: 3 } });
  const ext = path.slice(path.lastIndexOf('.'));
  await (ext === '.png' ? s.png() : ext === '.webp' ? s.webp({ quality: 90 }) : s.jpeg({ quality: 90 })).toFile(path);
}

/** Mixed formats and sizes: a 500x375 landscape JPEG, a portrait PNG, a WebP, … and one corrupt file. */
const PHOTOS: [string, number, number][] = [
  ['a_land.jpg', 500, 375],
  ['b_portrait.png', 375, 500],
  ['c_wide.webp', 640, 360],
  ['d_tall.jpg', 300, 420],
  ['e_small.png', 333, 250],
  ['f_more.webp', 500, 375],
];

async function photoFolder(dir: string, corrupt = true): Promise<Map<string, [number, number]>> {
  const sizes = new Map<string, [number, number]>();
  for (const [i, [name, w, h]] of PHOTOS.entries()) {
    await save(join(dir, name), w, h, i);
    sizes.set(join(dir, name), [w, h]);
  }
  if (corrupt) writeFileSync(join(dir, 'broken.jpg'), Buffer.from('\xff\xd8\xff\xe0 not really a jpeg', 'latin1'));
  return sizes;
}

const VIT_TI16 = [
  ...TINY_DINO,
  'model.patchSize=16',
  'model.imgSize=224',
  'dino.localSize=96',
  'dino.localCount=2',
  'optim.batchSize=3',
  'data.workers=1',
  'train.progress=none',
];

test('folder pretraining at patch 16, 224/96 crops: views cut from the original photos, the corrupt file in skipped.jsonl', async () => {
  const dir = join(tmp, 'photos');
  const sizes = await photoFolder(dir);
  const sets = [...VIT_TI16, 'data.dataset.kind=folder', `data.dataset.root=${dir}`];
  const r = await pretrain({ sources: { steps: 2, sets }, out: join(tmp, 'run-ti16'), progress: 'none' });
  assert.equal(r.step, 2);
  assert.equal(r.skippedImages, 1);
  const lines = readFileSync(join(r.runDir, 'skipped.jsonl'), 'utf8').trim().split('\n');
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0] as string) as { path: string; reason: string };
  assert.equal(rec.path, join(dir, 'broken.jpg'));
  assert.match(rec.reason, /broken\.jpg/);

  // The same data and recipe through the loader: every box lies in its file's original pixel frame,
  // and the global crops cover ≥ 0.4 of the original area (a 64-px thumbnail would give ≤ 4096 px²).
  const recipe = multiCrop({ globalSize: 224, localSize: 96, localCount: 2 });
  const loader = new Loader({
    dataset: r.config.data.dataset as never,
    views: recipe,
    batchSize: 3,
    seed: 0,
    workers: 1,
  });
  const ds = await loader.open();
  let checked = 0;
  for await (const b of loader.epoch(0)) {
    assert.deepEqual(b.views[0]?.shape, [3, 3, 224, 224]);
    assert.deepEqual(b.views[2]?.shape, [3, 3, 96, 96]);
    const box = b.extras.view_box as { data: Float32Array };
    for (const [row, index] of b.indices.entries()) {
      const path = (await ds.get(index)).path as string;
      const [W, H] = sizes.get(path) as [number, number];
      for (let v = 0; v < 4; v++) {
        const [x0, y0, x1, y1] = box.data.subarray((row * 4 + v) * 4, (row * 4 + v + 1) * 4);
        for (const c of [x0, y0, x1, y1]) assert.ok(Number.isInteger(c), `box corner ${c} is a whole pixel`);
        assert.ok((x0 as number) >= 0 && (y0 as number) >= 0 && (x1 as number) <= W && (y1 as number) <= H, path);
        const area = ((x1 as number) - (x0 as number)) * ((y1 as number) - (y0 as number));
        if (v < 2) assert.ok(area >= 0.4 * W * H * 0.97, `global crop of ${path}: ${area} px² of ${W * H}`);
      }
      checked++;
    }
  }
  await loader.close();
  assert.equal(checked, 6);
});

test('bad images: skipBadImages=false stops before the run directory; an all-bad folder names its files', async () => {
  const dir = join(tmp, 'photos-strict');
  await photoFolder(dir);
  // a truncated JPEG passes the header probe: only the full decode of the strict check finds it
  const jpg = readFileSync(join(dir, 'a_land.jpg'));
  writeFileSync(join(dir, 'truncated.jpg'), jpg.subarray(0, Math.floor(jpg.length / 2)));
  rmSync(join(dir, 'broken.jpg'));
  const out = join(tmp, 'run-strict');
  const sets = [
    ...VIT_TI16,
    'data.dataset.kind=folder',
    `data.dataset.root=${dir}`,
    'data.dataset.skipBadImages=false',
  ];
  await assert.rejects(pretrain({ sources: { steps: 1, sets }, out, progress: 'none' }), /truncated\.jpg/);
  assert.equal(existsSync(out), false, 'no run directory');

  const bad = join(tmp, 'all-bad');
  mkdirSync(bad);
  for (const n of ['x.jpg', 'y.png']) writeFileSync(join(bad, n), 'not an image');
  const out2 = join(tmp, 'run-allbad');
  await assert.rejects(
    pretrain({
      sources: { steps: 1, sets: [...VIT_TI16, 'data.dataset.kind=folder', `data.dataset.root=${bad}`] },
      out: out2,
    }),
    (e: Error) => /all 2 images are unreadable/.test(e.message) && /x\.jpg/.test(e.message) && /y\.png/.test(e.message),
  );
  assert.equal(existsSync(out2), false);
});

test('a dataset key of another kind says which kind to set', async () => {
  await assert.rejects(
    pretrain({ sources: { steps: 1, sets: ['data.dataset.root=/tmp'] }, out: join(tmp, 'nokind') }),
    /unknown key data\.dataset\.root .*add --set data\.dataset\.kind=folder/,
  );
});

test('segfolder: class names from classes.txt; pretraining reads its images', async () => {
  const root = join(tmp, 'seg');
  for (const [i, n] of ['a', 'b', 'c'].entries()) {
    await save(join(root, 'images', `${n}.jpg`), 60, 40, i);
    const m = Buffer.alloc(60 * 40, i % 3);
    mkdirSync(join(root, 'masks'), { recursive: true });
    await sharp(m, { raw: { width: 60, height: 40, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(join(root, 'masks', `${n}.png`));
  }
  writeFileSync(join(root, 'masks', 'classes.txt'), 'background\nroad\nsky\n');
  const ds = await openDataset({ kind: 'segfolder', images: join(root, 'images'), masks: join(root, 'masks') });
  assert.deepEqual(ds.classes, ['background', 'road', 'sky']);
  assert.equal(ds.maskClasses, 3);
  await assert.rejects(
    openDataset({ kind: 'segfolder', images: join(root, 'images'), masks: join(root, 'masks'), classes: 5 }),
    /classes = 5 but .*classes\.txt names 3 classes/,
  );
  const s = await ds.get(1);
  assert.equal(s.image.width, 60);
  assert.ok(s.raw, 'segfolder samples carry 8-bit pixels for the views');
  const sets = [...TINY_DINO, 'optim.batchSize=3', 'data.workers=0', 'data.dataset.kind=segfolder'];
  sets.push(`data.dataset.images=${join(root, 'images')}`, `data.dataset.masks=${join(root, 'masks')}`);
  const r = await pretrain({ sources: { steps: 1, sets }, out: join(tmp, 'run-seg'), progress: 'none' });
  assert.equal(r.step, 1);
});

test('eval input: Resize + CenterCrop of a non-square image (the centred square, not stretched)', () => {
  // 6x3 image whose columns 0..5 have value c/5: the centre crop is columns 1.5..4.5
  const data = new Float32Array(6 * 3 * 3);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 6; x++) for (let c = 0; c < 3; c++) data[(y * 6 + x) * 3 + c] = x / 5;
  const out = resizeCenterCrop({ data, width: 6, height: 3, channels: 3 }, 3, 'bilinear');
  // output pixel centres at source x = 2, 3, 4 (scale 1), halfway between pixel centres: (x + 1.5)/5
  for (let x = 0; x < 3; x++) assert.ok(Math.abs((out.data[x * 3] as number) - (x + 1.5) / 5) < 1e-6, `column ${x}`);
});

test('location: a folder train set without a test set is an error, not a test on the scenes', async () => {
  await assert.rejects(
    locationEval({} as never, { train: { kind: 'folder', root: join(tmp, 'photos') } }),
    /location: train is set \(folder\) but test is not/,
  );
});

test('renderViews (native resampling) draws the same geometry as makeViews, pixels within PIL-level tolerance', async () => {
  await save(join(tmp, 'one', 'p.jpg'), 500, 375, 3);
  const raw = await decodeRaw(join(tmp, 'one', 'p.jpg'));
  const s = { image: toFloat(raw), raw };
  const r = multiCrop({
    globalSize: 224,
    localSize: 96,
    localCount: 8,
    jitterP: 0,
    grayP: 0,
    globalBlurP: [0],
    localBlurP: 0,
    globalSolarizeP: [0],
  });
  const a = makeViews(r, s, new Rng(7));
  const b = await renderViews(r, s, new Rng(7));
  assert.deepEqual(a.extras.view_box?.data, b.extras.view_box?.data);
  assert.deepEqual(a.extras.view_flipped?.data, b.extras.view_flipped?.data);
  for (const [i, v] of a.views.entries()) {
    const w = b.views[i]?.image.data as Float32Array;
    let sum = 0;
    let max = 0;
    v.image.data.forEach((x, k) => {
      const d = Math.abs(x - (w[k] as number)) * 255;
      sum += d;
      max = Math.max(max, d);
    });
    assert.ok(sum / w.length < 1 && max <= 4, `view ${i}: mean ${sum / w.length}, max ${max} grey levels`);
  }
  const again = await renderViews(r, s, new Rng(7));
  assert.deepEqual(again.views[3]?.image.data, b.views[3]?.image.data, 'a pure function of the rng');
});

test('native crop + resize vs PIL Image.resize(box=…): mean ≤ 0.5, max ≤ 8 grey levels', async (t) => {
  const probe = spawnSync(PY, ['-c', 'import PIL, numpy'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip(`${PY} has no PIL/numpy (Debian python3-pil, python3-numpy)`);
  await save(join(tmp, 'pil', 'p.jpg'), 500, 375, 5);
  const raw = await decodeRaw(join(tmp, 'pil', 'p.jpg'));
  writeFileSync(join(tmp, 'pil', 'src.rgb'), raw.data);
  const float = toFloat(raw);
  const cases: [[number, number, number, number], number][] = [
    [[0, 0, 500, 375], 224],
    [[37, 20, 337, 320], 224],
    [[100, 50, 200, 150], 96],
    [[0, 0, 500, 375], 96],
    [[10, 10, 60, 60], 96], // enlarged: the JS path
  ];
  const ours: number[][] = [];
  for (const [box, S] of cases)
    for (const interp of ['bicubic', 'bilinear'] as const)
      ours.push(Array.from((await nativeResizedCrop(raw, float, box, S, interp)).data, (v) => Math.round(v * 255)));
  writeFileSync(join(tmp, 'pil', 'ours.json'), JSON.stringify(ours));
  const py = `
import json, sys, numpy as np
from PIL import Image
src = np.fromfile(sys.argv[1] + '/src.rgb', dtype=np.uint8).reshape(375, 500, 3)
im = Image.fromarray(src)
ours = json.load(open(sys.argv[1] + '/ours.json'))
cases = json.loads(sys.argv[2])
out, k = [], 0
for box, S in cases:
    for m in (Image.BICUBIC, Image.BILINEAR):
        p = np.asarray(im.resize((S, S), m, box=tuple(box))).astype(float)
        e = np.abs(np.array(ours[k], dtype=float).reshape(S, S, 3) - p)
        out.append([float(e.mean()), float(e.max())])
        k += 1
print(json.dumps(out))
`;
  const r = spawnSync(PY, ['-c', py, join(tmp, 'pil'), JSON.stringify(cases)], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const errs = JSON.parse(r.stdout) as [number, number][];
  for (const [i, [mean, max]] of errs.entries()) {
    assert.ok(mean <= 0.5 && max <= 8, `case ${i} (${JSON.stringify(cases[i >> 1])}): mean ${mean}, max ${max}`);
  }
});

test("the README's own-data commands run as written", async () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf('<!-- own-data commands');
  assert.ok(at >= 0, 'README has the own-data block');
  const start = readme.indexOf('```bash\n', at) + 8;
  const block = readme.slice(start, readme.indexOf('\n```', start));
  assert.match(block, /npx locus pretrain/);
  const cwd = join(tmp, 'readme');
  for (let i = 0; i < 20; i++) {
    const [name, w, h] = PHOTOS[i % PHOTOS.length] as [string, number, number];
    await save(join(cwd, 'photos', `${i}${name}`), w, h, i);
  }
  for (const [i, cls] of ['cat', 'dog'].entries())
    for (let k = 0; k < 4; k++) await save(join(cwd, 'labelled', cls, `${k}.jpg`), 120 + 40 * i, 90, 10 * i + k);
  for (let k = 0; k < 5; k++) {
    await save(join(cwd, 'seg', 'images', `s${k}.jpg`), 80, 60, k);
    const m = Buffer.alloc(80 * 60);
    for (let p = 0; p < m.length; p++) m[p] = p % 80 < 40 ? 0 : 1 + (k % 2);
    mkdirSync(join(cwd, 'seg', 'masks'), { recursive: true });
    await sharp(m, { raw: { width: 80, height: 60, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toFile(join(cwd, 'seg', 'masks', `s${k}.png`));
  }
  writeFileSync(join(cwd, 'seg', 'masks', 'classes.txt'), 'background\nroad\nsky\n');
  // `npx locus` is this checkout's bin
  const script = `set -e\nnpx() { shift; "${process.execPath}" "${BIN}" "$@"; }\n${block}\n`;
  const r = spawnSync('bash', ['-c', script], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, LOCUS_THREADS: '1', MALLOC_ARENA_MAX: '1' },
    timeout: 600_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const evalDir = join(cwd, 'runs/mine/evals');
  const evals = existsSync(evalDir) ? readdirSync(evalDir) : [];
  const segFile = evals.find((f) => f.startsWith('seg')) as string;
  assert.ok(segFile && evals.some((f) => f.startsWith('knn')), `evals: ${evals.join(', ')}\n${r.stdout}`);
  const seg = readFileSync(join(cwd, 'runs/mine/evals', segFile), 'utf8');
  assert.match(seg, /"sky"/, 'seg result names the classes from classes.txt');
  assert.ok(existsSync(join(cwd, 'runs/seg/config.json')));
});

test('colorJitter (in place) equals the composition of the single adjustments in its drawn order', async () => {
  const { adjustBrightness, adjustContrast, adjustHue, adjustSaturation, colorJitter } = await import(
    '../src/data/augment.js'
  );
  const img = toFloat({ data: new Uint8Array(picture(9, 7, 2)), width: 9, height: 7 });
  const draw = { order: [2, 0, 3, 1], brightness: 1.2, contrast: 0.7, saturation: 1.3, hue: -0.08 };
  const want = adjustContrast(adjustHue(adjustBrightness(adjustSaturation(img, 1.3), 1.2), -0.08), 0.7);
  const got = colorJitter(img, draw);
  for (const [i, v] of got.data.entries()) assert.ok(Math.abs(v - (want.data[i] as number)) < 1e-6, `element ${i}`);
  assert.notDeepEqual(got.data, img.data);
});

test('gaussianBlur equals torchvision F.gaussian_blur (reflect, ksize 2⌈3σ⌉+1); nativeBlur within 2 levels inside', async (t) => {
  const { gaussianBlur } = await import('../src/data/blur.js');
  const { nativeBlur } = await import('../src/data/resample.js');
  const W = 23;
  const H = 17;
  const raw = { data: new Uint8Array(picture(W, H, 4)), width: W, height: H };
  const img = toFloat(raw);
  const sigma = 1.3; // radius 4, kernel 9
  const ours = gaussianBlur(img, sigma);
  const native = await nativeBlur(img, sigma);
  for (let y = 4; y < H - 4; y++)
    for (let x = 4; x < W - 4; x++)
      for (let c = 0; c < 3; c++) {
        const i = (y * W + x) * 3 + c;
        const d = Math.abs((ours.data[i] as number) - (native.data[i] as number)) * 255;
        assert.ok(d <= 2, `native vs JS at ${x},${y}: ${d} levels`);
      }
  const probe = spawnSync(PY, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
  if (probe.status !== 0) return t.skip(`${PY} has no torchvision (Debian python3-torchvision)`);
  const py = `
import json, sys, torch
from torchvision.transforms import functional as F
W, H = ${W}, ${H}
x = torch.tensor(json.loads(sys.stdin.read()), dtype=torch.float64).reshape(H, W, 3).permute(2, 0, 1)
y = F.gaussian_blur(x, kernel_size=[9, 9], sigma=[${sigma}, ${sigma}])
print(json.dumps(y.permute(1, 2, 0).reshape(-1).tolist()))
`;
  const r = spawnSync(PY, ['-c', py], { input: JSON.stringify(Array.from(img.data)), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const want = JSON.parse(r.stdout) as number[];
  for (const [i, v] of ours.data.entries()) assert.ok(Math.abs(v - (want[i] as number)) < 1e-5, `element ${i}`);
});

test('folder batches are a pure function of (seed, epoch, index): 0 and 2 workers give identical bytes', async () => {
  const dir = join(tmp, 'photos-det');
  await photoFolder(dir, false);
  const recipe = multiCrop({ globalSize: 64, localSize: 32, localCount: 2 });
  const run = async (workers: number) => {
    const l = new Loader({ dataset: { kind: 'folder', root: dir }, views: recipe, batchSize: 2, seed: 3, workers });
    const out: Float32Array[] = [];
    for await (const b of l.epoch(1)) out.push(...b.views.map((v) => v.data));
    await l.close();
    return out;
  };
  const a = await run(0);
  const b = await run(2);
  assert.equal(a.length, 3 * 4);
  for (const [i, v] of a.entries()) assert.deepEqual(v, b[i], `view tensor ${i}`);
});

test('classes.json next to the masks: an array or an {index: name} object; a gap is refused naming the file', async () => {
  const { readClassNames } = await import('../src/data/listing.js');
  const d = join(tmp, 'cj', 'masks');
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'classes.json'), '{"1": "cat", "0": "background"}');
  assert.deepEqual(readClassNames(d)?.names, ['background', 'cat']);
  writeFileSync(join(d, 'classes.json'), '["bg", "a", "b"]');
  assert.deepEqual(readClassNames(d)?.names, ['bg', 'a', 'b']);
  writeFileSync(join(d, 'classes.json'), '{"0": "bg", "2": "b"}');
  assert.throws(() => readClassNames(d), /classes\.json: expected an array of class names/);
  rmSync(join(d, 'classes.json'));
  assert.equal(readClassNames(d), null);
});
