// View geometry: pure functions relating views to their source image and to each other.
//
// A view (types.ts ViewGeometry) is: crop `box` (source px) → resize to size x size → optional
// horizontal flip → rotation by k quarter turns counter-clockwise. Points are continuous pixel
// coordinates [x, y] (pixel (row i, col j) covers [j, j+1) x [i, i+1), its centre is (j+.5, i+.5)).
// Patch grids are raster-ordered (row-major) in a view's *output* frame, i.e. after flip and rotation.
import type { Rng } from './rng.js';
import type { Box, ViewGeometry } from './types.js';

export type Point = [x: number, y: number];
export type Rotation = 0 | 1 | 2 | 3;

/** Rotate a point of an S x S frame by k quarter turns CCW: one turn maps (x, y) → (y, S − x). */
export function rotatePoint(p: Point, k: number, S: number): Point {
  const [x, y] = p;
  switch (((k % 4) + 4) % 4) {
    case 1:
      return [y, S - x];
    case 2:
      return [S - x, S - y];
    case 3:
      return [S - y, x];
    default:
      return [x, y];
  }
}

/** Source point → the view's output frame (crop, resize, flip, rotate). */
export function sourceToView(g: ViewGeometry, p: Point): Point {
  const [x0, y0, x1, y1] = g.box;
  const S = g.size;
  let u = ((p[0] - x0) * S) / (x1 - x0);
  const v = ((p[1] - y0) * S) / (y1 - y0);
  if (g.flipped) u = S - u;
  return rotatePoint([u, v], g.rotation, S);
}

/** The view's output frame → source point; the exact inverse of sourceToView. */
export function viewToSource(g: ViewGeometry, p: Point): Point {
  const [x0, y0, x1, y1] = g.box;
  const S = g.size;
  let [u, v] = rotatePoint(p, 4 - g.rotation, S);
  if (g.flipped) u = S - u;
  return [x0 + (u * (x1 - x0)) / S, y0 + (v * (y1 - y0)) / S];
}

/** Side of the patch grid of a view; throws unless size is a multiple of patch. */
export function gridSide(g: ViewGeometry, patch: number): number {
  const n = g.size / patch;
  if (!Number.isInteger(n) || n < 1) throw new Error(`view size ${g.size} is not a multiple of patch ${patch}`);
  return n;
}

/** Centres of the view's patches in source coordinates: Float64Array [n*n, 2] of (x, y), raster order of the output frame. */
export function patchCentres(g: ViewGeometry, patch: number): Float64Array {
  const n = gridSide(g, patch);
  const out = new Float64Array(n * n * 2);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      const [x, y] = viewToSource(g, [(c + 0.5) * patch, (r + 0.5) * patch]);
      out[2 * (r * n + c)] = x;
      out[2 * (r * n + c) + 1] = y;
    }
  }
  return out;
}

/**
 * LOCA position labels: for each query patch (raster order, query output frame), the raster index
 * of the reference patch (reference output frame) whose cell contains the query patch centre,
 * −1 when the centre falls outside the reference view. Cells are half-open [lo, hi).
 */
export function locationLabels(ref: ViewGeometry, query: ViewGeometry, patch: number): Int32Array {
  const nr = gridSide(ref, patch);
  const centres = patchCentres(query, patch);
  const out = new Int32Array(centres.length / 2);
  for (let i = 0; i < out.length; i++) {
    const [u, v] = sourceToView(ref, [centres[2 * i] as number, centres[2 * i + 1] as number]);
    const c = Math.floor(u / patch);
    const r = Math.floor(v / patch);
    out[i] = c >= 0 && c < nr && r >= 0 && r < nr ? r * nr + c : -1;
  }
  return out;
}

/** Intersection of two boxes, null when it is empty (zero width or height). */
export function intersection(a: Box, b: Box): Box | null {
  const x0 = Math.max(a[0], b[0]);
  const y0 = Math.max(a[1], b[1]);
  const x1 = Math.min(a[2], b[2]);
  const y1 = Math.min(a[3], b[3]);
  return x1 > x0 && y1 > y0 ? [x0, y0, x1, y1] : null;
}

export function boxArea(b: Box): number {
  return Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
}

export function iou(a: Box, b: Box): number {
  const i = intersection(a, b);
  if (!i) return 0;
  const ai = boxArea(i);
  return ai / (boxArea(a) + boxArea(b) - ai);
}

/** Axis-aligned box through two corner images (flip and quarter turns keep boxes axis-aligned). */
function boxFromCorners(p: Point, q: Point): Box {
  return [Math.min(p[0], q[0]), Math.min(p[1], q[1]), Math.max(p[0], q[0]), Math.max(p[1], q[1])];
}

/** Source box → box in the view's output pixel frame (flip and rotation included). */
export function boxToView(g: ViewGeometry, b: Box): Box {
  return boxFromCorners(sourceToView(g, [b[0], b[1]]), sourceToView(g, [b[2], b[3]]));
}

/** Box in the view's output frame → source box. */
export function boxToSource(g: ViewGeometry, b: Box): Box {
  return boxFromCorners(viewToSource(g, [b[0], b[1]]), viewToSource(g, [b[2], b[3]]));
}

/** GTSA's rotate_bbox: a box of an S x S frame after k CCW quarter turns (methods.md §5 table). */
export function rotateBox(b: Box, k: number, S: number): Box {
  const [x1, y1, x2, y2] = b;
  switch (((k % 4) + 4) % 4) {
    case 1:
      return [y1, S - x2, y2, S - x1];
    case 2:
      return [S - x2, S - y2, S - x1, S - y1];
    case 3:
      return [S - y2, x1, S - y1, x2];
    default:
      return [x1, y1, x2, y2];
  }
}

/**
 * Gather permutation of a CCW k·90° rotation on an h x w raster grid: `rotated[j] = original[p[j]]`
 * (use it as index_select over tokens). The rotated grid is w x h for odd k.
 * E.g. 2x2, k=1: [[0,1],[2,3]] → [[1,3],[0,2]], p = [1,3,0,2].
 */
export function rotateGridIndex(h: number, w: number, k: number): Int32Array {
  const kk = ((k % 4) + 4) % 4;
  const [oh, ow] = kk % 2 === 1 ? [w, h] : [h, w];
  const p = new Int32Array(h * w);
  for (let r = 0; r < oh; r++) {
    for (let c = 0; c < ow; c++) {
      let sr: number;
      let sc: number;
      if (kk === 0) [sr, sc] = [r, c];
      else if (kk === 1) [sr, sc] = [c, w - 1 - r];
      else if (kk === 2) [sr, sc] = [h - 1 - r, w - 1 - c];
      else [sr, sc] = [h - 1 - c, r];
      p[r * ow + c] = sr * w + sc;
    }
  }
  return p;
}

/**
 * SelfPatch neighbours: Int32Array [h*w, 8], the 8 cells of each patch's 3x3 window in the
 * window's raster order (centre skipped). wrap=true wraps around the grid edges (torus, as the
 * reference code); wrap=false writes −1 for cells outside the grid.
 */
export function neighbourTable(h: number, w: number, wrap = true): Int32Array {
  const out = new Int32Array(h * w * 8);
  let o = 0;
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      for (let dr = -1; dr <= 1; dr++) {
        for (let dc = -1; dc <= 1; dc++) {
          if (dr === 0 && dc === 0) continue;
          let rr = r + dr;
          let cc = c + dc;
          if (wrap) {
            rr = (rr + h) % h;
            cc = (cc + w) % w;
            out[o++] = rr * w + cc;
          } else {
            out[o++] = rr >= 0 && rr < h && cc >= 0 && cc < w ? rr * w + cc : -1;
          }
        }
      }
    }
  }
  return out;
}

export interface ScrlBoxOptions {
  count: number; // boxes per image (num_patches_per_image)
  minSize: number; // minimum box side as a fraction of the view side (reference 32/224)
  iouThreshold: number; // a new box is retried while its IoU with an accepted one (view-1 frame) is ≥ this
  maxTries: number; // tries per box; after that the last candidate is kept
  gridBased: boolean; // grid-level box generation (reference default)
  jitter: false | number; // box_jittering_ratio applied to view-2 boxes, or false
}

export const SCRL_BOX_DEFAULTS: ScrlBoxOptions = {
  count: 10,
  minSize: 32 / 224,
  iouThreshold: 0.5,
  maxTries: 50,
  gridBased: true,
  jitter: false,
};

function clipBox(b: Box, S: number): Box {
  return [Math.max(0, b[0]), Math.max(0, b[1]), Math.min(S, b[2]), Math.min(S, b[3])];
}

/**
 * SCRL box pairs (methods.md §4, continuous version of kakaobrain/scrl's SCRLBoxGenerator): boxes
 * sampled in the intersection of the two crops, returned as [box in view 1, box in view 2], each
 * in its view's output frame (flip and rotation included), clipped to [0, size]. The sampling
 * frame is the intersection scaled by the smaller of the two views' scales, so every box is at
 * least minSize·size pixels wide in both views. Returns [] when the scaled intersection is not
 * wider and taller than the minimum size.
 */
export function sampleScrlBoxes(
  g1: ViewGeometry,
  g2: ViewGeometry,
  rng: Rng,
  options: Partial<ScrlBoxOptions> = {},
): Array<[Box, Box]> {
  const o = { ...SCRL_BOX_DEFAULTS, ...options };
  const inter = intersection(g1.box, g2.box);
  if (!inter) return [];
  const sx = Math.min(g1.size / (g1.box[2] - g1.box[0]), g2.size / (g2.box[2] - g2.box[0]));
  const sy = Math.min(g1.size / (g1.box[3] - g1.box[1]), g2.size / (g2.box[3] - g2.box[1]));
  const W = (inter[2] - inter[0]) * sx;
  const H = (inter[3] - inter[1]) * sy;
  const m = o.minSize * Math.min(g1.size, g2.size);
  if (W <= m || H <= m) return [];
  const divW = Math.floor(W / m);
  const divH = Math.floor(H / m);
  const out: Array<[Box, Box]> = [];
  for (let i = 0; i < o.count; i++) {
    let pair: [Box, Box] | null = null;
    for (let t = 0; t < o.maxTries; t++) {
      let bx: number;
      let by: number;
      let bw: number;
      let bh: number;
      if (o.gridBased) {
        const dw = rng.int(1, divW + 1);
        const dh = rng.int(1, divH + 1);
        const cw = W / dw;
        const ch = H / dh;
        const gx = rng.int(0, dw);
        const gy = rng.int(0, dh);
        bw = rng.range(m, cw);
        bh = rng.range(m, ch);
        bx = gx * cw + rng.range(0, cw - bw);
        by = gy * ch + rng.range(0, ch - bh);
      } else {
        bw = rng.range(m, W);
        bh = rng.range(m, H);
        bx = rng.range(0, W - bw);
        by = rng.range(0, H - bh);
      }
      const src: Box = [inter[0] + bx / sx, inter[1] + by / sy, inter[0] + (bx + bw) / sx, inter[1] + (by + bh) / sy];
      const b1 = boxToView(g1, src);
      let b2 = boxToView(g2, src);
      if (o.jitter !== false) b2 = jitterBox(b2, o.jitter, rng);
      pair = [clipBox(b1, g1.size), clipBox(b2, g2.size)];
      if (i === 0 || o.iouThreshold >= 1) break;
      let maxIou = 0;
      for (const [a] of out) maxIou = Math.max(maxIou, iou(a, pair[0]));
      if (maxIou < o.iouThreshold) break;
    }
    out.push(pair as [Box, Box]);
  }
  return out;
}

/** SCRL's jitter_box: each side moved by up to ratio·(box side). */
function jitterBox(b: Box, ratio: number, rng: Rng): Box {
  const w = b[2] - b[0];
  const h = b[3] - b[1];
  const x0 = b[0] + w * (rng.range(1 - ratio, 1 + ratio) - 1);
  const y0 = b[1] + h * (rng.range(1 - ratio, 1 + ratio) - 1);
  return [x0, y0, x0 + w * rng.range(1 - ratio, 1 + ratio), y0 + h * rng.range(1 - ratio, 1 + ratio)];
}

export interface GtsaBoxes {
  globals: number; // G
  views: number; // V (globals first)
  /** Float32Array [G, V, 4]: global i ∩ view j, in global i's output (rotated) frame. */
  gc: Float32Array;
  /** Float32Array [V, G, 4]: view j ∩ global g, in view j's output (rotated) frame. */
  all: Float32Array;
}

/**
 * GTSA's calculate_bboxes: pairwise intersections between the first `globals` views and every
 * view, each expressed in the frame of the view it will be pooled from (rotation included; same
 * numbers as the reference's intersection → crop frame → rotate_bbox). Throws if a pair does not
 * intersect (the view sampler guarantees overlap).
 */
export function gtsaBoxes(views: ViewGeometry[], globals = 2): GtsaBoxes {
  const V = views.length;
  const gc = new Float32Array(globals * V * 4);
  const all = new Float32Array(V * globals * 4);
  for (let i = 0; i < globals; i++) {
    const gi = views[i] as ViewGeometry;
    for (let j = 0; j < V; j++) {
      const vj = views[j] as ViewGeometry;
      const inter = intersection(gi.box, vj.box);
      if (!inter) throw new Error(`gtsaBoxes: global view ${i} and view ${j} do not intersect`);
      gc.set(boxToView(gi, inter), (i * V + j) * 4);
      all.set(boxToView(vj, inter), (j * globals + i) * 4);
    }
  }
  return { globals, views: V, gc, all };
}
