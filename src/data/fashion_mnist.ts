// Fashion-MNIST from Debian's `dataset-fashion-mnist` (idx files, gzip-compressed).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Image } from './types.js';

export const FASHION_MNIST_DEFAULT_DIR = '/usr/share/datasets/fashion-mnist';

/** Class names, index = label. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** 'test' and 'eval' both name the t10k files. */
export type FashionSplit = 'train' | 'test' | 'eval';

export interface FashionMnist {
  split: 'train' | 'test';
  count: number;
  rows: number; // 28
  cols: number; // 28
  /** count*rows*cols grey levels 0..255 (0 = background), image-major, row-major. */
  images: Uint8Array;
  /** count labels in 0..9. */
  labels: Uint8Array;
}

/** Directory of the idx files: explicit argument, else $LOCUS_FASHION_MNIST_DIR, else Debian's. */
export function fashionMnistDir(dir?: string): string {
  return resolve(dir ?? process.env.LOCUS_FASHION_MNIST_DIR ?? FASHION_MNIST_DEFAULT_DIR);
}

const cache = new Map<string, FashionMnist>();

/** Load (and cache per process) one split. Throws a clear Error on missing or malformed files. */
export function loadFashionMnist(split: FashionSplit, dir?: string): FashionMnist {
  const s = split === 'train' ? 'train' : 'test';
  const root = fashionMnistDir(dir);
  const key = `${root}\0${s}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const prefix = s === 'train' ? 'train' : 't10k';
  const imgPath = join(root, `${prefix}-images-idx3-ubyte.gz`);
  const lblPath = join(root, `${prefix}-labels-idx1-ubyte.gz`);
  const img = readIdx(imgPath, 0x803, 3);
  const lbl = readIdx(lblPath, 0x801, 1);
  const [count, rows, cols] = img.dims as [number, number, number];
  if (lbl.dims[0] !== count) {
    throw new Error(`Fashion-MNIST: ${lblPath} has ${lbl.dims[0]} labels but ${imgPath} has ${count} images`);
  }
  for (let i = 0; i < lbl.data.length; i++) {
    if ((lbl.data[i] as number) > 9)
      throw new Error(`Fashion-MNIST: ${lblPath}: label ${lbl.data[i]} at ${i} is not in 0..9`);
  }
  const ds: FashionMnist = { split: s, count, rows, cols, images: img.data, labels: lbl.data };
  cache.set(key, ds);
  return ds;
}

/** Parse a gzip-compressed idx file of unsigned bytes with the given magic number and rank. */
function readIdx(path: string, magic: number, rank: number): { dims: number[]; data: Uint8Array } {
  if (!existsSync(path)) {
    throw new Error(
      `Fashion-MNIST file not found: ${path}. Install the Debian package \`dataset-fashion-mnist\` ` +
        '(apt-get install dataset-fashion-mnist; `npm run setup` does it) or point LOCUS_FASHION_MNIST_DIR at a directory holding the idx .gz files.',
    );
  }
  let buf: Buffer;
  try {
    buf = gunzipSync(readFileSync(path));
  } catch (e) {
    throw new Error(`Fashion-MNIST: cannot decompress ${path}: ${(e as Error).message}`);
  }
  const head = 4 + 4 * rank;
  if (buf.length < head) throw new Error(`Fashion-MNIST: ${path} is truncated (${buf.length} bytes)`);
  const m = buf.readUInt32BE(0);
  if (m !== magic) {
    throw new Error(`Fashion-MNIST: ${path} has magic 0x${m.toString(16)}, expected 0x${magic.toString(16)}`);
  }
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const n = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== head + n) {
    throw new Error(
      `Fashion-MNIST: ${path} has ${buf.length - head} data bytes, header [${dims.join(', ')}] implies ${n}`,
    );
  }
  // Copy out of the (possibly pooled) Buffer so the data owns its memory.
  return { dims, data: new Uint8Array(buf.subarray(head)) };
}

/** Image `i` of a split as a float RGB Image (grey replicated to 3 channels), values in [0, 1]. */
export function fashionMnistImage(ds: FashionMnist, i: number): Image {
  if (!(i >= 0 && i < ds.count)) throw new RangeError(`Fashion-MNIST ${ds.split}: index ${i} outside [0, ${ds.count})`);
  const n = ds.rows * ds.cols;
  const data = new Float32Array(n * 3);
  const off = i * n;
  for (let p = 0; p < n; p++) {
    const v = (ds.images[off + p] as number) / 255;
    data[3 * p] = v;
    data[3 * p + 1] = v;
    data[3 * p + 2] = v;
  }
  return { data, width: ds.cols, height: ds.rows, channels: 3 };
}
