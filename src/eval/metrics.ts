// Metrics of the probes, in plain JS numbers (exact, easy to check by hand): segmentation confusion
// matrices and IoU, top-k accuracy, and retrieval average precision as sklearn computes it.

/** A C×C confusion matrix, row = ground truth, column = prediction (counts). */
export interface Confusion {
  classes: number;
  counts: Float64Array; // counts[gt * classes + pred]
}

export function emptyConfusion(classes: number): Confusion {
  if (!(Number.isInteger(classes) && classes >= 1))
    throw new Error(`confusion: classes must be a positive integer, got ${classes}`);
  return { classes, counts: new Float64Array(classes * classes) };
}

/**
 * Adds the pixels of one label map to m. Pixels whose ground truth is ignoreIndex are skipped; any
 * other ground truth or prediction outside 0..classes-1 is an error (a wrong class count must not
 * silently bend the numbers).
 */
export function accumulateConfusion(
  m: Confusion,
  gt: ArrayLike<number>,
  pred: ArrayLike<number>,
  ignoreIndex = -1,
): Confusion {
  if (gt.length !== pred.length) throw new Error(`confusion: ${gt.length} labels but ${pred.length} predictions`);
  const C = m.classes;
  for (let i = 0; i < gt.length; i++) {
    const g = gt[i] as number;
    if (g === ignoreIndex) continue;
    const p = pred[i] as number;
    if (!(g >= 0 && g < C))
      throw new Error(`confusion: label ${g} at ${i} is outside 0..${C - 1} (ignore index ${ignoreIndex})`);
    if (!(p >= 0 && p < C)) throw new Error(`confusion: prediction ${p} at ${i} is outside 0..${C - 1}`);
    m.counts[g * C + p] = (m.counts[g * C + p] as number) + 1;
  }
  return m;
}

export function confusionMatrix(
  gt: ArrayLike<number>,
  pred: ArrayLike<number>,
  classes: number,
  ignoreIndex = -1,
): Confusion {
  return accumulateConfusion(emptyConfusion(classes), gt, pred, ignoreIndex);
}

export interface SegScores {
  miou: number; // mean IoU over the classes present in the ground truth or the predictions
  pixel_acc: number; // correct / counted pixels (ignored pixels not counted)
  mean_class_acc: number; // mean recall over classes present in the ground truth
  /** IoU per class; null where the class is in neither the ground truth nor the predictions. */
  per_class_iou: (number | null)[];
  classes_counted: number; // classes that entered the mean
  pixels: number;
}

/**
 * IoU_c = TP / (TP + FP + FN). A class absent from both the ground truth and the predictions has
 * 0/0: it is excluded from the mean (null in per_class_iou), as mmseg's nanmean does. A class
 * predicted but never present gets IoU 0 and counts (its false positives are real errors).
 */
export function segScores(m: Confusion): SegScores {
  const C = m.classes;
  const iou: (number | null)[] = [];
  let tpAll = 0;
  let total = 0;
  let recallSum = 0;
  let recallN = 0;
  for (let c = 0; c < C; c++) {
    let row = 0;
    let col = 0;
    for (let k = 0; k < C; k++) {
      row += m.counts[c * C + k] as number;
      col += m.counts[k * C + c] as number;
    }
    const tp = m.counts[c * C + c] as number;
    const union = row + col - tp;
    iou.push(union > 0 ? tp / union : null);
    tpAll += tp;
    total += row;
    if (row > 0) {
      recallSum += tp / row;
      recallN++;
    }
  }
  const counted = iou.filter((v): v is number => v !== null);
  return {
    miou: counted.length > 0 ? counted.reduce((a, b) => a + b, 0) / counted.length : Number.NaN,
    pixel_acc: total > 0 ? tpAll / total : Number.NaN,
    mean_class_acc: recallN > 0 ? recallSum / recallN : Number.NaN,
    per_class_iou: iou,
    classes_counted: counted.length,
    pixels: total,
  };
}

/**
 * Average precision of one ranking, as sklearn.metrics.average_precision_score: AP = Σ_n (R_n − R_{n−1}) P_n
 * over the distinct score thresholds, highest first (tied scores enter together, no interpolation).
 * Returns NaN when there is no positive (AP is undefined; retrieval never hits this: the query is its own positive).
 */
export function averagePrecision(scores: ArrayLike<number>, positive: ArrayLike<boolean | number>): number {
  const n = scores.length;
  if (positive.length !== n) throw new Error(`averagePrecision: ${n} scores but ${positive.length} labels`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => (scores[b] as number) - (scores[a] as number));
  let P = 0;
  for (let i = 0; i < n; i++) if (positive[i]) P++;
  if (P === 0) return Number.NaN;
  let tp = 0;
  let fp = 0;
  let prevRecall = 0;
  let ap = 0;
  for (let i = 0; i < n; ) {
    const s = scores[order[i] as number] as number;
    // one threshold: every item with this score
    while (i < n && (scores[order[i] as number] as number) === s) {
      if (positive[order[i] as number]) tp++;
      else fp++;
      i++;
    }
    const recall = tp / P;
    ap += (recall - prevRecall) * (tp / (tp + fp));
    prevRecall = recall;
  }
  return ap;
}

/**
 * Retrieval AP/mAP of the part-aware study (pr_patch_retrieval.py): every item queries all items (itself
 * included) by cosine similarity; positives share its label. AP = mean over queries; mAP = mean over
 * classes of the per-class mean AP. sims is the n×n similarity matrix, row-major.
 */
export function retrievalAp(
  sims: Float32Array | Float64Array,
  labels: ArrayLike<number>,
): { ap: number; map: number; per_class_ap: Record<string, number> } {
  const n = labels.length;
  if (sims.length !== n * n) throw new Error(`retrievalAp: ${sims.length} similarities for ${n} items`);
  const perClass = new Map<number, number[]>();
  let sum = 0;
  const pos = new Uint8Array(n);
  for (let q = 0; q < n; q++) {
    const lq = labels[q] as number;
    for (let j = 0; j < n; j++) pos[j] = labels[j] === lq ? 1 : 0;
    const ap = averagePrecision(sims.subarray(q * n, (q + 1) * n), pos);
    sum += ap;
    perClass.set(lq, [...(perClass.get(lq) ?? []), ap]);
  }
  const per: Record<string, number> = {};
  let mapSum = 0;
  for (const [c, aps] of [...perClass].sort((a, b) => a[0] - b[0])) {
    per[String(c)] = aps.reduce((a, b) => a + b, 0) / aps.length;
    mapSum += per[String(c)] as number;
  }
  return {
    ap: n > 0 ? sum / n : Number.NaN,
    map: perClass.size > 0 ? mapSum / perClass.size : Number.NaN,
    per_class_ap: per,
  };
}

/** Fraction of rows whose true label is among the first k predicted (preds: n×K ranked labels, row-major). */
export function topkAccuracy(ranked: ArrayLike<number>, K: number, labels: ArrayLike<number>, k: number): number {
  const n = labels.length;
  if (n === 0) return Number.NaN;
  let hit = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < Math.min(k, K); j++) {
      if (ranked[i * K + j] === labels[i]) {
        hit++;
        break;
      }
    }
  }
  return hit / n;
}

/** Mean and spread (sample standard deviation, 0 for one value) of finite numbers. */
export function meanStd(xs: number[]): { mean: number; std: number; n: number } {
  const ok = xs.filter((x) => Number.isFinite(x));
  const n = ok.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN, n };
  const mean = ok.reduce((a, b) => a + b, 0) / n;
  const std = n > 1 ? Math.sqrt(ok.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}
