// Segmentation masks: single-channel PNGs of class indices (grey or palette, decoded here so that a
// VOC palette keeps its indices), their header probe, label-range check and aligned nearest resize.
import { readFile } from 'node:fs/promises';
import { inflateSync } from 'node:zlib';
import sharp from 'sharp';

export interface Mask {
  width: number;
  height: number;
  data: Uint8Array;
}

export function checkLabels(data: Uint8Array, path: string, classes: number, ignore: number): void {
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
export async function resizeMask(m: { width: number; height: number; data: Uint8Array }, size: number) {
  const data = await sharp(m.data, { raw: { width: m.width, height: m.height, channels: 1 } })
    .resize(size, size, { fit: 'cover', kernel: 'nearest' })
    .extractChannel(0) // sharp would otherwise emit sRGB
    .raw()
    .toBuffer();
  if (data.length !== size * size)
    throw new Error(`mask resize produced ${data.length} bytes, expected ${size * size}`);
  return { width: size, height: size, data: new Uint8Array(data) };
}

/** Nearest-neighbour resize of a mask to exactly width x height (the image's 'inside' shrink). */
export async function resizeMaskTo(m: Mask, width: number, height: number): Promise<Mask> {
  const data = await sharp(m.data, { raw: { width: m.width, height: m.height, channels: 1 } })
    .resize(width, height, { fit: 'fill', kernel: 'nearest' })
    .extractChannel(0)
    .raw()
    .toBuffer();
  if (data.length !== width * height)
    throw new Error(`mask resize produced ${data.length} bytes, expected ${width * height}`);
  return { width, height, data: new Uint8Array(data) };
}

/** Mask size from the PNG header (sharp for anything else). */
export async function probeMask(path: string): Promise<{ width: number; height: number }> {
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
