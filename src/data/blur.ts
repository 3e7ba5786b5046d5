// Blurs on float32 HWC images: the separable Gaussian (torchvision's reflect padding, radius ⌈3σ⌉)
// and SCRL's ResizeBlur. Pure functions, as augment.ts's ops.
import { blank, resize } from './augment.js';
import type { Image } from './types.js';

/** Source index of each padded position −rad..n+rad−1 under reflect padding (torchvision's). */
function reflectTable(n: number, rad: number): Int32Array {
  const t = new Int32Array(n + 2 * rad);
  for (let j = 0; j < t.length; j++) {
    let i = j - rad;
    if (n === 1) i = 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
    t[j] = i;
  }
  return t;
}

/** Separable Gaussian blur with standard deviation sigma (px), radius ⌈3σ⌉, reflect padding. */
export function gaussianBlur(img: Image, sigma: number): Image {
  const { width: W, height: H, channels: C, data } = img;
  // below σ ≈ 0.19 px the neighbour weight exp(−1/2σ²) is < 1e-6: the blur is the identity
  if (Math.exp(-1 / (2 * sigma * sigma)) < 1e-6) return { ...img, data: data.slice() };
  const rad = Math.max(1, Math.ceil(3 * sigma));
  const K = 2 * rad + 1;
  const k = new Float32Array(K);
  let sum = 0;
  for (let i = -rad; i <= rad; i++) {
    const w = Math.exp(-(i * i) / (2 * sigma * sigma));
    k[i + rad] = w;
    sum += w;
  }
  for (let i = 0; i < K; i++) k[i] = (k[i] as number) / sum;
  const tx = reflectTable(W, rad);
  const ty = reflectTable(H, rad);
  const tmp = new Float32Array(data.length);
  const padLen = (W + 2 * rad) * C;
  const pad = new Float32Array(padLen);
  for (let y = 0; y < H; y++) {
    const row = y * W * C;
    // the reflect-padded row, then a tap loop over contiguous memory (3 accumulators for RGB)
    for (let j = 0; j < W + 2 * rad; j++) {
      const s0 = row + (tx[j] as number) * C;
      for (let c = 0; c < C; c++) pad[j * C + c] = data[s0 + c] as number;
    }
    if (C === 3) {
      for (let x = 0; x < W; x++) {
        let a0 = 0;
        let a1 = 0;
        let a2 = 0;
        for (let i = 0, p = x * 3; i < K; i++, p += 3) {
          const w = k[i] as number;
          a0 += w * (pad[p] as number);
          a1 += w * (pad[p + 1] as number);
          a2 += w * (pad[p + 2] as number);
        }
        const o = row + x * 3;
        tmp[o] = a0;
        tmp[o + 1] = a1;
        tmp[o + 2] = a2;
      }
      continue;
    }
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let i = 0; i < K; i++) acc += (k[i] as number) * (pad[(x + i) * C + c] as number);
        tmp[row + x * C + c] = acc;
      }
    }
  }
  const out = blank(W, H, C);
  const od = out.data;
  const rowLen = W * C;
  for (let y = 0; y < H; y++) {
    const oo = y * rowLen;
    for (let i = 0; i < K; i++) {
      const w = k[i] as number;
      const src = (ty[y + i] as number) * rowLen;
      for (let x = 0; x < rowLen; x++) od[oo + x] = (od[oo + x] as number) + w * (tmp[src + x] as number);
    }
  }
  return out;
}

/** SCRL's ResizeBlur: downscale by `factor` (sides floored) then back up, bicubic. */
export function resizeBlur(img: Image, factor: number): Image {
  const w = Math.max(1, Math.floor(img.width / factor));
  const h = Math.max(1, Math.floor(img.height / factor));
  return resize(resize(img, w, h, 'bicubic'), img.width, img.height, 'bicubic');
}
