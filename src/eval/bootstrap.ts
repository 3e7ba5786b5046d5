// 95% bootstrap intervals over test samples (issue 11 item 8): resample the test items with replacement B
// times (seeded), recompute the statistic, report the 2.5th and 97.5th percentiles. Accuracies resample
// per-sample correctness; mIoU and pixel accuracy resample whole images (their per-image confusion
// matrices are summed, then scored), so pixels of one image stay together.
import { deriveSeed, Rng } from '../data/rng.js';
import type { Confusion } from './metrics.js';
import { segScores } from './metrics.js';

export type Interval = [number, number];

export const BOOTSTRAP_DEFAULTS = { resamples: 1000, level: 0.95 };

/** Percentile (linear interpolation, numpy's default) of sorted values. */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (sorted[lo] as number) + ((sorted[hi] as number) - (sorted[lo] as number)) * (pos - lo);
}

/** Resample counts: how often each of n items is drawn in one bootstrap sample. */
function drawCounts(rng: Rng, n: number, out: Uint32Array): void {
  out.fill(0);
  for (let i = 0; i < n; i++) {
    const j = Math.min(n - 1, Math.floor(rng.uniform() * n));
    out[j] = (out[j] as number) + 1;
  }
}

/** Interval of a statistic computed from resample counts (stat(counts) over the n items). */
export function bootstrapInterval(
  n: number,
  stat: (counts: Uint32Array) => number,
  seed = 0,
  o: { resamples?: number; level?: number } = {},
): Interval {
  const B = o.resamples ?? BOOTSTRAP_DEFAULTS.resamples;
  const level = o.level ?? BOOTSTRAP_DEFAULTS.level;
  if (n === 0) return [Number.NaN, Number.NaN];
  const rng = new Rng(deriveSeed(seed, 0xb007));
  const counts = new Uint32Array(n);
  const vals: number[] = [];
  for (let b = 0; b < B; b++) {
    drawCounts(rng, n, counts);
    const v = stat(counts);
    if (Number.isFinite(v)) vals.push(v);
  }
  vals.sort((a, b) => a - b);
  return [percentile(vals, (1 - level) / 2), percentile(vals, 1 - (1 - level) / 2)];
}

/** Interval of a mean of per-item values (e.g. 0/1 correctness → accuracy). */
export function meanInterval(values: ArrayLike<number>, seed = 0, o: { resamples?: number } = {}): Interval {
  const n = values.length;
  return bootstrapInterval(
    n,
    (c) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += (c[i] as number) * (values[i] as number);
      return s / n;
    },
    seed,
    o,
  );
}

/** Intervals of mIoU, pixel accuracy and each class's IoU from per-image confusion matrices. */
export function segIntervals(
  perImage: Confusion[],
  seed = 0,
  o: { resamples?: number } = {},
): { miou_ci: Interval; pixel_acc_ci: Interval; per_class_iou_ci: (Interval | null)[] } {
  const n = perImage.length;
  const C = perImage[0]?.classes ?? 1;
  const sum: Confusion = { classes: C, counts: new Float64Array(C * C) };
  const B = o.resamples ?? BOOTSTRAP_DEFAULTS.resamples;
  const miou: number[] = [];
  const acc: number[] = [];
  const perClass: number[][] = Array.from({ length: C }, () => []);
  const rng = new Rng(deriveSeed(seed, 0x5e6b));
  const counts = new Uint32Array(n);
  for (let b = 0; b < B; b++) {
    drawCounts(rng, n, counts);
    sum.counts.fill(0);
    for (let i = 0; i < n; i++) {
      const w = counts[i] as number;
      if (w === 0) continue;
      const m = (perImage[i] as Confusion).counts;
      for (let k = 0; k < m.length; k++) sum.counts[k] = (sum.counts[k] as number) + w * (m[k] as number);
    }
    const s = segScores(sum);
    if (Number.isFinite(s.miou)) miou.push(s.miou);
    if (Number.isFinite(s.pixel_acc)) acc.push(s.pixel_acc);
    s.per_class_iou.forEach((v, c) => {
      if (v !== null) (perClass[c] as number[]).push(v);
    });
  }
  const ci = (vals: number[]): Interval => {
    vals.sort((a, b) => a - b);
    return [percentile(vals, 0.025), percentile(vals, 0.975)];
  };
  return {
    miou_ci: ci(miou),
    pixel_acc_ci: ci(acc),
    per_class_iou_ci: perClass.map((v) => (v.length > 0 ? ci(v) : null)),
  };
}

/** Per-row 0/1 hits of ranked predictions (row-major n×K) for top-k. */
export function topkHits(ranked: ArrayLike<number>, K: number, labels: ArrayLike<number>, k: number): Uint8Array {
  const n = labels.length;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < Math.min(k, K); j++)
      if (ranked[i * K + j] === labels[i]) {
        out[i] = 1;
        break;
      }
  return out;
}

/** Rounds an interval for JSON (6 decimals). */
export function roundCi(ci: Interval): Interval {
  return [Math.round(ci[0] * 1e6) / 1e6, Math.round(ci[1] * 1e6) / 1e6];
}
