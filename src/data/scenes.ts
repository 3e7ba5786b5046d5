// Fashion-MNIST scenes: the embedded default data. Several tinted Fashion-MNIST items are
// alpha-composited over a textured background; every pixel gets the class of the item that
// contributes the majority of its colour (0 = background), so occlusion is respected exactly.
import { type FashionMnist, loadFashionMnist } from './fashion_mnist.js';
import { deriveSeed, Rng } from './rng.js';
import type { Box, Image } from './types.js';

export type SceneSplit = 'train' | 'eval';

export interface SceneOptions {
  seed?: number; // default 0
  size?: number; // canvas side in pixels, default 64
  minItems?: number; // default 2
  maxItems?: number; // default 5 (inclusive)
  minScale?: number; // item side as a fraction of the canvas side, default 0.25 (16 px at 64)
  maxScale?: number; // default 0.625 (40 px at 64)
  /** A pixel is labelled with an item when that item's share of the pixel colour is ≥ this. Default 0.5. */
  threshold?: number;
  /** Fashion-MNIST directory (default: $LOCUS_FASHION_MNIST_DIR or Debian's). */
  dir?: string;
  /** Also return the background and each item's layer (for tests and debugging). */
  layers?: boolean;
}

export interface SceneItem {
  cls: number; // Fashion-MNIST class 0..9 (label map value cls+1)
  /** Tight box of the item's own alpha ≥ threshold, clipped to the canvas (ignores occlusion). */
  box: Box;
  /** The square the 28x28 item was resampled into (may extend past the canvas). */
  placed: Box;
  split: 'train' | 'test'; // which Fashion-MNIST file the item came from
  source: number; // item index in that file
  flipped: boolean;
  tint: [number, number, number];
  visible: number; // pixels labelled with this item after occlusion
}

/** One composited layer over an integer region [x0,x1)x[y0,y1) of the canvas. */
export interface Layer {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
  alpha: Float32Array; // (y1-y0)*(x1-x0)
  color: Float32Array; // (y1-y0)*(x1-x0)*3, straight (not premultiplied) RGB
}

export interface Scene {
  image: Image;
  /** H*W: 0 = background, 1..10 = Fashion-MNIST class + 1 of the dominant item. */
  labels: Uint8Array;
  items: SceneItem[]; // in drawing order, bottom first
  background?: Float32Array; // with `layers: true`
  layers?: Layer[]; // with `layers: true`, one per item
}

const SPLIT_ID = { train: 1, eval: 2 } as const;
const SCENE_STREAM = 0x5ce7e;

/** Render scene `index` of a split; a pure function of (seed, split, index, options). */
export function renderScene(split: SceneSplit, index: number, opts: SceneOptions = {}): Scene {
  const size = opts.size ?? 64;
  const minItems = opts.minItems ?? 2;
  const maxItems = opts.maxItems ?? 5;
  const minScale = opts.minScale ?? 0.25;
  const maxScale = opts.maxScale ?? 0.625;
  const threshold = opts.threshold ?? 0.5;
  if (!(Number.isInteger(size) && size >= 8)) throw new Error(`scenes: size must be an integer ≥ 8, got ${size}`);
  if (!(minItems >= 1 && maxItems >= minItems))
    throw new Error(`scenes: bad item count range [${minItems}, ${maxItems}]`);
  if (split !== 'train' && split !== 'eval') throw new Error(`scenes: split must be 'train' or 'eval', got ${split}`);
  // Train scenes draw only training items and eval scenes only test items.
  const src = loadFashionMnist(split === 'train' ? 'train' : 'test', opts.dir);
  const rng = new Rng(deriveSeed(opts.seed ?? 0, SPLIT_ID[split], index, SCENE_STREAM));

  const bg = renderBackground(rng, size, size);
  const n = rng.int(minItems, maxItems + 1);
  const items: SceneItem[] = [];
  const layers: Layer[] = [];
  for (let k = 0; k < n; k++) {
    const source = rng.int(0, src.count);
    const side = rng.range(minScale, maxScale) * size;
    // Keep the item mostly inside: at most 15% of its square past any edge.
    const px = rng.range(-0.15 * side, size - 0.85 * side);
    const py = rng.range(-0.15 * side, size - 0.85 * side);
    const flipped = rng.bool();
    const tint = hsvToRgb(rng.uniform(), rng.range(0.45, 1), rng.range(0.7, 1));
    const layer = itemLayer(src, source, px, py, side, flipped, tint, size);
    layers.push(layer);
    items.push({
      cls: src.labels[source] as number,
      box: tightBox(layer, threshold) ?? clipBox([px, py, px + side, py + side], size, size),
      placed: [px, py, px + side, py + side],
      split: src.split,
      source,
      flipped,
      tint,
      visible: 0,
    });
  }
  const { image, owner } = composite(bg, size, size, layers, threshold);
  const labels = new Uint8Array(size * size);
  for (let p = 0; p < labels.length; p++) {
    const o = owner[p] as number;
    if (o >= 0) {
      const it = items[o] as SceneItem;
      labels[p] = it.cls + 1;
      it.visible++;
    }
  }
  const scene: Scene = { image, labels, items };
  if (opts.layers) {
    scene.background = bg;
    scene.layers = layers;
  }
  return scene;
}

/** Bilinear resample of a 28x28 item into the square (px, py, side); alpha from intensity. */
function itemLayer(
  src: FashionMnist,
  index: number,
  px: number,
  py: number,
  side: number,
  flipped: boolean,
  tint: [number, number, number],
  size: number,
): Layer {
  const x0 = Math.max(0, Math.floor(px));
  const y0 = Math.max(0, Math.floor(py));
  const x1 = Math.min(size, Math.ceil(px + side));
  const y1 = Math.min(size, Math.ceil(py + side));
  const w = x1 - x0;
  const h = y1 - y0;
  const alpha = new Float32Array(w * h);
  const color = new Float32Array(w * h * 3);
  const R = src.rows;
  const C = src.cols;
  const base = index * R * C;
  const img = src.images;
  const at = (r: number, c: number): number =>
    r < 0 || r >= R || c < 0 || c >= C ? 0 : (img[base + r * C + c] as number) / 255;
  const sx = C / side;
  const sy = R / side;
  for (let y = y0; y < y1; y++) {
    const v = (y + 0.5 - py) * sy - 0.5;
    const r0 = Math.floor(v);
    const fy = v - r0;
    for (let x = x0; x < x1; x++) {
      // The item occupies exactly its square: pixel centres outside it stay transparent.
      if (x + 0.5 < px || x + 0.5 > px + side || y + 0.5 < py || y + 0.5 > py + side) continue;
      let u = (x + 0.5 - px) * sx - 0.5;
      if (flipped) u = C - 1 - u;
      const c0 = Math.floor(u);
      const fx = u - c0;
      const g =
        (1 - fy) * ((1 - fx) * at(r0, c0) + fx * at(r0, c0 + 1)) +
        fy * ((1 - fx) * at(r0 + 1, c0) + fx * at(r0 + 1, c0 + 1));
      const i = (y - y0) * w + (x - x0);
      // Items were cut out onto 0, so any clear ink is body (opaque) even on dark garments;
      // the intensity survives as shading of the tint.
      alpha[i] = clamp01((g - 0.04) * 6);
      const shade = 0.3 + 0.7 * g;
      color[3 * i] = tint[0] * shade;
      color[3 * i + 1] = tint[1] * shade;
      color[3 * i + 2] = tint[2] * shade;
    }
  }
  return { x0, y0, x1, y1, alpha, color };
}

/**
 * Composite layers (bottom first) over a background with "over". owner[p] is the index of the
 * layer with the largest share a_k·Π_{j>k}(1−a_j) of pixel p's colour if that share ≥ threshold,
 * else −1 (background or no clear owner).
 */
export function composite(
  bg: Float32Array,
  width: number,
  height: number,
  layers: readonly Layer[],
  threshold: number,
): { image: Image; owner: Int16Array } {
  const data = new Float32Array(bg);
  const owner = new Int16Array(width * height).fill(-1);
  const best = new Float32Array(width * height); // share of the current owner candidate
  for (let k = 0; k < layers.length; k++) {
    const L = layers[k] as Layer;
    const lw = L.x1 - L.x0;
    for (let y = L.y0; y < L.y1; y++) {
      for (let x = L.x0; x < L.x1; x++) {
        const i = (y - L.y0) * lw + (x - L.x0);
        const a = L.alpha[i] as number;
        if (a <= 0) continue;
        const p = y * width + x;
        for (let c = 0; c < 3; c++)
          data[3 * p + c] = (1 - a) * (data[3 * p + c] as number) + a * (L.color[3 * i + c] as number);
        // Every earlier share shrinks by (1 − a), which keeps their order: only the max matters.
        const prev = (best[p] as number) * (1 - a);
        if (a >= prev) {
          best[p] = a;
          owner[p] = k;
        } else best[p] = prev;
      }
    }
  }
  for (let p = 0; p < owner.length; p++) if ((best[p] as number) < threshold) owner[p] = -1;
  return { image: { data, width, height, channels: 3 }, owner };
}

/** Box of a layer's pixels with alpha ≥ threshold, or null if none. */
export function tightBox(L: Layer, threshold: number): Box | null {
  let bx0 = Infinity;
  let by0 = Infinity;
  let bx1 = -Infinity;
  let by1 = -Infinity;
  const lw = L.x1 - L.x0;
  for (let y = L.y0; y < L.y1; y++) {
    for (let x = L.x0; x < L.x1; x++) {
      if ((L.alpha[(y - L.y0) * lw + (x - L.x0)] as number) >= threshold) {
        if (x < bx0) bx0 = x;
        if (x + 1 > bx1) bx1 = x + 1;
        if (y < by0) by0 = y;
        if (y + 1 > by1) by1 = y + 1;
      }
    }
  }
  return bx1 > bx0 ? [bx0, by0, bx1, by1] : null;
}

/**
 * Textured background (HWC RGB in [0, 1]): a two-colour gradient, oriented sinusoidal stripes,
 * smooth value noise and fine grain, each with a random weight so backgrounds vary in character.
 */
export function renderBackground(rng: Rng, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height * 3);
  const ca = hsvToRgb(rng.uniform(), rng.range(0.1, 0.6), rng.range(0.25, 0.85));
  const cb = hsvToRgb(rng.uniform(), rng.range(0.1, 0.6), rng.range(0.25, 0.85));
  const gth = rng.range(0, 2 * Math.PI);
  const gx = Math.cos(gth);
  const gy = Math.sin(gth);
  const sth = rng.range(0, Math.PI);
  const scale = Math.max(width, height) / 64; // texture sizes are set for a 64 px canvas
  const period = rng.range(4, 16) * scale; // pixels
  const sfx = (Math.cos(sth) * 2 * Math.PI) / period;
  const sfy = (Math.sin(sth) * 2 * Math.PI) / period;
  const sph = rng.range(0, 2 * Math.PI);
  const stripeAmp = rng.bool(0.6) ? rng.range(0.04, 0.16) : 0;
  const stripeCol = hsvToRgb(rng.uniform(), rng.range(0, 0.5), 1);
  const noiseAmp = rng.range(0.05, 0.2);
  const grain = rng.range(0.01, 0.05);
  // Value noise on a coarse lattice (cell ≈ 8 px at 64), bilinearly interpolated, one field per channel.
  const cell = rng.range(5, 12) * scale;
  const gw = Math.ceil(width / cell) + 2;
  const gh = Math.ceil(height / cell) + 2;
  const lattice = new Float32Array(gw * gh * 3);
  for (let i = 0; i < lattice.length; i++) lattice[i] = rng.uniform() - 0.5;
  const sd = Math.max(width, height);
  const c0 = [ca[0] - cb[0], ca[1] - cb[1], ca[2] - cb[2]]; // gradient: cb + (1 - t)·(ca − cb)
  for (let y = 0; y < height; y++) {
    const v = y / cell;
    const j0 = Math.floor(v);
    const fv = v - j0;
    for (let x = 0; x < width; x++) {
      const t = clamp01(0.5 + ((x - width / 2) * gx + (y - height / 2) * gy) / sd);
      const s = stripeAmp * Math.sin(x * sfx + y * sfy + sph);
      const u = x / cell;
      const i0 = Math.floor(u);
      const fu = u - i0;
      const w00 = (1 - fv) * (1 - fu);
      const w01 = (1 - fv) * fu;
      const w10 = fv * (1 - fu);
      const w11 = fv * fu;
      const q00 = (j0 * gw + i0) * 3;
      const q10 = q00 + gw * 3;
      const o = (y * width + x) * 3;
      const gr = grain * (2 * rng.uniform() - 1); // luminance grain
      for (let c = 0; c < 3; c++) {
        const nz =
          w00 * (lattice[q00 + c] as number) +
          w01 * (lattice[q00 + 3 + c] as number) +
          w10 * (lattice[q10 + c] as number) +
          w11 * (lattice[q10 + 3 + c] as number);
        const g = (cb[c] as number) + (1 - t) * (c0[c] as number);
        out[o + c] = clamp01(g + s * (stripeCol[c] as number) + noiseAmp * nz + gr);
      }
    }
  }
  return out;
}

export function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6) % 6;
  const f = h * 6 - Math.floor(h * 6);
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  switch (i) {
    case 0:
      return [v, t, p];
    case 1:
      return [q, v, p];
    case 2:
      return [p, v, t];
    case 3:
      return [p, q, v];
    case 4:
      return [t, p, v];
    default:
      return [v, p, q];
  }
}

export function clamp01(x: number): number {
  return x < 0 ? 0 : Math.min(x, 1);
}

export function clipBox(b: Box, width: number, height: number): Box {
  return [Math.max(0, b[0]), Math.max(0, b[1]), Math.min(width, b[2]), Math.min(height, b[3])];
}
