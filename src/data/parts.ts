// Part-structured synthetic objects: 6 object classes, each a fixed arrangement of parts drawn
// from 4 shared part types (shape + texture identify the part type; colour does not). Used by the
// object-level vs part-level probe and by keypoint-centred part crops.

import { deriveSeed, Rng } from './rng.js';
import { clamp01, composite, hsvToRgb, type Layer, renderBackground } from './scenes.js';
import type { Box, Image } from './types.js';

/** Part types; part map value = index + 1. */
export const PART_TYPES = ['disc', 'square', 'triangle', 'bar'] as const;
/** Object classes; object map value = index + 1. */
export const PART_CLASSES = ['house', 'snowman', 'tree', 'car', 'lamp', 'flower'] as const;

const DISC = 0;
const SQUARE = 1;
const TRIANGLE = 2;
const BAR = 3;

/** Each class: parts as [type, box in the unit object frame [-0.5, 0.5]², y down], bottom first. */
export const CLASS_PARTS: readonly (readonly [number, Box])[][] = [
  // house: roof, wall, ground strip
  [
    [TRIANGLE, [-0.45, -0.5, 0.45, -0.1]],
    [SQUARE, [-0.35, -0.1, 0.35, 0.38]],
    [BAR, [-0.5, 0.38, 0.5, 0.5]],
  ],
  // snowman: head, body, two arms
  [
    [DISC, [-0.18, -0.5, 0.18, -0.14]],
    [DISC, [-0.28, -0.14, 0.28, 0.46]],
    [BAR, [-0.5, -0.02, -0.28, 0.1]],
    [BAR, [0.28, -0.02, 0.5, 0.1]],
  ],
  // tree: crown, trunk, pot
  [
    [TRIANGLE, [-0.42, -0.5, 0.42, 0.12]],
    [BAR, [-0.08, 0.12, 0.08, 0.32]],
    [SQUARE, [-0.25, 0.32, 0.25, 0.5]],
  ],
  // car: roof, body, two wheels
  [
    [BAR, [-0.3, -0.34, 0.3, -0.18]],
    [SQUARE, [-0.5, -0.18, 0.5, 0.22]],
    [DISC, [-0.4, 0.2, -0.1, 0.5]],
    [DISC, [0.1, 0.2, 0.4, 0.5]],
  ],
  // lamp: shade, stem, base
  [
    [TRIANGLE, [-0.35, -0.5, 0.35, -0.12]],
    [BAR, [-0.06, -0.12, 0.06, 0.36]],
    [DISC, [-0.32, 0.36, 0.32, 0.5]],
  ],
  // flower: blossom, stem, two leaves (asymmetric, so flips matter)
  [
    [DISC, [-0.22, -0.5, 0.22, -0.06]],
    [BAR, [-0.05, -0.06, 0.05, 0.5]],
    [TRIANGLE, [0.05, 0.06, 0.38, 0.32]],
    [TRIANGLE, [-0.36, 0.22, -0.05, 0.46]],
  ],
];

export type PartsSplit = 'train' | 'eval';

export interface PartsOptions {
  seed?: number; // default 0
  size?: number; // canvas side, default 64
  minObjects?: number; // default 1
  maxObjects?: number; // default 3 (inclusive)
  minScale?: number; // object side / canvas side, default 0.38
  maxScale?: number; // default 0.6
}

export interface PartInstance {
  type: number; // index into PART_TYPES
  box: Box; // canvas pixels
  keypoint: [number, number]; // centre of the part box, canvas pixels
}

export interface PartObject {
  cls: number; // index into PART_CLASSES
  box: Box; // union of its part boxes
  flipped: boolean;
  parts: PartInstance[];
}

export interface PartScene {
  image: Image;
  objectMap: Uint8Array; // H*W: 0 background, 1..6 = class + 1 of the dominant part's object
  partMap: Uint8Array; // H*W: 0 background, 1..4 = part type + 1 of the dominant part
  objects: PartObject[]; // drawing order, bottom first
}

const SPLIT_ID = { train: 1, eval: 2 } as const;
const PARTS_STREAM = 0x9a475;

/** Render part scene `index`; a pure function of (seed, split, index, options). */
export function renderParts(split: PartsSplit, index: number, opts: PartsOptions = {}): PartScene {
  const size = opts.size ?? 64;
  const minObjects = opts.minObjects ?? 1;
  const maxObjects = opts.maxObjects ?? 3;
  const minScale = opts.minScale ?? 0.38;
  const maxScale = opts.maxScale ?? 0.6;
  if (!(Number.isInteger(size) && size >= 16)) throw new Error(`parts: size must be an integer ≥ 16, got ${size}`);
  if (!(minObjects >= 1 && maxObjects >= minObjects))
    throw new Error(`parts: bad object count range [${minObjects}, ${maxObjects}]`);
  if (!(minScale > 0 && maxScale >= minScale && maxScale <= 1))
    throw new Error(`parts: bad scale range [${minScale}, ${maxScale}]`);
  if (split !== 'train' && split !== 'eval') throw new Error(`parts: split must be 'train' or 'eval', got ${split}`);
  const rng = new Rng(deriveSeed(opts.seed ?? 0, SPLIT_ID[split], index, PARTS_STREAM));
  const bg = renderBackground(rng, size, size);
  const n = rng.int(minObjects, maxObjects + 1);
  const objects: PartObject[] = [];
  const layers: Layer[] = [];
  const owners: [number, number][] = []; // layer → [object, part]
  const placed: Box[] = [];
  for (let k = 0; k < n; k++) {
    const cls = rng.int(0, PART_CLASSES.length);
    const S = rng.range(minScale, maxScale) * size;
    const sx = S * rng.range(0.9, 1.1); // mild aspect jitter
    const flipped = rng.bool();
    // Fully inside the canvas; limit overlap with earlier objects (occlusion allowed, not burial).
    let cx = 0;
    let cy = 0;
    for (let tries = 0; tries < 20; tries++) {
      cx = rng.range(sx / 2, size - sx / 2);
      cy = rng.range(S / 2, size - S / 2);
      const b: Box = [cx - sx / 2, cy - S / 2, cx + sx / 2, cy + S / 2];
      if (placed.every((p) => overlapFraction(b, p) < 0.25)) break;
    }
    placed.push([cx - sx / 2, cy - S / 2, cx + sx / 2, cy + S / 2]);
    const hue = rng.uniform();
    const parts: PartInstance[] = [];
    for (const [type, ub] of CLASS_PARTS[cls] as (readonly [number, Box])[]) {
      const ux0 = flipped ? -ub[2] : ub[0];
      const ux1 = flipped ? -ub[0] : ub[2];
      const box: Box = [cx + ux0 * sx, cy + ub[1] * S, cx + ux1 * sx, cy + ub[3] * S];
      const color = hsvToRgb((hue + rng.range(-0.12, 0.12) + 1) % 1, rng.range(0.5, 0.95), rng.range(0.6, 1));
      layers.push(partLayer(type, box, color, S, rng, size));
      owners.push([k, parts.length]);
      parts.push({ type, box, keypoint: [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2] });
    }
    const box: Box = [
      Math.min(...parts.map((p) => p.box[0])),
      Math.min(...parts.map((p) => p.box[1])),
      Math.max(...parts.map((p) => p.box[2])),
      Math.max(...parts.map((p) => p.box[3])),
    ];
    objects.push({ cls, box, flipped, parts });
  }
  const { image, owner } = composite(bg, size, size, layers, 0.5);
  const objectMap = new Uint8Array(size * size);
  const partMap = new Uint8Array(size * size);
  for (let p = 0; p < owner.length; p++) {
    const o = owner[p] as number;
    if (o < 0) continue;
    const [k, j] = owners[o] as [number, number];
    const obj = objects[k] as PartObject;
    objectMap[p] = obj.cls + 1;
    partMap[p] = (obj.parts[j] as PartInstance).type + 1;
  }
  return { image, objectMap, partMap, objects };
}

/** Area of the intersection over the smaller box's area. */
function overlapFraction(a: Box, b: Box): number {
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (w <= 0 || h <= 0) return 0;
  const area = (x: Box): number => (x[2] - x[0]) * (x[3] - x[1]);
  return (w * h) / Math.min(area(a), area(b));
}

/** Is (u, v) in the part box's unit frame [0,1]² inside the part's shape? */
function inside(type: number, u: number, v: number, aspect: number): boolean {
  if (u < 0 || u > 1 || v < 0 || v > 1) return false;
  switch (type) {
    case DISC:
      return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25;
    case TRIANGLE: // apex at top centre, base at the bottom
      return Math.abs(u - 0.5) <= v / 2;
    case BAR: {
      // capsule: rounded at both ends of its long axis
      if (aspect >= 1) {
        const r = 0.5 / aspect; // radius in u units
        const du = u < r ? r - u : u > 1 - r ? u - (1 - r) : 0;
        return (du * aspect) ** 2 + (v - 0.5) ** 2 <= 0.25;
      }
      const r = 0.5 * aspect;
      const dv = v < r ? r - v : v > 1 - r ? v - (1 - r) : 0;
      return (u - 0.5) ** 2 + (dv / aspect) ** 2 <= 0.25;
    }
    default:
      return true; // square (any rectangle)
  }
}

/** Texture shade in [0.45, 1] at canvas pixel (x, y) of a part; S = object side (texture scale). */
function shade(type: number, u: number, v: number, x: number, y: number, S: number, grain: number): number {
  switch (type) {
    case DISC: // spherical shading, bright at the upper left
      return clamp01(1 - 1.1 * ((u - 0.38) ** 2 + (v - 0.38) ** 2));
    case SQUARE: {
      const p = Math.max(2, S / 9); // checkerboard
      return (Math.floor(x / p) + Math.floor(y / p)) % 2 === 0 ? 1 : 0.55;
    }
    case TRIANGLE: {
      const p = Math.max(2, S / 12); // horizontal stripes
      return Math.floor(y / p) % 2 === 0 ? 1 : 0.5;
    }
    default: // bar: speckle
      return 0.6 + 0.4 * grain;
  }
}

/** Rasterise one part with 3x3 supersampled coverage as alpha. */
function partLayer(type: number, box: Box, color: [number, number, number], S: number, rng: Rng, size: number): Layer {
  const x0 = Math.max(0, Math.floor(box[0]));
  const y0 = Math.max(0, Math.floor(box[1]));
  const x1 = Math.min(size, Math.ceil(box[2]));
  const y1 = Math.min(size, Math.ceil(box[3]));
  const w = x1 - x0;
  const bw = box[2] - box[0];
  const bh = box[3] - box[1];
  const aspect = bw / bh;
  const alpha = new Float32Array(w * (y1 - y0));
  const col = new Float32Array(alpha.length * 3);
  const ox = box[0];
  const oy = box[1];
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      let cover = 0;
      for (let sy = 0; sy < 3; sy++)
        for (let sx = 0; sx < 3; sx++)
          if (inside(type, (x + (sx + 0.5) / 3 - ox) / bw, (y + (sy + 0.5) / 3 - oy) / bh, aspect)) cover++;
      const i = (y - y0) * w + (x - x0);
      const g = rng.uniform();
      if (cover === 0) continue;
      alpha[i] = cover / 9;
      // Texture phase is anchored to the part box so it travels with the object.
      const t = shade(type, (x + 0.5 - ox) / bw, (y + 0.5 - oy) / bh, x - ox, y - oy, S, g);
      col[3 * i] = color[0] * t;
      col[3 * i + 1] = color[1] * t;
      col[3 * i + 2] = color[2] * t;
    }
  }
  return { x0, y0, x1, y1, alpha, color: col };
}
