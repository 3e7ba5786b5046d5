// User data decoded with sharp: image folders (flat or ImageFolder class layout) and
// segmentation pairs (image + single-channel PNG mask with the same relative stem).
import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { inflateSync } from 'node:zlib';
import sharp from 'sharp';
import type { Dataset, DatasetSpec, Sample } from './datasets.js';
import type { Image } from './types.js';

export type FolderSpec = Extract<DatasetSpec, { kind: 'folder' }>;
export type SegFolderSpec = Extract<DatasetSpec, { kind: 'segfolder' }>;

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'];

export interface Skipped {
  path: string;
  reason: string;
}

export interface DecodeOptions {
  size?: number; // square output side; omitted = native
  resize?: 'crop' | 'stretch'; // centre crop (sharp 'cover', default) or squash ('fill')
  autoOrient?: boolean; // apply EXIF orientation (not for segmentation pairs: masks have none)
}

/** Decode an image file to float RGB in [0, 1]; any failure is an Error naming the file. */
export async function decodeImage(path: string, opts: DecodeOptions = {}): Promise<Image> {
  return toFloat(await decodeRaw(path, opts));
}

interface RawRgb {
  data: Buffer; // HWC uint8 RGB
  width: number;
  height: number;
}

async function decodeRaw(path: string | RawRgb, opts: DecodeOptions = {}): Promise<RawRgb> {
  const name = typeof path === 'string' ? path : 'raw image';
  try {
    let s =
      typeof path === 'string'
        ? sharp(path, { failOn: 'warning' })
        : sharp(path.data, { raw: { width: path.width, height: path.height, channels: 3 } });
    if (opts.autoOrient) s = s.autoOrient();
    if (opts.size !== undefined)
      s = s.resize(opts.size, opts.size, { fit: opts.resize === 'stretch' ? 'fill' : 'cover' });
    const { data, info } = await s
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`unexpected decoded layout ${info.width}x${info.height}x${info.channels}`);
    }
    return { data, width: info.width, height: info.height };
  } catch (e) {
    throw new Error(`cannot decode image ${name}: ${(e as Error).message}`);
  }
}

function toFloat(r: RawRgb): Image {
  const out = new Float32Array(r.data.length);
  for (let i = 0; i < out.length; i++) out[i] = (r.data[i] as number) / 255;
  return { data: out, width: r.width, height: r.height, channels: 3 };
}

/** Read width/height from the file header (cheap); throws an Error naming the file. */
async function probeImage(path: string): Promise<{ width: number; height: number }> {
  try {
    const m = await sharp(path).metadata();
    if (!m.width || !m.height) throw new Error('no dimensions in header');
    return { width: m.width, height: m.height };
  } catch (e) {
    throw new Error(`cannot read image ${path}: ${(e as Error).message}`);
  }
}

/** Image folder dataset: flat (unlabelled) or class layout root/<class>/** (labels by sorted class name). */
export class ImageFolder implements Dataset {
  readonly skipped: Skipped[] = [];
  private readonly bad = new Set<number>();

  private constructor(
    private readonly files: { path: string; label?: number }[],
    readonly classes: readonly string[] | undefined,
    private readonly base: FolderSpec,
  ) {}

  static async open(spec: FolderSpec): Promise<ImageFolder> {
    if (spec.files) return new ImageFolder(spec.files, spec.classNames, spec);
    await requireDir(spec.root, 'image folder');
    const layout = spec.layout ?? 'auto';
    const top = (await readdir(spec.root, { withFileTypes: true })).filter(visible);
    const flat = layout === 'flat' || (layout === 'auto' && top.some((d) => d.isFile() && isImage(d.name)));
    let files: { path: string; label?: number }[];
    let classes: string[] | undefined;
    if (flat) {
      files = (await listImages(spec.root)).map((path) => ({ path }));
    } else {
      classes = top
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort(cmp);
      files = [];
      for (const [label, name] of classes.entries()) {
        const inClass = await listImages(join(spec.root, name));
        if (inClass.length === 0)
          throw new Error(`image folder ${spec.root}: class directory ${join(spec.root, name)} has no images`);
        for (const path of inClass) files.push({ path, label });
      }
    }
    if (files.length === 0) {
      throw new Error(`image folder ${spec.root} is empty: no ${IMAGE_EXTENSIONS.join('/')} files found`);
    }
    const skipped: Skipped[] = [];
    const ok = await mapPool(files, 16, async (f) => {
      try {
        if (spec.verify === 'full') await decodeImage(f.path);
        else await probeImage(f.path);
        return true;
      } catch (e) {
        if (!spec.skipBadImages) throw e;
        skipped.push({ path: f.path, reason: (e as Error).message });
        return false;
      }
    });
    const good = files.filter((_, i) => ok[i]);
    if (good.length === 0) throw new Error(`image folder ${spec.root}: all ${files.length} images are unreadable`);
    const ds = new ImageFolder(good, classes, spec);
    ds.skipped.push(...skipped.sort((a, b) => cmp(a.path, b.path)));
    return ds;
  }

  get length(): number {
    return this.files.length;
  }

  get skippedCount(): number {
    return this.skipped.length;
  }

  /** Resolved spec: carries the file list so workers need not list or probe again. */
  get spec(): FolderSpec {
    return { ...this.base, files: this.files, classNames: this.classes ? [...this.classes] : undefined };
  }

  async get(i: number): Promise<Sample> {
    checkIdx(i, this.files.length, this.base.root);
    const opts: DecodeOptions = { size: this.base.size, resize: this.base.resize, autoOrient: true };
    // A file that passed the header probe may still fail to decode: in skip mode the next good
    // file stands in (deterministic: depends only on the files), and the bad one is recorded.
    for (let k = 0; k < this.files.length; k++) {
      const j = (i + k) % this.files.length;
      if (this.bad.has(j)) continue;
      const f = this.files[j] as { path: string; label?: number };
      try {
        const image = await decodeImage(f.path, opts);
        const s: Sample = { index: i, image, path: f.path };
        if (f.label !== undefined) s.label = f.label;
        return s;
      } catch (e) {
        if (!this.base.skipBadImages) throw e;
        this.bad.add(j);
        this.skipped.push({ path: f.path, reason: (e as Error).message });
      }
    }
    throw new Error(`image folder ${this.base.root}: no decodable image left`);
  }
}

/** Segmentation pairs: images dir + masks dir; pairs are driven by the masks (VOC-style subsets). */
export class SegmentationFolder implements Dataset {
  readonly skipped: Skipped[] = [];
  readonly ignoreIndex: number;
  readonly maskClasses: number;
  readonly classes: readonly string[];
  private readonly bad = new Set<number>();

  private constructor(
    private readonly pairs: [string, string][],
    private readonly base: SegFolderSpec,
  ) {
    this.ignoreIndex = base.ignoreIndex ?? 255;
    this.maskClasses = base.classes;
    this.classes = Array.from({ length: base.classes }, (_, i) => String(i));
  }

  static async open(spec: SegFolderSpec): Promise<SegmentationFolder> {
    const { classes } = spec;
    const ignore = spec.ignoreIndex ?? 255;
    if (!(Number.isInteger(classes) && classes >= 1 && classes <= 256))
      throw new Error(`segfolder: classes must be an integer in 1..256, got ${classes}`);
    if (!(Number.isInteger(ignore) && ignore >= 0 && ignore <= 255))
      throw new Error(`segfolder: ignoreIndex must be an integer in 0..255, got ${ignore}`);
    if (spec.pairs) return new SegmentationFolder(spec.pairs, spec);
    await requireDir(spec.images, 'segmentation images folder');
    await requireDir(spec.masks, 'segmentation masks folder');
    const masks = (await listImages(spec.masks)).filter((p) => extname(p).toLowerCase() === '.png');
    if (masks.length === 0) throw new Error(`segmentation masks folder ${spec.masks} is empty: no .png masks found`);
    const byStem = new Map<string, string>();
    for (const p of await listImages(spec.images)) {
      const s = stem(spec.images, p);
      const prev = byStem.get(s);
      if (prev) throw new Error(`segfolder: two images share the stem '${s}': ${prev} and ${p}`);
      byStem.set(s, p);
    }
    const pairs: [string, string][] = masks.map((m) => {
      const img = byStem.get(stem(spec.masks, m));
      if (!img) throw new Error(`segfolder: mask ${m} has no image with the same name in ${spec.images}`);
      return [img, m];
    });
    const skipped: Skipped[] = [];
    const ok = await mapPool(pairs, 16, async ([img, m]) => {
      let isz: { width: number; height: number };
      let msz: { width: number; height: number };
      try {
        isz = await probeImage(img);
        msz = spec.verify === 'full' ? await decodeMask(m) : await probeMask(m);
        if (spec.verify === 'full') await decodeImage(img);
      } catch (e) {
        if (!spec.skipBadImages) throw e;
        skipped.push({ path: (e as Error).message.includes(m) ? m : img, reason: (e as Error).message });
        return false;
      }
      if (isz.width !== msz.width || isz.height !== msz.height) {
        throw new Error(
          `segfolder: mask ${m} is ${msz.width}x${msz.height} but its image ${img} is ${isz.width}x${isz.height}`,
        );
      }
      if (spec.verify === 'full') checkLabels((await decodeMask(m)).data, m, classes, ignore);
      return true;
    });
    const good = pairs.filter((_, i) => ok[i]);
    if (good.length === 0) throw new Error(`segfolder ${spec.images}: all ${pairs.length} pairs are unreadable`);
    const ds = new SegmentationFolder(good, spec);
    ds.skipped.push(...skipped.sort((a, b) => cmp(a.path, b.path)));
    return ds;
  }

  get length(): number {
    return this.pairs.length;
  }

  get skippedCount(): number {
    return this.skipped.length;
  }

  get spec(): SegFolderSpec {
    return { ...this.base, pairs: this.pairs };
  }

  async get(i: number): Promise<Sample> {
    checkIdx(i, this.pairs.length, this.base.images);
    const size = this.base.size;
    for (let k = 0; k < this.pairs.length; k++) {
      const j = (i + k) % this.pairs.length;
      if (this.bad.has(j)) continue;
      const [img, m] = this.pairs[j] as [string, string];
      let raw: RawRgb;
      let mask: { width: number; height: number; data: Uint8Array };
      try {
        mask = await decodeMask(m);
        raw = await decodeRaw(img); // native first: sizes must match before resizing
      } catch (e) {
        if (!this.base.skipBadImages) throw e;
        this.bad.add(j);
        this.skipped.push({ path: (e as Error).message.includes(m) ? m : img, reason: (e as Error).message });
        continue;
      }
      if (raw.width !== mask.width || raw.height !== mask.height) {
        throw new Error(
          `segfolder: mask ${m} is ${mask.width}x${mask.height} but its image ${img} is ${raw.width}x${raw.height}`,
        );
      }
      checkLabels(mask.data, m, this.maskClasses, this.ignoreIndex);
      if (size !== undefined) {
        // Both resized from raw pixels with the same 'cover' geometry, so they stay aligned.
        raw = await decodeRaw(raw, { size });
        mask = await resizeMask(mask, size);
      }
      const image = toFloat(raw);
      return { index: i, image, mask: mask.data, path: img };
    }
    throw new Error(`segfolder ${this.base.images}: no decodable pair left`);
  }
}

function checkLabels(data: Uint8Array, path: string, classes: number, ignore: number): void {
  for (let p = 0; p < data.length; p++) {
    const v = data[p] as number;
    if (v >= classes && v !== ignore) {
      throw new Error(
        `segfolder: mask ${path} has label ${v} at pixel ${p} but classes = ${classes} (labels 0..${classes - 1}) and ignoreIndex = ${ignore}`,
      );
    }
  }
}

/** Nearest-neighbour centre-crop resize through the same sharp geometry as the image ('cover'). */
async function resizeMask(m: { width: number; height: number; data: Uint8Array }, size: number) {
  const data = await sharp(m.data, { raw: { width: m.width, height: m.height, channels: 1 } })
    .resize(size, size, { fit: 'cover', kernel: 'nearest' })
    .extractChannel(0) // sharp would otherwise emit sRGB
    .raw()
    .toBuffer();
  if (data.length !== size * size)
    throw new Error(`mask resize produced ${data.length} bytes, expected ${size * size}`);
  return { width: size, height: size, data: new Uint8Array(data) };
}

/** Mask size from the PNG header (sharp for anything else). */
async function probeMask(path: string): Promise<{ width: number; height: number }> {
  const buf = await readFile(path);
  if (buf.length >= 24 && buf.subarray(0, 8).equals(PNG_SIG) && buf.toString('latin1', 12, 16) === 'IHDR') {
    return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  throw new Error(`cannot read mask ${path}: not a PNG file`);
}

/**
 * Decode a single-channel mask to its raw label values. Grey and palette PNGs are decoded here
 * (sharp would expand a VOC palette to RGB and lose the indices); other PNG colour types go
 * through sharp and must have R = G = B.
 */
export async function decodeMask(path: string): Promise<{ width: number; height: number; data: Uint8Array }> {
  const buf = await readFile(path);
  try {
    const direct = decodePngIndices(buf);
    if (direct) return direct;
    const { data, info } = await sharp(buf, { failOn: 'warning' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    const n = info.width * info.height;
    const C = info.channels;
    const out = new Uint8Array(n);
    for (let p = 0; p < n; p++) {
      const v = data[p * C] as number;
      if (C >= 3 && (data[p * C + 1] !== v || data[p * C + 2] !== v)) {
        throw new Error(
          'not a single-channel mask (colour pixels); save masks as 8-bit grey or palette PNGs of class indices',
        );
      }
      out[p] = v;
    }
    return { width: info.width, height: info.height, data: out };
  } catch (e) {
    throw new Error(`cannot decode mask ${path}: ${(e as Error).message}`);
  }
}

const PNG_SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Raw sample values of a non-interlaced grey (colour type 0) or palette (3) PNG of depth ≤ 8; null otherwise. */
function decodePngIndices(buf: Buffer): { width: number; height: number; data: Uint8Array } | null {
  if (buf.length < 8 || !buf.subarray(0, 8).equals(PNG_SIG)) throw new Error('not a PNG file');
  let pos = 8;
  let width = 0;
  let height = 0;
  let depth = 0;
  let ctype = -1;
  let interlace = 0;
  const idat: Buffer[] = [];
  while (pos + 8 <= buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const body = buf.subarray(pos + 8, pos + 8 + len);
    if (body.length !== len) throw new Error(`truncated PNG chunk ${type}`);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      depth = body[8] as number;
      ctype = body[9] as number;
      interlace = body[12] as number;
    } else if (type === 'IDAT') idat.push(body);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  if (ctype < 0) throw new Error('PNG without IHDR');
  if ((ctype === 0 || ctype === 3) && depth === 16)
    throw new Error('16-bit masks are not supported (labels must fit in 0..255)');
  if (ctype !== 0 && ctype !== 3) return null;
  if (interlace !== 0) {
    if (ctype === 0) return null; // sharp keeps grey values exactly
    throw new Error('interlaced palette PNG masks are not supported; re-save without interlacing');
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = Math.ceil((width * depth) / 8);
  if (raw.length < height * (stride + 1)) throw new Error('truncated PNG image data');
  const rows = new Uint8Array(height * stride);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)] as number;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = rows.subarray(y * stride, (y + 1) * stride);
    for (let x = 0; x < stride; x++) {
      const a = x > 0 ? (cur[x - 1] as number) : 0; // bpp = 1 byte for depth ≤ 8, one channel
      const b = prev[x] as number;
      const c = x > 0 ? (prev[x - 1] as number) : 0;
      const s = src[x] as number;
      let v: number;
      if (f === 0) v = s;
      else if (f === 1) v = s + a;
      else if (f === 2) v = s + b;
      else if (f === 3) v = s + ((a + b) >> 1);
      else if (f === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v = s + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      } else throw new Error(`bad PNG filter type ${f}`);
      cur[x] = v & 255;
    }
    prev = cur;
  }
  if (depth === 8) return { width, height, data: rows };
  const out = new Uint8Array(width * height); // unpack 1/2/4-bit samples, MSB first
  const per = 8 / depth;
  const maskBits = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const byte = rows[y * stride + Math.floor(x / per)] as number;
      out[y * width + x] = (byte >> (8 - depth * ((x % per) + 1))) & maskBits;
    }
  }
  return { width, height, data: out };
}

// ---- listing helpers ----

async function requireDir(path: string, what: string): Promise<void> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    throw new Error(`${what} not found: ${path}`);
  }
  if (!st.isDirectory()) throw new Error(`${what} is not a directory: ${path}`);
}

function visible(d: Dirent): boolean {
  return !d.name.startsWith('.');
}

function isImage(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** All image files under dir (recursive, hidden entries skipped), sorted by path. */
async function listImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of (await readdir(dir, { withFileTypes: true })).filter(visible)) {
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await listImages(p)));
    else if ((d.isFile() || d.isSymbolicLink()) && isImage(d.name)) out.push(p);
  }
  return out.sort(cmp);
}

function stem(root: string, path: string): string {
  const rel = relative(root, path);
  return rel.slice(0, rel.length - extname(rel).length);
}

/** Locale-independent string order (stable across machines). */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function checkIdx(i: number, n: number, what: string): void {
  if (!(Number.isInteger(i) && i >= 0 && i < n)) throw new RangeError(`${what}: index ${i} outside [0, ${n})`);
}

/** Map with at most `limit` promises in flight; results in input order. */
async function mapPool<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
