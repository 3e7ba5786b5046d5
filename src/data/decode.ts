// Image decoding with sharp (libvips): files to 8-bit or float RGB, optionally resized, and header
// probes. Every failure is an Error naming the file.
import sharp from 'sharp';
import type { Image, RawImage } from './types.js';

export interface DecodeOptions {
  size?: number; // square output side; omitted = native (or capped by maxSide)
  resize?: 'crop' | 'stretch'; // centre crop (sharp 'cover', default) or squash ('fill')
  /** Without size: shrink (aspect kept, never enlarge) so that the longer side is at most this. */
  maxSide?: number;
  autoOrient?: boolean; // apply EXIF orientation (not for segmentation pairs: masks have none)
}

/** Decode an image file (or raw RGB) to 8-bit RGB; any failure is an Error naming the file. */
export async function decodeRaw(path: string | RawImage, opts: DecodeOptions = {}): Promise<RawImage> {
  const name = typeof path === 'string' ? path : 'raw image';
  try {
    let s =
      typeof path === 'string'
        ? sharp(path, { failOn: 'warning' })
        : sharp(path.data, { raw: { width: path.width, height: path.height, channels: 3 } });
    if (opts.autoOrient) s = s.autoOrient();
    if (opts.size !== undefined)
      s = s.resize(opts.size, opts.size, { fit: opts.resize === 'stretch' ? 'fill' : 'cover' });
    else if (opts.maxSide !== undefined)
      s = s.resize(opts.maxSide, opts.maxSide, { fit: 'inside', withoutEnlargement: true, kernel: 'cubic' });
    const { data, info } = await s
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== info.width * info.height * 3) {
      throw new Error(`unexpected decoded layout ${info.width}x${info.height}x${info.channels}`);
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
  } catch (e) {
    throw new Error(`cannot decode image ${name}: ${(e as Error).message}`);
  }
}

/** Decode an image file to float RGB in [0, 1]; any failure is an Error naming the file. */
export async function decodeImage(path: string, opts: DecodeOptions = {}): Promise<Image> {
  return toFloat(await decodeRaw(path, opts));
}

export function toFloat(r: RawImage): Image {
  const out = new Float32Array(r.data.length);
  for (let i = 0; i < out.length; i++) out[i] = (r.data[i] as number) / 255;
  return { data: out, width: r.width, height: r.height, channels: 3 };
}

/** Width/height from the file header (cheap; EXIF orientation applied); throws an Error naming the file. */
export async function probeImage(path: string): Promise<{ width: number; height: number }> {
  try {
    const m = await sharp(path).metadata();
    if (!m.width || !m.height) throw new Error('no dimensions in header');
    const swap = (m.orientation ?? 1) >= 5; // EXIF 5..8 are the transposing orientations
    return swap ? { width: m.height, height: m.width } : { width: m.width, height: m.height };
  } catch (e) {
    throw new Error(`cannot read image ${path}: ${(e as Error).message}`);
  }
}
