// Image augmentations on float32 HWC images in [0, 1] (types.ts Image). Every op is a pure
// function (image, params) → new image; random parameters are drawn by the `sample*` helpers from
// an Rng passed in, so that a sample's augmentation depends only on its seed.
//
// Semantics follow torchvision (tensor path) unless noted; resampling follows PIL (which
// torchvision uses for the PIL images of the reference pipelines): separable filters whose support
// widens when downscaling (antialiasing), evaluated over a continuous source box.
import type { Rng } from './rng.js';
import type { Box, Image } from './types.js';

export type Interp = 'bilinear' | 'bicubic';

/**
 * Normalisation constants. Default: ImageNet's, as every reference pipeline (DINO, SelfPatch, LOCA,
 * SCRL, GTSA) uses them and user folders are natural images; the same constants for all data keep
 * checkpoints interchangeable across datasets.
 */
export const IMAGENET_MEAN: [number, number, number] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: [number, number, number] = [0.229, 0.224, 0.225];

/** A zero image of the given size (the output buffer of the ops here and in blur.ts). */
export function blank(width: number, height: number, channels: number): Image {
  return { data: new Float32Array(width * height * channels), width, height, channels };
}

// ---------------------------------------------------------------- resampling (PIL's Resample.c scheme)

function bilinearFilter(x: number): number {
  const a = Math.abs(x);
  return a < 1 ? 1 - a : 0;
}

function bicubicFilter(x: number): number {
  const a = -0.5; // PIL's bicubic
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

interface Coeffs {
  start: Int32Array; // first source index per output index
  count: Int32Array; // taps per output index
  weights: Float32Array; // [out, kmax]
  kmax: number;
}

/** Filter taps mapping source interval [in0, in1) of an axis of length inSize onto outSize samples. */
function coeffs(inSize: number, in0: number, in1: number, outSize: number, interp: Interp): Coeffs {
  const filter = interp === 'bicubic' ? bicubicFilter : bilinearFilter;
  const support = interp === 'bicubic' ? 2 : 1;
  const scale = (in1 - in0) / outSize;
  const fscale = Math.max(scale, 1);
  const supp = support * fscale;
  const kmax = Math.ceil(supp) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float32Array(outSize * kmax);
  for (let o = 0; o < outSize; o++) {
    const centre = in0 + (o + 0.5) * scale;
    let lo = Math.max(Math.trunc(centre - supp + 0.5), 0);
    let hi = Math.min(Math.trunc(centre + supp + 0.5), inSize);
    if (hi <= lo) {
      // box (partly) outside the image: fall back to the nearest edge pixel
      lo = Math.min(Math.max(Math.floor(centre), 0), inSize - 1);
      hi = lo + 1;
    }
    let sum = 0;
    const n = Math.min(hi - lo, kmax);
    for (let k = 0; k < n; k++) {
      const w = filter((k + lo - centre + 0.5) / fscale);
      weights[o * kmax + k] = w;
      sum += w;
    }
    if (sum === 0) {
      weights[o * kmax] = 1;
      sum = 1;
    }
    for (let k = 0; k < n; k++) weights[o * kmax + k] = (weights[o * kmax + k] as number) / sum;
    start[o] = lo;
    count[o] = n;
  }
  return { start, count, weights, kmax };
}

/**
 * Crop the continuous source box and resize it to outW x outH (torchvision's resized_crop with a
 * float box). Bicubic output is clamped to [0, 1].
 */
export function resizedCrop(img: Image, box: Box, outW: number, outH = outW, interp: Interp = 'bilinear'): Image {
  const { width: W, height: H, channels: C, data } = img;
  const cx = coeffs(W, box[0], box[2], outW, interp);
  const cy = coeffs(H, box[1], box[3], outH, interp);
  const xs = cx.start;
  const xn = cx.count;
  const xw = cx.weights;
  const xk = cx.kmax;
  const ys = cy.start;
  const yn = cy.count;
  const yw = cy.weights;
  const yk = cy.kmax;
  // rows of the source that the vertical pass reads
  let r0 = H;
  let r1 = 0;
  for (let o = 0; o < outH; o++) {
    r0 = Math.min(r0, ys[o] as number);
    r1 = Math.max(r1, (ys[o] as number) + (yn[o] as number));
  }
  const rows = r1 - r0;
  const rowLen = outW * C;
  const tmp = new Float32Array(rows * rowLen);
  for (let r = 0; r < rows; r++) {
    const srow = (r + r0) * W * C;
    for (let o = 0; o < outW; o++) {
      const s0 = srow + (xs[o] as number) * C;
      const n = xn[o] as number;
      const wo = o * xk;
      const to = r * rowLen + o * C;
      if (C === 3) {
        // the common case, one pass over the taps for the 3 channels
        let a0 = 0;
        let a1 = 0;
        let a2 = 0;
        for (let k = 0, p = s0; k < n; k++, p += 3) {
          const w = xw[wo + k] as number;
          a0 += w * (data[p] as number);
          a1 += w * (data[p + 1] as number);
          a2 += w * (data[p + 2] as number);
        }
        tmp[to] = a0;
        tmp[to + 1] = a1;
        tmp[to + 2] = a2;
        continue;
      }
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += (xw[wo + k] as number) * (data[s0 + k * C + c] as number);
        tmp[to + c] = acc;
      }
    }
  }
  const out = blank(outW, outH, C);
  const od = out.data;
  const clamp = interp === 'bicubic';
  for (let o = 0; o < outH; o++) {
    const t0 = ((ys[o] as number) - r0) * rowLen;
    const n = yn[o] as number;
    const wo = o * yk;
    const oo = o * rowLen;
    for (let x = 0; x < rowLen; x++) od[oo + x] = 0;
    for (let k = 0; k < n; k++) {
      const w = yw[wo + k] as number;
      const tk = t0 + k * rowLen;
      for (let x = 0; x < rowLen; x++) od[oo + x] = (od[oo + x] as number) + w * (tmp[tk + x] as number);
    }
    if (clamp) for (let x = 0; x < rowLen; x++) od[oo + x] = clamp01(od[oo + x] as number);
  }
  return out;
}

export function resize(img: Image, outW: number, outH = outW, interp: Interp = 'bilinear'): Image {
  return resizedCrop(img, [0, 0, img.width, img.height], outW, outH, interp);
}

/**
 * RandomResizedCrop box (torchvision get_params, continuous): area fraction ~ U(scale), aspect
 * ratio log-uniform in `ratio`, 10 tries; then the centre crop with the ratio clamped into range.
 */
export function sampleCropBox(
  width: number,
  height: number,
  rng: Rng,
  scale: [number, number],
  ratio: [number, number] = [3 / 4, 4 / 3],
): Box {
  const area = width * height;
  const lr0 = Math.log(ratio[0]);
  const lr1 = Math.log(ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * rng.range(scale[0], scale[1]);
    const ar = Math.exp(rng.range(lr0, lr1));
    const w = Math.sqrt(target * ar);
    const h = Math.sqrt(target / ar);
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const x0 = rng.range(0, width - w);
      const y0 = rng.range(0, height - h);
      return [x0, y0, x0 + w, y0 + h];
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = w / ratio[0];
  else if (inRatio > ratio[1]) w = h * ratio[1];
  const x0 = (width - w) / 2;
  const y0 = (height - h) / 2;
  return [x0, y0, x0 + w, y0 + h];
}

// ---------------------------------------------------------------- geometry

export function hflip(img: Image): Image {
  const { width: W, height: H, channels: C, data } = img;
  const out = blank(W, H, C);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const s = (y * W + x) * C;
      const d = (y * W + (W - 1 - x)) * C;
      for (let c = 0; c < C; c++) out.data[d + c] = data[s + c] as number;
    }
  }
  return out;
}

/** Rotate by k quarter turns counter-clockwise (np.rot90 / torchvision F.rotate(img, 90k)). */
export function rot90(img: Image, k: number): Image {
  const kk = ((k % 4) + 4) % 4;
  const { width: W, height: H, channels: C, data } = img;
  if (kk === 0) return { ...img, data: data.slice() };
  const [ow, oh] = kk % 2 === 1 ? [H, W] : [W, H];
  const out = blank(ow, oh, C);
  for (let r = 0; r < oh; r++) {
    for (let c = 0; c < ow; c++) {
      let sr: number;
      let sc: number;
      if (kk === 1) [sr, sc] = [c, W - 1 - r];
      else if (kk === 2) [sr, sc] = [H - 1 - r, W - 1 - c];
      else [sr, sc] = [H - 1 - c, r];
      const s = (sr * W + sc) * C;
      const d = (r * ow + c) * C;
      for (let ch = 0; ch < C; ch++) out.data[d + ch] = data[s + ch] as number;
    }
  }
  return out;
}

// ---------------------------------------------------------------- colour

function clamp01(x: number): number {
  return x < 0 ? 0 : Math.min(x, 1);
}

function luma(r: number, g: number, b: number): number {
  return 0.299 * r + 0.587 * g + 0.114 * b; // ITU-R 601-2, as PIL "L" and torchvision
}

export function adjustBrightness(img: Image, f: number): Image {
  const out = blank(img.width, img.height, img.channels);
  brightnessInto(img.data, out.data, f);
  return out;
}

/** Blend towards the mean grey level of the whole image. */
export function adjustContrast(img: Image, f: number): Image {
  const out = blank(img.width, img.height, img.channels);
  contrastInto(img.data, out.data, f);
  return out;
}

/** Blend towards the per-pixel grey level. */
export function adjustSaturation(img: Image, f: number): Image {
  const out = blank(img.width, img.height, img.channels);
  saturationInto(img.data, out.data, f);
  return out;
}

// The colour ops from d into o (which may be d: colorJitter works in place on one copy).
function brightnessInto(d: Float32Array, o: Float32Array, f: number): void {
  for (let i = 0; i < d.length; i++) o[i] = clamp01((d[i] as number) * f);
}

function contrastInto(d: Float32Array, o: Float32Array, f: number): void {
  const n = d.length / 3;
  let m = 0;
  for (let i = 0; i < d.length; i += 3) m += luma(d[i] as number, d[i + 1] as number, d[i + 2] as number);
  m = (1 - f) * (m / n);
  for (let i = 0; i < d.length; i++) o[i] = clamp01(f * (d[i] as number) + m);
}

function saturationInto(d: Float32Array, o: Float32Array, f: number): void {
  for (let i = 0; i < d.length; i += 3) {
    const g = (1 - f) * luma(d[i] as number, d[i + 1] as number, d[i + 2] as number);
    o[i] = clamp01(f * (d[i] as number) + g);
    o[i + 1] = clamp01(f * (d[i + 1] as number) + g);
    o[i + 2] = clamp01(f * (d[i + 2] as number) + g);
  }
}

/** Shift hue by f ∈ [−0.5, 0.5] turns (RGB → HSV → RGB, as torchvision's tensor path). */
export function adjustHue(img: Image, f: number): Image {
  const out = blank(img.width, img.height, img.channels);
  hueInto(img.data, out.data, f);
  return out;
}

function hueInto(d: Float32Array, o: Float32Array, f: number): void {
  for (let i = 0; i < d.length; i += 3) {
    const r = d[i] as number;
    const g = d[i + 1] as number;
    const b = d[i + 2] as number;
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const cr = max - min;
    if (cr === 0) {
      o[i] = r;
      o[i + 1] = g;
      o[i + 2] = b;
      continue;
    }
    let h: number;
    if (max === r) h = (g - b) / cr;
    else if (max === g) h = 2 + (b - r) / cr;
    else h = 4 + (r - g) / cr;
    h = h / 6 + f;
    h -= Math.floor(h);
    const s = cr / max;
    const v = max;
    const h6 = h * 6;
    const k = Math.floor(h6) % 6;
    const fr = h6 - Math.floor(h6);
    const p = v * (1 - s);
    const q = v * (1 - s * fr);
    const t = v * (1 - s * (1 - fr));
    o[i] = k === 0 || k === 5 ? v : k === 1 ? q : k === 4 ? t : p;
    o[i + 1] = k === 1 || k === 2 ? v : k === 0 ? t : k === 3 ? q : p;
    o[i + 2] = k === 3 || k === 4 ? v : k === 2 ? t : k === 5 ? q : p;
  }
}

/** Grey level replicated on the 3 channels. */
export function grayscale(img: Image): Image {
  const d = img.data;
  const out = blank(img.width, img.height, img.channels);
  for (let i = 0; i < d.length; i += 3) {
    const g = luma(d[i] as number, d[i + 1] as number, d[i + 2] as number);
    out.data[i] = g;
    out.data[i + 1] = g;
    out.data[i + 2] = g;
  }
  return out;
}

/** Pixels ≥ threshold are inverted (PIL's solarize at 128/255 ≈ 0.5). */
export function solarize(img: Image, threshold = 0.5): Image {
  const out = blank(img.width, img.height, img.channels);
  for (let i = 0; i < img.data.length; i++) {
    const v = img.data[i] as number;
    out.data[i] = v >= threshold ? 1 - v : v;
  }
  return out;
}

export interface JitterStrength {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** One draw of ColorJitter: the op order (0 b, 1 c, 2 s, 3 h) and the factors. */
export interface JitterDraw {
  order: number[];
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** torchvision ColorJitter.get_params: permutation first, then factors in b, c, s, h order. */
export function sampleJitter(s: JitterStrength, rng: Rng): JitterDraw {
  const order = rng.shuffle([0, 1, 2, 3]);
  const f = (x: number) => (x > 0 ? rng.range(Math.max(0, 1 - x), 1 + x) : 1);
  const brightness = f(s.brightness);
  const contrast = f(s.contrast);
  const saturation = f(s.saturation);
  const hue = s.hue > 0 ? rng.range(-s.hue, s.hue) : 0;
  return { order, brightness, contrast, saturation, hue };
}

export function colorJitter(img: Image, j: JitterDraw): Image {
  // One copy, then each op in place over it (the same kernels as adjustBrightness & co.).
  const out: Image = { ...img, data: img.data.slice() };
  const d = out.data;
  for (const op of j.order) {
    if (op === 0 && j.brightness !== 1) brightnessInto(d, d, j.brightness);
    else if (op === 1 && j.contrast !== 1) contrastInto(d, d, j.contrast);
    else if (op === 2 && j.saturation !== 1) saturationInto(d, d, j.saturation);
    else if (op === 3 && j.hue !== 0) hueInto(d, d, j.hue);
  }
  return out;
}

// ---------------------------------------------------------------- normalisation

/**
 * Normalise with per-channel mean/std and write CHW into `out` at `offset` (the batch buffer):
 * out[offset + c*H*W + y*W + x] = (img[y, x, c] − mean[c]) / std[c].
 */
export function normalizeInto(
  img: Image,
  out: Float32Array,
  offset: number,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): void {
  const { width: W, height: H, channels: C, data } = img;
  const hw = W * H;
  for (let c = 0; c < C; c++) {
    const m = mean[c] as number;
    const inv = 1 / (std[c] as number);
    const base = offset + c * hw;
    for (let i = 0; i < hw; i++) out[base + i] = ((data[i * C + c] as number) - m) * inv;
  }
}

/** Pure-function form of normalizeInto: a new CHW Float32Array. */
export function normalize(
  img: Image,
  mean: readonly number[] = IMAGENET_MEAN,
  std: readonly number[] = IMAGENET_STD,
): Float32Array {
  const out = new Float32Array(img.width * img.height * img.channels);
  normalizeInto(img, out, 0, mean, std);
  return out;
}
