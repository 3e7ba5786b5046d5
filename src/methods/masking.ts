// Block-wise masks for masked-patch prediction, following iBOT's generator (bytedance/ibot loader.py,
// ImageFolderMask with pred_shape='block', itself after BEiT's masking_generator.py):
//   - per view, the prediction ratio is 0 with probability 1 − prob, else uniform in [lo, hi]
//     (iBOT's README ViT-S run: `--pred_ratio 0 0.3 --pred_ratio_var 0 0.2`, i.e. a random choice
//     between 0 and U(0.1, 0.5): prob 0.5, ratio [0.1, 0.5]);
//   - blocks are added until ratio·h·w patches are masked: each try draws an area in
//     [(min(h,w) div 3)², remaining], a log-uniform aspect ratio in [0.3, 1/0.3], rounds the sides
//     (Python's round: half to even), keeps the block only if it is strictly smaller than the grid in
//     both sides and adds between 1 and `remaining` new patches; 10 failed tries end the mask.
// So the masked count never exceeds ratio·h·w and the mask is a union of axis-aligned rectangles.
// Deviation: the draws come from Locus's seeded Rng (data/rng.ts), not Python's `random`; callers seed it
// per sample and step so that masks are reproducible and a resumed run draws the same ones.
import { deriveSeed, Rng } from '../data/rng.js';

export interface MaskOptions {
  prob: number; // probability that a view is masked at all (iBOT README: 0.5)
  ratio: [number, number]; // masked share of the patches when masked (iBOT README: [0.1, 0.5])
  aspect: [number, number]; // block aspect-ratio range (iBOT: (0.3, 1/0.3))
}

export const IBOT_MASK_DEFAULTS: MaskOptions = { prob: 0.5, ratio: [0.1, 0.5], aspect: [0.3, 1 / 0.3] };

/** One masked rectangle: rows top..top+h−1, columns left..left+w−1. */
export interface MaskBlock {
  top: number;
  left: number;
  h: number;
  w: number;
}

/** Python 3's round(): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** The masked share of one view: 0 with probability 1 − prob, else uniform in [ratio[0], ratio[1]]. */
export function sampleMaskRatio(rng: Rng, o: MaskOptions): number {
  return rng.bool(o.prob) ? rng.range(o.ratio[0], o.ratio[1]) : 0;
}

/** A block-wise mask (row-major [h·w], 1 = masked) covering at most ratio·h·w patches, and its blocks. */
export function blockMask(
  h: number,
  w: number,
  ratio: number,
  rng: Rng,
  aspect: [number, number] = IBOT_MASK_DEFAULTS.aspect,
): { mask: Uint8Array; blocks: MaskBlock[] } {
  const mask = new Uint8Array(h * w);
  const blocks: MaskBlock[] = [];
  const high = ratio * h * w;
  const low = Math.floor(Math.min(h, w) / 3) ** 2;
  const logAspect = [Math.log(aspect[0]), Math.log(aspect[1])] as const;
  let count = 0;
  while (count < high) {
    const remaining = high - count;
    let delta = 0;
    for (let attempt = 0; attempt < 10 && delta === 0; attempt++) {
      const area = rng.range(low, remaining); // like random.uniform, also when low > remaining
      const ar = Math.exp(rng.range(logAspect[0], logAspect[1]));
      const bh = roundHalfEven(Math.sqrt(area * ar));
      const bw = roundHalfEven(Math.sqrt(area / ar));
      if (!(bw < w && bh < h)) continue;
      const top = rng.int(0, h - bh + 1);
      const left = rng.int(0, w - bw + 1);
      let already = 0;
      for (let r = top; r < top + bh; r++) for (let c = left; c < left + bw; c++) already += mask[r * w + c];
      const fresh = bh * bw - already;
      if (fresh > 0 && fresh <= remaining) {
        for (let r = top; r < top + bh; r++) mask.fill(1, r * w + left, r * w + left + bw);
        blocks.push({ top, left, h: bh, w: bw });
        delta = fresh;
      }
    }
    if (delta === 0) break;
    count += delta;
  }
  return { mask, blocks };
}

/**
 * Masks for `keys.length` samples of an h×w grid, one per sample, row-major [n·h·w] (1 = masked).
 * Sample i draws from its own stream deriveSeed(seed, ...keys[i]), so a mask depends only on the seed
 * and the sample's key (e.g. step, dataset index, view), never on batch order or process count.
 */
export function maskBatch(keys: number[][], h: number, w: number, o: MaskOptions, seed: number): Uint8Array {
  const out = new Uint8Array(keys.length * h * w);
  keys.forEach((k, i) => {
    const rng = new Rng(deriveSeed(seed, ...k));
    const ratio = sampleMaskRatio(rng, o);
    if (ratio > 0) out.set(blockMask(h, w, ratio, rng, o.aspect).mask, i * h * w);
  });
  return out;
}
