// RoIAlign with torchvision.ops.roi_align semantics (the op SCRL and GTSA pool with), built from engine
// ops as one batched matrix product.
//
// For fixed boxes RoIAlign is linear in the feature map: every output bin is the mean of bilinear samples,
// each a weighted sum of at most 4 map cells. The weights depend only on the boxes (no gradient flows to
// boxes, as in torchvision), so they are computed here on the host, exactly as torchvision's CPU kernel
// computes them (roi_align_kernel.cpp: pre_calc_for_bilinear_interpolate), into a matrix
// M [B, H·W, R] (R = the most boxes of one image × bins). The output is then x [B, C, H·W] · M, a bmm that
// is differentiable w.r.t. the features, followed by a gather of each box's rows (skipped when the boxes
// are one per image in batch order, as GTSA's). Per-box adaptive sampling (sampling_ratio −1 →
// ceil(roi/out) per box) is therefore exact, which a single gridSample call cannot express.
import { type Tensor, tensor, zeros } from '../engine/index.js';

export interface RoiAlignOptions {
  /** Output bins per side (pooled height and width). */
  outputSize: number | [number, number];
  /** Box coordinates are multiplied by this to reach feature-map coordinates (1/patch on a ViT grid). */
  spatialScale?: number; // 1
  /** Samples per bin per side; ≤ 0 means adaptive: ceil(roi side / output side), per box. */
  samplingRatio?: number; // −1
  /** Shift box coordinates by −0.5 so that pixel centres align (detectron2's ROIAlignV2). */
  aligned?: boolean; // false
}

/** Boxes as rows (batch index, x1, y1, x2, y2): a [K, 5] tensor, a flat array of K·5 numbers, or K rows. */
export type RoiBoxes = Tensor | Float32Array | Float64Array | number[] | number[][];

/** Flat float64 copy of the boxes, K·5 values. */
export function boxRows(boxes: RoiBoxes): Float64Array {
  if (Array.isArray(boxes)) {
    if (boxes.length > 0 && Array.isArray(boxes[0])) return Float64Array.from((boxes as number[][]).flat());
    return Float64Array.from(boxes as number[]);
  }
  if (boxes instanceof Float32Array || boxes instanceof Float64Array) return Float64Array.from(boxes);
  const t = boxes as Tensor;
  if (t.ndim !== 2 || t.shape[1] !== 5) throw new Error(`roiAlign: boxes must be [K, 5] (got [${t.shape}])`);
  return Float64Array.from(t.toFloat32());
}

/**
 * Adds the bilinear weights of sample (y, x) on an H×W map, scaled by `scale`, into `row` (length H·W),
 * as torchvision's bilinear_interpolate: samples beyond one cell outside the map contribute nothing,
 * coordinates below 0 clamp to 0, and at the last row/column the sample snaps to it.
 */
function addBilinear(row: Float64Array, H: number, W: number, y: number, x: number, scale: number): void {
  if (y < -1 || y > H || x < -1 || x > W) return;
  let yy = Math.max(y, 0);
  let xx = Math.max(x, 0);
  let y0 = Math.floor(yy);
  let x0 = Math.floor(xx);
  let y1: number;
  let x1: number;
  if (y0 >= H - 1) {
    y0 = y1 = H - 1;
    yy = y0;
  } else y1 = y0 + 1;
  if (x0 >= W - 1) {
    x0 = x1 = W - 1;
    xx = x0;
  } else x1 = x0 + 1;
  const ly = yy - y0;
  const lx = xx - x0;
  const hy = 1 - ly;
  const hx = 1 - lx;
  row[y0 * W + x0] += hy * hx * scale;
  row[y0 * W + x1] += hy * lx * scale;
  row[y1 * W + x0] += ly * hx * scale;
  row[y1 * W + x1] += ly * lx * scale;
}

/**
 * The weights of every bin of one box over an H×W map: Float64Array [ph·pw, H·W] (bin-major).
 * `box` is (x1, y1, x2, y2) in input coordinates (before spatialScale).
 */
export function roiWeights(box: ArrayLike<number>, H: number, W: number, o: RoiAlignOptions): Float64Array {
  const [ph, pw] = typeof o.outputSize === 'number' ? [o.outputSize, o.outputSize] : o.outputSize;
  const scale = o.spatialScale ?? 1;
  const sr = o.samplingRatio ?? -1;
  const off = o.aligned ? 0.5 : 0;
  const sw = (box[0] as number) * scale - off;
  const sh = (box[1] as number) * scale - off;
  let rw = (box[2] as number) * scale - off - sw;
  let rh = (box[3] as number) * scale - off - sh;
  if (!o.aligned) {
    rw = Math.max(rw, 1); // torchvision forces malformed boxes to 1x1 in the legacy mode
    rh = Math.max(rh, 1);
  }
  const bh = rh / ph;
  const bw = rw / pw;
  const gh = sr > 0 ? sr : Math.ceil(rh / ph);
  const gw = sr > 0 ? sr : Math.ceil(rw / pw);
  const inv = 1 / Math.max(gh * gw, 1);
  const out = new Float64Array(ph * pw * H * W);
  for (let i = 0; i < ph; i++) {
    for (let j = 0; j < pw; j++) {
      const row = out.subarray((i * pw + j) * H * W, (i * pw + j + 1) * H * W);
      for (let iy = 0; iy < gh; iy++) {
        const y = sh + i * bh + ((iy + 0.5) * bh) / gh;
        for (let ix = 0; ix < gw; ix++) addBilinear(row, H, W, y, sw + j * bw + ((ix + 0.5) * bw) / gw, inv);
      }
    }
  }
  return out;
}

/**
 * RoIAlign of x [B, C, H, W] over boxes [K, 5] (batch index, x1, y1, x2, y2 in input coordinates; feature
 * coordinates = input · spatialScale) → [K, C, ph, pw], in box order. Differentiable w.r.t. x. K = 0 gives
 * an empty [0, C, ph, pw] tensor.
 */
export function roiAlign(x: Tensor, boxes: RoiBoxes, o: RoiAlignOptions): Tensor {
  if (x.ndim !== 4) throw new Error(`roiAlign: features must be [B, C, H, W] (got [${x.shape}])`);
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const [ph, pw] = typeof o.outputSize === 'number' ? [o.outputSize, o.outputSize] : o.outputSize;
  const rows = boxRows(boxes);
  if (rows.length % 5 !== 0) throw new Error(`roiAlign: ${rows.length} box values is not a multiple of 5`);
  const K = rows.length / 5;
  const dtype = x.dtype === 'float64' ? 'float64' : 'float32';
  if (K === 0) return zeros([0, C, ph, pw], { dtype: x.dtype, device: x.device });
  // Slot of each box within its image.
  const perImage = new Int32Array(B);
  const slot = new Int32Array(K);
  let identity = true; // one box per image, in batch order
  for (let k = 0; k < K; k++) {
    const b = rows[5 * k] as number;
    if (!Number.isInteger(b) || b < 0 || b >= B)
      throw new Error(`roiAlign: box ${k} has batch index ${b}, outside [0, ${B})`);
    slot[k] = perImage[b]++;
    if (b !== k) identity = false;
  }
  if (K !== B) identity = false;
  const maxN = perImage.reduce((a, n) => Math.max(a, n), 0);
  const P = ph * pw;
  const R = maxN * P;
  const HW = H * W;
  // M [B, HW, R]: column (slot·P + bin) of image b holds that bin's weights over the map.
  const m = dtype === 'float64' ? new Float64Array(B * HW * R) : new Float32Array(B * HW * R);
  for (let k = 0; k < K; k++) {
    const b = rows[5 * k] as number;
    const wts = roiWeights(rows.subarray(5 * k + 1, 5 * k + 5), H, W, o);
    for (let p = 0; p < P; p++) {
      const col = (slot[k] as number) * P + p;
      for (let q = 0; q < HW; q++) {
        const v = wts[p * HW + q] as number;
        if (v !== 0) m[(b * HW + q) * R + col] = v;
      }
    }
  }
  const mt = tensor(m, [B, HW, R], { dtype, device: x.device });
  const xf = x.dtype === dtype ? x : x.to(dtype);
  const pooled = xf.reshape(B, C, HW).bmm(mt); // [B, C, R]
  let out: Tensor;
  if (identity) out = pooled.reshape(B, C, ph, pw);
  else {
    const grouped = pooled
      .reshape(B, C, maxN, P)
      .permute(0, 2, 1, 3)
      .reshape(B * maxN, C, ph, pw);
    const idx = new Int32Array(K);
    for (let k = 0; k < K; k++) idx[k] = (rows[5 * k] as number) * maxN + (slot[k] as number);
    const it = tensor(idx, [K], { device: x.device }).to('int64');
    out = grouped.indexSelect(0, it);
  }
  return x.dtype === dtype ? out : out.to(x.dtype);
}
