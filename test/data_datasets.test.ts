// Datasets: PRNG, Fashion-MNIST idx reading, scenes, part-structured objects, folders, specs.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { deflateSync, gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { type DatasetSpec, openDataset } from '../src/data/datasets.js';
import { FASHION_MNIST_DEFAULT_DIR, loadFashionMnist } from '../src/data/fashion_mnist.js';
import { decodeMask, ImageFolder, SegmentationFolder } from '../src/data/folder.js';
import { CLASS_PARTS, PART_CLASSES, renderParts } from '../src/data/parts.js';
import { deriveSeed, Rng } from '../src/data/rng.js';
import { renderScene } from '../src/data/scenes.js';
import type { Box } from '../src/data/types.js';

const tmp = mkdtempSync(join(tmpdir(), 'locus-data-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const inBox = (x: number, y: number, b: Box, eps = 1e-9): boolean =>
  x >= b[0] - eps && x <= b[2] + eps && y >= b[1] - eps && y <= b[3] + eps;
const bytes = (a: Float32Array | Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('rng', () => {
  test('deterministic, independent streams, ranges', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 100 }, () => a.uniform());
    assert.deepEqual(
      xs,
      Array.from({ length: 100 }, () => b.uniform()),
    );
    assert.ok(xs.every((x) => x >= 0 && x < 1));
    assert.notEqual(new Rng(43).uniform(), xs[0]);
    assert.equal(deriveSeed(1, 2, 3), deriveSeed(1, 2, 3));
    const seeds = new Set<number>();
    for (let e = 0; e < 4; e++) for (let i = 0; i < 250; i++) seeds.add(deriveSeed(7, e, i));
    assert.equal(seeds.size, 1000);
    assert.notEqual(deriveSeed(1, 2), deriveSeed(2, 1));
    assert.notEqual(deriveSeed(1), deriveSeed(1, 0));
    assert.notEqual(deriveSeed(2 ** 32), deriveSeed(0));
    const r = new Rng(1);
    let sum = 0;
    let sq = 0;
    const counts = [0, 0, 0];
    for (let i = 0; i < 20000; i++) {
      const z = r.normal();
      sum += z;
      sq += z * z;
      counts[r.int(-1, 2) + 1]++;
      const v = r.range(2, 3);
      assert.ok(v >= 2 && v < 3);
    }
    assert.ok(Math.abs(sum / 20000) < 0.05 && Math.abs(sq / 20000 - 1) < 0.05);
    assert.ok(counts.every((c) => c > 6000 && c < 7300));
    assert.throws(() => r.int(3, 3), /empty range/);
  });
});

describe('fashion-mnist idx', () => {
  test('counts, label range and class balance', () => {
    const tr = loadFashionMnist('train');
    const te = loadFashionMnist('test');
    assert.equal(tr.count, 60000);
    assert.equal(te.count, 10000);
    assert.equal(tr.rows, 28);
    assert.equal(tr.cols, 28);
    assert.equal(tr.images.length, 60000 * 784);
    for (const [ds, per] of [
      [tr, 6000],
      [te, 1000],
    ] as const) {
      const hist = new Array(10).fill(0);
      for (const l of ds.labels) hist[l]++;
      assert.deepEqual(hist, new Array(10).fill(per)); // Fashion-MNIST is exactly balanced
    }
    assert.equal(loadFashionMnist('eval'), te); // cached per process, eval = test
  });

  test('agrees with an independent python reader', (t) => {
    const py = `
import gzip, struct, json, sys
d = sys.argv[1]
im = gzip.open(d + '/t10k-images-idx3-ubyte.gz').read()
lb = gzip.open(d + '/t10k-labels-idx1-ubyte.gz').read()
m, n, r, c = struct.unpack('>IIII', im[:16])
k = 1234
print(json.dumps({'magic': m, 'n': n, 'labels': list(lb[8:28]), 'row': list(im[16 + k*784 + 14*28: 16 + k*784 + 15*28]),
  'sum': sum(im[16 + 9999*784: 16 + 10000*784])}))`;
    let out: string;
    try {
      out = execFileSync('python3', ['-c', py, FASHION_MNIST_DEFAULT_DIR], { encoding: 'utf8' });
    } catch {
      t.skip('python3 unavailable');
      return;
    }
    const ref = JSON.parse(out) as { magic: number; n: number; labels: number[]; row: number[]; sum: number };
    const te = loadFashionMnist('test');
    assert.equal(ref.magic, 0x803);
    assert.equal(ref.n, te.count);
    assert.deepEqual([...te.labels.subarray(0, 20)], ref.labels);
    assert.deepEqual([...te.images.subarray(1234 * 784 + 14 * 28, 1234 * 784 + 15 * 28)], ref.row);
    assert.equal(
      te.images.subarray(9999 * 784).reduce((a, b) => a + b, 0),
      ref.sum,
    );
  });

  test('missing file and bad magic give clear errors', () => {
    const empty = join(tmp, 'fm-empty');
    mkdirSync(empty);
    assert.throws(
      () => loadFashionMnist('train', empty),
      (e: Error) => {
        assert.match(e.message, /fm-empty\/train-images-idx3-ubyte\.gz/);
        assert.match(e.message, /dataset-fashion-mnist/);
        return true;
      },
    );
    const bad = join(tmp, 'fm-bad');
    mkdirSync(bad);
    const head = Buffer.alloc(16);
    head.writeUInt32BE(0x0801, 0); // label magic in an image file
    writeFileSync(join(bad, 't10k-images-idx3-ubyte.gz'), gzipSync(head));
    writeFileSync(join(bad, 't10k-labels-idx1-ubyte.gz'), gzipSync(Buffer.alloc(8)));
    assert.throws(() => loadFashionMnist('test', bad), /magic 0x801, expected 0x803/);
  });
});

describe('scenes', () => {
  test('deterministic from (seed, split, index)', () => {
    const a = renderScene('train', 5, { seed: 3 });
    const b = renderScene('train', 5, { seed: 3 });
    assert.ok(bytes(a.image.data).equals(bytes(b.image.data)));
    assert.ok(bytes(a.labels).equals(bytes(b.labels)));
    assert.deepEqual(a.items, b.items);
    for (const other of [
      renderScene('train', 6, { seed: 3 }),
      renderScene('train', 5, { seed: 4 }),
      renderScene('eval', 5, { seed: 3 }),
    ]) {
      assert.ok(!bytes(a.image.data).equals(bytes(other.image.data)));
    }
    const big = renderScene('train', 0, { size: 96 });
    assert.equal(big.image.width, 96);
    assert.equal(big.labels.length, 96 * 96);
  });

  test('labels agree with the rendered pixels (occlusion respected)', () => {
    const seen = new Set<number>();
    for (let index = 0; index < 40; index++) {
      const split = index % 2 ? 'eval' : 'train';
      const s = renderScene(split, index, { seed: 11, layers: true });
      const { width: W, height: H, data } = s.image;
      assert.ok(s.items.length >= 2 && s.items.length <= 5);
      assert.ok(data.every((v) => v >= 0 && v <= 1));
      const bg = s.background as Float32Array;
      const layers = s.layers ?? [];
      assert.equal(layers.length, s.items.length);
      // Recompute the composite and each item's share of every pixel independently.
      const img = Float32Array.from(bg);
      const share: Float32Array[] = layers.map(() => new Float32Array(W * H));
      for (const [k, L] of layers.entries()) {
        const it = s.items[k];
        assert.ok(it);
        const lw = L.x1 - L.x0;
        for (let y = L.y0; y < L.y1; y++) {
          for (let x = L.x0; x < L.x1; x++) {
            const i = (y - L.y0) * lw + (x - L.x0);
            const a = L.alpha[i] as number;
            if (a === 0) continue;
            assert.ok(inBox(x + 0.5, y + 0.5, it.placed), 'item alpha only inside its placed square');
            const p = y * W + x;
            for (let c = 0; c < 3; c++)
              img[3 * p + c] = (1 - a) * (img[3 * p + c] as number) + a * (L.color[3 * i + c] as number);
            for (let j = 0; j < k; j++)
              (share[j] as Float32Array)[p] = ((share[j] as Float32Array)[p] as number) * (1 - a);
            (share[k] as Float32Array)[p] = a;
          }
        }
      }
      for (let i = 0; i < img.length; i++) assert.ok(Math.abs((img[i] as number) - (data[i] as number)) < 1e-5);
      const counts = new Array(s.items.length).fill(0);
      for (let p = 0; p < W * H; p++) {
        const lab = s.labels[p] as number;
        const dominant = share.findIndex((sh) => (sh[p] as number) >= 0.5);
        if (lab === 0) {
          assert.equal(dominant, -1, `pixel ${p} labelled background but an item covers ≥ 50% of it`);
        } else {
          assert.ok(dominant >= 0, `pixel ${p} labelled ${lab} without a dominant item`);
          const it = s.items[dominant];
          assert.ok(it && it.cls === lab - 1, `pixel ${p} labelled ${lab} but dominated by class ${it?.cls}`);
          assert.ok(inBox(p % W, Math.floor(p / W), it.box), 'labelled pixel inside its item box');
          counts[dominant]++;
          seen.add(lab);
        }
      }
      assert.deepEqual(
        counts,
        s.items.map((it) => it.visible),
      );
      // The background is textured, not trivially black.
      let m = 0;
      let m2 = 0;
      for (let p = 0; p < W * H * 3; p++) {
        m += bg[p] as number;
        m2 += (bg[p] as number) ** 2;
      }
      m /= W * H * 3;
      assert.ok(m > 0.1, `background mean ${m}`);
      assert.ok(Math.sqrt(m2 / (W * H * 3) - m * m) > 0.02, 'background has texture');
    }
    assert.equal(seen.size, 10, 'all 10 classes occur in 40 scenes');
  });

  test('eval scenes never use a training item (by file and by content)', () => {
    const tr = loadFashionMnist('train');
    const te = loadFashionMnist('test');
    const key = (img: Uint8Array, i: number): string =>
      createHash('sha1')
        .update(img.subarray(i * 784, (i + 1) * 784))
        .digest('base64');
    const trainKeys = new Set<string>();
    for (let i = 0; i < tr.count; i++) trainKeys.add(key(tr.images, i));
    let n = 0;
    for (let index = 0; index < 200; index++) {
      for (const it of renderScene('eval', index).items) {
        assert.equal(it.split, 'test');
        assert.ok(it.source < te.count);
        assert.equal(it.cls, te.labels[it.source]);
        assert.ok(!trainKeys.has(key(te.images, it.source)), `eval item ${it.source} equals a training image`);
        n++;
      }
      for (const it of renderScene('train', index).items) assert.equal(it.split, 'train');
    }
    assert.ok(n > 400);
  });
});

describe('parts', () => {
  test('deterministic; keypoints, boxes, maps and class structure agree', () => {
    const a = renderParts('train', 9, { seed: 2 });
    const b = renderParts('train', 9, { seed: 2 });
    assert.ok(bytes(a.image.data).equals(bytes(b.image.data)));
    assert.ok(bytes(a.partMap).equals(bytes(b.partMap)));
    assert.ok(!bytes(a.image.data).equals(bytes(renderParts('train', 10, { seed: 2 }).image.data)));
    const classes = new Set<number>();
    for (let index = 0; index < 150; index++) {
      const s = renderParts(index % 3 ? 'train' : 'eval', index);
      const W = s.image.width;
      assert.ok(s.objects.length >= 1 && s.objects.length <= 3);
      for (const o of s.objects) {
        classes.add(o.cls);
        assert.ok(o.box[0] >= -1e-9 && o.box[1] >= -1e-9 && o.box[2] <= W + 1e-9 && o.box[3] <= s.image.height + 1e-9);
        const def = CLASS_PARTS[o.cls] ?? [];
        assert.deepEqual(
          o.parts.map((p) => p.type),
          def.map(([t]) => t),
        );
        for (const p of o.parts) {
          assert.ok(inBox(p.keypoint[0], p.keypoint[1], p.box));
          assert.ok(Math.abs(p.keypoint[0] - (p.box[0] + p.box[2]) / 2) < 1e-9);
          assert.ok(inBox(p.box[0], p.box[1], o.box) && inBox(p.box[2], p.box[3], o.box));
        }
      }
      for (let q = 0; q < s.partMap.length; q++) {
        const pm = s.partMap[q] as number;
        const om = s.objectMap[q] as number;
        assert.equal(pm === 0, om === 0);
        if (pm === 0) continue;
        const x = (q % W) + 0.5;
        const y = Math.floor(q / W) + 0.5;
        // Some object of class om-1 has a part of type pm-1 whose box holds this pixel.
        assert.ok(
          s.objects.some(
            (o) =>
              o.cls === om - 1 && inBox(x, y, o.box) && o.parts.some((p) => p.type === pm - 1 && inBox(x, y, p.box)),
          ),
          `pixel ${q}: object ${om}, part ${pm} not explained by any object`,
        );
      }
    }
    assert.equal(classes.size, PART_CLASSES.length);
    // Part types are shared: every type is used by at least two classes.
    for (let t = 0; t < 4; t++) assert.ok(CLASS_PARTS.filter((ps) => ps.some(([ty]) => ty === t)).length >= 2);
  });
});

describe('dataset specs', () => {
  test('scenes, parts and fashion-mnist open from JSON specs', async () => {
    const specs: DatasetSpec[] = [
      { kind: 'scenes', split: 'train', length: 10, size: 48, seed: 1 },
      { kind: 'parts', split: 'eval', length: 10 },
      { kind: 'fashion-mnist', split: 'test', length: 100 },
    ];
    for (const spec of specs) {
      const ds = await openDataset(spec);
      const again = await openDataset(JSON.parse(JSON.stringify(ds.spec)) as DatasetSpec);
      const [s, t] = [await ds.get(3), await again.get(3)];
      assert.ok(bytes(s.image.data).equals(bytes(t.image.data)));
      assert.equal(s.image.data.length, s.image.width * s.image.height * 3);
      if (s.mask) assert.equal(s.mask.length, s.image.width * s.image.height);
      await assert.rejects(ds.get(ds.length), RangeError);
    }
    const fm = await openDataset({ kind: 'fashion-mnist', split: 'train' });
    assert.equal(fm.length, 60000);
    assert.equal(fm.classes?.[9], 'Ankle boot');
    const s = await fm.get(0);
    assert.equal(s.label, loadFashionMnist('train').labels[0]);
    const parts = await (await openDataset({ kind: 'parts', split: 'train', length: 2 })).get(1);
    assert.ok(parts.partMask && parts.objects?.[0]?.parts);
  });
});

// ---- folders ----

async function writeImage(
  path: string,
  w: number,
  h: number,
  fill: (x: number, y: number) => [number, number, number],
) {
  const buf = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) buf.set(fill(x, y), (y * w + x) * 3);
  const s = sharp(buf, { raw: { width: w, height: h, channels: 3 } });
  const ext = path.slice(path.lastIndexOf('.') + 1);
  await (ext === 'jpg' ? s.jpeg() : ext === 'webp' ? s.webp({ lossless: true }) : s.png()).toFile(path);
}

async function writeGreyMask(path: string, w: number, h: number, lab: (x: number, y: number) => number) {
  const buf = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) buf[y * w + x] = lab(x, y);
  await sharp(buf, { raw: { width: w, height: h, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(path);
}

/** Hand-written 8-bit palette PNG (as VOC masks are) using every row filter type. */
function palettePng(w: number, h: number, idx: Uint8Array): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer): number => {
    let c = 0xffffffff;
    for (const v of b) c = (crcTable[(c ^ v) & 255] as number) ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8;
  ihdr[9] = 3;
  const plte = Buffer.alloc(256 * 3);
  for (let i = 0; i < 256; i++) plte.set([(i * 37) & 255, (i * 91) & 255, (i * 53) & 255], i * 3);
  const raw = Buffer.alloc(h * (w + 1));
  for (let y = 0; y < h; y++) {
    const f = y % 5;
    raw[y * (w + 1)] = f;
    for (let x = 0; x < w; x++) {
      const v = idx[y * w + x] as number;
      const a = x > 0 ? (idx[y * w + x - 1] as number) : 0;
      const b = y > 0 ? (idx[(y - 1) * w + x] as number) : 0;
      const c = x > 0 && y > 0 ? (idx[(y - 1) * w + x - 1] as number) : 0;
      const p = a + b - c;
      const pred = [
        0,
        a,
        b,
        (a + b) >> 1,
        Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
          ? a
          : Math.abs(p - b) <= Math.abs(p - c)
            ? b
            : c,
      ][f] as number;
      raw[y * (w + 1) + 1 + x] = (v - pred) & 255;
    }
  }
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([
    sig,
    chunk('IHDR', ihdr),
    chunk('PLTE', plte),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('folders', () => {
  test('ImageFolder class layout, flat layout, sizes and spec round trip', async () => {
    const root = join(tmp, 'classes');
    mkdirSync(join(root, 'dog'), { recursive: true });
    mkdirSync(join(root, 'cat'), { recursive: true });
    await writeImage(join(root, 'dog', 'a.png'), 40, 30, () => [200, 10, 10]);
    await writeImage(join(root, 'cat', 'b.jpg'), 30, 50, () => [10, 200, 10]);
    await writeImage(join(root, 'cat', 'c.webp'), 20, 20, (x) => [x * 10, 0, 255]);
    const ds = await ImageFolder.open({ kind: 'folder', root, size: 16 });
    assert.deepEqual(ds.classes, ['cat', 'dog']);
    assert.equal(ds.length, 3);
    const labels = await Promise.all([0, 1, 2].map(async (i) => (await ds.get(i)).label));
    assert.deepEqual(labels, [0, 0, 1]);
    const s = await ds.get(2);
    assert.equal(s.image.width, 16);
    assert.ok(Math.abs((s.image.data[0] as number) - 200 / 255) < 0.02 && (s.image.data[2] as number) < 0.05);
    const native = await openDataset({ kind: 'folder', root });
    assert.deepEqual([(await native.get(0)).image.width, (await native.get(0)).image.height], [30, 50]);
    const again = await openDataset(JSON.parse(JSON.stringify(ds.spec)) as DatasetSpec);
    assert.equal(again.length, 3);
    assert.deepEqual(again.classes, ['cat', 'dog']);
    const flat = join(tmp, 'flat');
    mkdirSync(flat);
    await writeImage(join(flat, 'x.png'), 8, 8, () => [0, 0, 0]);
    const f = await openDataset({ kind: 'folder', root: flat, size: 8 });
    assert.equal(f.classes, undefined);
    assert.equal((await f.get(0)).label, undefined);
  });

  test('corrupt images: error names the file; skip mode counts them', async () => {
    const root = join(tmp, 'corrupt');
    mkdirSync(root);
    await writeImage(join(root, 'good1.png'), 12, 12, () => [1, 2, 3]);
    await writeImage(join(root, 'good2.jpg'), 12, 12, () => [100, 100, 100]);
    const rng = new Rng(5);
    writeFileSync(join(root, 'broken.jpg'), Buffer.from(Array.from({ length: 500 }, () => rng.int(0, 256))));
    await assert.rejects(ImageFolder.open({ kind: 'folder', root }), /broken\.jpg/);
    const ds = await ImageFolder.open({ kind: 'folder', root, skipBadImages: true });
    assert.equal(ds.length, 2);
    assert.equal(ds.skippedCount, 1);
    assert.match(ds.skipped[0]?.path ?? '', /broken\.jpg$/);
    // A JPEG whose header is fine but whose data is cut off fails at decode time.
    const trunc = join(tmp, 'truncated');
    mkdirSync(trunc);
    await writeImage(join(trunc, 'a.png'), 12, 12, () => [9, 9, 9]);
    const noise = Buffer.from(Array.from({ length: 64 * 64 * 3 }, () => rng.int(0, 256)));
    const full = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } })
      .jpeg()
      .toBuffer();
    writeFileSync(join(trunc, 'b.jpg'), full.subarray(0, Math.floor(full.length / 2)));
    const strict = await ImageFolder.open({ kind: 'folder', root: trunc });
    assert.equal(strict.length, 2);
    await assert.rejects(strict.get(1), /b\.jpg/);
    const lenient = await ImageFolder.open({ kind: 'folder', root: trunc, skipBadImages: true });
    const s = await lenient.get(1);
    assert.match(s.path ?? '', /a\.png$/); // the next good file stands in
    assert.equal(lenient.skippedCount, 1);
  });

  test('empty and missing folders give clear errors', async () => {
    const empty = join(tmp, 'empty');
    mkdirSync(empty);
    await assert.rejects(openDataset({ kind: 'folder', root: empty }), new RegExp(`${empty} is empty`));
    await assert.rejects(
      openDataset({ kind: 'folder', root: join(tmp, 'nope') }),
      new RegExp(`not found: ${join(tmp, 'nope')}`),
    );
    await assert.rejects(
      openDataset({ kind: 'segfolder', images: join(tmp, 'nope'), masks: empty, classes: 3 }),
      /nope/,
    );
  });

  test('segmentation pairs: masks, ignore index, size mismatch, label range, resize alignment', async () => {
    const images = join(tmp, 'seg', 'images');
    const masks = join(tmp, 'seg', 'masks');
    mkdirSync(images, { recursive: true });
    mkdirSync(masks, { recursive: true });
    // Label = vertical band; the image colour encodes the band so alignment can be checked.
    const band = (x: number): number => Math.floor(x / 10) % 3;
    const colours: [number, number, number][] = [
      [255, 0, 0],
      [0, 255, 0],
      [0, 0, 255],
    ];
    await writeImage(join(images, 'a.png'), 60, 40, (x) => colours[band(x)] as [number, number, number]);
    await writeGreyMask(join(masks, 'a.png'), 60, 40, (x, y) => (y < 2 ? 255 : band(x)));
    await writeImage(join(images, 'b.jpg'), 30, 30, () => [50, 50, 50]);
    const pal = new Uint8Array(30 * 30).map((_, i) => [0, 1, 2, 255][(i * 7 + Math.floor(i / 30)) % 4] as number);
    writeFileSync(join(masks, 'b.png'), palettePng(30, 30, pal));
    await writeImage(join(images, 'unlabelled.jpg'), 10, 10, () => [0, 0, 0]); // no mask: not a pair
    const ds = await SegmentationFolder.open({ kind: 'segfolder', images, masks, classes: 3 });
    assert.equal(ds.length, 2);
    assert.equal(ds.ignoreIndex, 255);
    const b = await ds.get(1);
    assert.ok(b.mask && Buffer.from(b.mask).equals(Buffer.from(pal)), 'palette indices decoded exactly');
    assert.deepEqual(Buffer.from((await decodeMask(join(masks, 'b.png'))).data), Buffer.from(pal));
    const a = await ds.get(0);
    assert.equal(a.mask?.[0], 255);
    assert.equal(a.mask?.[2 * 60 + 15], 1);
    // Resized: centre-crop 40x40 then 20x20; each labelled pixel's colour matches its band.
    const small = await SegmentationFolder.open({ kind: 'segfolder', images, masks, classes: 3, size: 20 });
    const r = await small.get(0);
    assert.equal(r.image.width, 20);
    assert.equal(r.mask?.length, 400);
    let agree = 0;
    let labelled = 0;
    for (let p = 0; p < 400; p++) {
      const l = r.mask?.[p] as number;
      if (l === 255) continue;
      labelled++;
      const rgb = [0, 1, 2].map((c) => r.image.data[3 * p + c] as number);
      if ((rgb[l] as number) > 0.6) agree++;
    }
    assert.ok(agree / labelled > 0.9, `mask/image alignment ${agree}/${labelled}`);
    // A label ≥ classes that is not the ignore index: error naming the file and the label.
    const bad = join(tmp, 'seg-bad');
    mkdirSync(join(bad, 'im'), { recursive: true });
    mkdirSync(join(bad, 'mk'), { recursive: true });
    await writeImage(join(bad, 'im', 'z.png'), 8, 8, () => [0, 0, 0]);
    await writeGreyMask(join(bad, 'mk', 'z.png'), 8, 8, (x) => (x === 5 ? 7 : 0));
    const bds = await SegmentationFolder.open({
      kind: 'segfolder',
      images: join(bad, 'im'),
      masks: join(bad, 'mk'),
      classes: 3,
    });
    await assert.rejects(bds.get(0), /mk\/z\.png.*label 7/);
    const ok = await SegmentationFolder.open({
      kind: 'segfolder',
      images: join(bad, 'im'),
      masks: join(bad, 'mk'),
      classes: 8,
    });
    assert.equal((await ok.get(0)).mask?.[5], 7);
    // A mask whose size differs from its image: error naming both files and both sizes.
    await writeGreyMask(join(bad, 'mk', 'z.png'), 9, 8, () => 0);
    await assert.rejects(
      openDataset({ kind: 'segfolder', images: join(bad, 'im'), masks: join(bad, 'mk'), classes: 3 }),
      (e: Error) => /mk\/z\.png is 9x8/.test(e.message) && /im\/z\.png is 8x8/.test(e.message),
    );
  });
});
