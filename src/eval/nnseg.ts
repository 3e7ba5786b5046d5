// Training-free dense probe (issue 11 item 5): patch nearest-neighbour label retrieval, as the "Hummingbird"
// in-context scene-understanding evaluation (Balažević et al. 2023). The memory bank holds every train
// patch token (L2-normalised) with its label distribution (the class fractions of the pixels it covers);
// each eval patch takes the k most cosine-similar bank patches and averages their distributions with
// weights softmax(sim / T); the per-patch class scores are upsampled bilinearly to the label resolution and
// the argmax is scored like the seg probe (mIoU, pixel accuracy, per-class IoU, bootstrap intervals).
// Nothing is trained: the result depends only on the features, k and T.
import type { DatasetSpec } from '../data/datasets.js';
import { interpolate, noGrad, normalize, type Tensor, tensor, tidy } from '../engine/index.js';
import type { Interval } from './bootstrap.js';
import { type EvalContext, type ProbeHeader, probeHeader, timer } from './common.js';
import { disposeFeatures } from './features.js';
import type { SegScores } from './metrics.js';
import { denseSplits, MIOU_NOTE, scoreWithIntervals } from './seg.js';

export interface NnSegOptions {
  train: DatasetSpec;
  test: DatasetSpec | null;
  testFraction: number;
  k: number; // neighbours per eval patch
  temperature: number; // softmax temperature on cosine similarities
  chunk: number; // eval patches per similarity block
  seed: number;
}

export const NNSEG_DEFAULTS: NnSegOptions = {
  train: { kind: 'scenes', split: 'train', length: 300 },
  test: { kind: 'scenes', split: 'eval', length: 200 },
  testFraction: 0.2,
  k: 30,
  temperature: 0.02,
  chunk: 512,
  seed: 0,
};

/** Class fractions of each patch's pixels: masks [N] of H·W → Float32 [N·gh·gw, C] (ignored pixels left out). */
export function patchHistograms(
  masks: Uint8Array[],
  H: number,
  W: number,
  grid: [number, number],
  classes: number,
  ignoreIndex: number,
): Float32Array {
  const [gh, gw] = grid;
  const out = new Float32Array(masks.length * gh * gw * classes);
  masks.forEach((m, n) => {
    for (let py = 0; py < gh; py++)
      for (let px = 0; px < gw; px++) {
        const row = ((n * gh + py) * gw + px) * classes;
        let total = 0;
        for (let y = Math.floor((py * H) / gh); y < Math.floor(((py + 1) * H) / gh); y++)
          for (let x = Math.floor((px * W) / gw); x < Math.floor(((px + 1) * W) / gw); x++) {
            const v = m[y * W + x] as number;
            if (v === ignoreIndex || v >= classes) continue;
            out[row + v] = (out[row + v] as number) + 1;
            total++;
          }
        if (total > 0) for (let c = 0; c < classes; c++) out[row + c] = (out[row + c] as number) / total;
      }
  });
  return out;
}

/**
 * Label maps of the eval images: trainPatches [N, h·w, D] with their patch histograms [N·h·w, C],
 * testPatches [M, h·w, D] → M uint8 maps of size[0]·size[1].
 */
export function nnSegPredict(
  trainPatches: Tensor,
  trainHist: Float32Array,
  testPatches: Tensor,
  grid: [number, number],
  size: [number, number],
  classes: number,
  o: { k: number; temperature: number; chunk?: number },
): Uint8Array[] {
  const [N, P, D] = trainPatches.shape as [number, number, number];
  const M = testPatches.shape[0] as number;
  const [gh, gw] = grid;
  if (P !== gh * gw) throw new Error(`nnseg: ${P} tokens for a ${gh}x${gw} grid`);
  const bankN = N * P;
  const k = Math.min(o.k, bankN);
  const imgsPerChunk = Math.max(1, Math.floor((o.chunk ?? 512) / P));
  const HW = size[0] * size[1];
  const out: Uint8Array[] = [];
  noGrad(() => {
    const [bank, hist] = tidy(() => [
      normalize(trainPatches.reshape(bankN, D), 1),
      tensor(trainHist, [bankN, classes]),
    ]) as [Tensor, Tensor];
    try {
      for (let s = 0; s < M; s += imgsPerChunk) {
        const b = Math.min(imgsPerChunk, M - s);
        const pred = tidy(() => {
          const q = normalize(testPatches.narrow(0, s, b).reshape(b * P, D), 1);
          const [sim, idx] = q.matmul(bank.T).topk(k, 1); // [bP, k]
          const w = sim.div(o.temperature).softmax(1); // [bP, k]
          const h = hist.indexSelect(0, idx.flatten()).reshape(b * P, k, classes);
          const scores = h.mul(w.unsqueeze(-1)).sum(1); // [bP, C]
          const maps = scores.reshape(b, gh, gw, classes).permute(0, 3, 1, 2);
          return interpolate(maps, size, 'bilinear', false).argmax(1).to('uint8');
        });
        const a = pred.toArray() as Uint8Array;
        pred.dispose();
        for (let j = 0; j < b; j++) out.push(a.slice(j * HW, (j + 1) * HW));
      }
    } finally {
      bank.dispose();
      hist.dispose();
    }
  });
  return out;
}

export interface NnSegResult extends ProbeHeader, SegScores {
  kind: 'nnseg';
  miou_ci: Interval;
  pixel_acc_ci: Interval;
  per_class_iou_ci: (Interval | null)[];
  class_names: string[];
  label_size: [number, number];
  grid: [number, number];
  ignore_index: number;
  bank_patches: number;
  miou_note: string;
  hyper: Omit<NnSegOptions, 'train' | 'test'>;
}

export async function nnSegEval(ctx: EvalContext, opts: Partial<NnSegOptions> = {}): Promise<NnSegResult> {
  const o: NnSegOptions = { ...NNSEG_DEFAULTS, ...opts, seed: opts.seed ?? ctx.seed };
  const t = timer();
  const { train, test, ftr, fte } = await denseSplits(ctx, o, 'nnseg');
  const extractS = t.lap();
  const size: [number, number] = [train.height, train.width];
  const hist = patchHistograms(train.masks, train.height, train.width, ftr.grid, train.classes, train.ignoreIndex);
  const pred = nnSegPredict(ftr.patches as Tensor, hist, fte.patches as Tensor, ftr.grid, size, train.classes, o);
  const scores = scoreWithIntervals(pred, test.masks, train.classes, train.ignoreIndex, o.seed);
  const bank = (ftr.patches as Tensor).shape[0] * (ftr.patches as Tensor).shape[1];
  disposeFeatures(ftr);
  disposeFeatures(fte);
  const { train: _tr, test: _te, ...hyper } = o;
  return {
    ...probeHeader(
      ctx,
      'nnseg',
      { train: train.spec, test: test.spec, n_train: train.n, n_test: test.n },
      { extract_s: extractS, retrieval_s: t.lap(), total_s: t.total() },
    ),
    kind: 'nnseg',
    ...scores,
    class_names: train.classNames,
    label_size: size,
    grid: ftr.grid,
    ignore_index: train.ignoreIndex,
    bank_patches: bank,
    miou_note: MIOU_NOTE,
    hyper,
  };
}
