// Native crop + resize of 8-bit RGB through sharp (libvips's SIMD reducers), for the views of folder
// photos: the role PIL's Image.resize(size, box=…) plays in torchvision's RandomResizedCrop.
//
// Semantics: the integer box is extracted, then resized to size x size with libvips's separable
// convolution (cubic = Catmull-Rom, a = −0.5, as PIL's BICUBIC; linear as PIL's BILINEAR), whose
// support widens with the reduction (antialiased, as PIL's). The result is 8-bit, as PIL's.
// Tolerance against PIL's Image.resize(box=…) (test/data_resample.test.ts, via /usr/bin/python3), on
// 8-bit output: mean |Δ| ≤ 0.5 and max |Δ| ≤ 8 grey levels of 255 for reductions (seen: mean 0.1–0.3,
// max 1–6; libvips rounds fixed-point taps differently and prefilters large factors with a box shrink). libvips enlarges with another pixel-centre convention (up to ~15
// levels off), so a box smaller than the output on either side is resampled by the JS path instead
// (augment.ts resizedCrop, PIL's scheme: ≤ 1 level).
import sharp from 'sharp';
import { type Interp, resizedCrop } from './augment.js';
import { gaussianBlur } from './blur.js';
import { toFloat } from './decode.js';
import type { Box, Image, RawImage } from './types.js';

sharp.cache(false); // raw inputs differ every call: libvips's operation cache only holds memory

/**
 * Crop the integer box of `src` and resize it to size x size; float RGB in [0, 1]. `float` gives the
 * same image as float (what the JS path reads when the box must be enlarged).
 */
export async function nativeResizedCrop(
  src: RawImage,
  float: Image | (() => Image),
  box: Box,
  size: number,
  interp: Interp,
): Promise<Image> {
  const [x0, y0, x1, y1] = box;
  const w = x1 - x0;
  const h = y1 - y0;
  if (
    ![x0, y0, w, h].every(Number.isInteger) ||
    w < 1 ||
    h < 1 ||
    x1 > src.width ||
    y1 > src.height ||
    x0 < 0 ||
    y0 < 0
  )
    throw new Error(`nativeResizedCrop: box [${box}] is not a whole-pixel box inside ${src.width}x${src.height}`);
  if (w < size || h < size) return resizedCrop(typeof float === 'function' ? float() : float, box, size, size, interp);
  let s = sharp(src.data, { raw: { width: src.width, height: src.height, channels: 3 } });
  if (w !== src.width || h !== src.height) s = s.extract({ left: x0, top: y0, width: w, height: h });
  const buf = await s
    .resize(size, size, { fit: 'fill', kernel: interp === 'bicubic' ? 'cubic' : 'linear' })
    .raw()
    .toBuffer();
  const n = size * size * 3;
  if (buf.length !== n) throw new Error(`nativeResizedCrop: libvips returned ${buf.length} bytes, expected ${n}`);
  return toFloat({ data: buf, width: size, height: size });
}

/**
 * The standard evaluation view of a photo: Resize (shorter side → size) + CenterCrop(size), as one
 * resample of the centred square box (torchvision's Resize(size) then CenterCrop(size), without
 * their integer rounding of the intermediate size). A square image is simply resized; nothing is
 * stretched.
 */
export function resizeCenterCrop(img: Image, size: number, interp: Interp = 'bilinear'): Image {
  const { width: W, height: H } = img;
  const side = Math.min(W, H);
  const box: Box = [(W - side) / 2, (H - side) / 2, (W + side) / 2, (H + side) / 2];
  return resizedCrop(img, box, size, size, interp);
}

/**
 * Gaussian blur of a float RGB image by libvips (8-bit, as PIL blurs), the mask cut where it falls
 * below exp(−4.5) of its peak (radius ≈ 3σ, as augment.ts gaussianBlur), edges extended by copying
 * (gaussianBlur reflects; PIL clamps). σ < 0.3 px (below libvips's range) goes to the JS blur.
 */
export async function nativeBlur(img: Image, sigma: number): Promise<Image> {
  if (sigma < 0.3) return gaussianBlur(img, sigma);
  const { width: W, height: H } = img;
  const n = W * H * 3;
  const u8 = Buffer.allocUnsafe(n);
  const d = img.data;
  for (let i = 0; i < n; i++) u8[i] = Math.round((d[i] as number) * 255); // Uint8 stores clamp to 0..255
  const buf = await sharp(u8, { raw: { width: W, height: H, channels: 3 } })
    .blur({ sigma, minAmplitude: Math.exp(-4.5), precision: 'integer' })
    .raw()
    .toBuffer();
  if (buf.length !== n) throw new Error(`nativeBlur: libvips returned ${buf.length} bytes, expected ${n}`);
  return toFloat({ data: buf, width: W, height: H });
}
