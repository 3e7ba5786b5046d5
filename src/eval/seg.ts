// Linear segmentation probe on frozen patch tokens, DINOv2's linear head (BNHead): BatchNorm over the
// token channels, a 1×1 classifier (a linear map per patch), logits upsampled bilinearly to the label
// resolution, cross-entropy with the ignore index. AdamW with a poly (power 0.9) schedule as mmseg.
// Scored by a confusion matrix at label resolution: mIoU, pixel accuracy, per-class IoU.

import { dirname, join } from 'node:path';
import type { DatasetSpec } from '../data/datasets.js';
import { deriveSeed, Rng } from '../data/rng.js';
import {
  batchNorm,
  crossEntropy,
  interpolate,
  keep,
  linear,
  noGrad,
  ones,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from '../engine/index.js';
import { saveTensors } from '../engine/io.js';
import { AdamW } from '../nn/index.js';
import { type Interval, roundCi, segIntervals } from './bootstrap.js';
import {
  type EvalContext,
  embedSet,
  loadMasks,
  type MaskSet,
  type ProbeHeader,
  probeHeader,
  splitIndices,
  timer,
} from './common.js';
import { disposeFeatures } from './features.js';
import { accumulateConfusion, type Confusion, emptyConfusion, type SegScores, segScores } from './metrics.js';
import { SEG_SAMPLES_FILE, saveSegSamples } from './samples.js';

export interface SegTrainOptions {
  steps: number;
  batchSize: number; // images per step
  lr: number;
  wd: number;
  seed: number;
}

// lr: mmseg's linear heads train 40k+ iterations at ~1e-3; in 500 steps the head is still moving at 1e-3
// (a 100-step DINO checkpoint: mIoU 6.7 at 1e-3, 7.2 at 3e-3, 8.4 at 1e-2, 8.7 at 3e-2, 8.1 at 1e-1).
export const SEG_TRAIN_DEFAULTS: SegTrainOptions = { steps: 500, batchSize: 16, lr: 1e-2, wd: 1e-4, seed: 0 };

/** BN (affine, running stats) + linear classifier. Tensors are kept; dispose with disposeSegHead. */
export interface SegHead {
  bnWeight: Tensor; // [D]
  bnBias: Tensor;
  runningMean: Tensor;
  runningVar: Tensor;
  weight: Tensor; // [C, D]
  bias: Tensor; // [C]
  classes: number;
  grid: [number, number];
}

export function disposeSegHead(h: SegHead): void {
  for (const t of [h.bnWeight, h.bnBias, h.runningMean, h.runningVar, h.weight, h.bias]) t.dispose();
}

/** Logits at label resolution: patches [B, h·w, D] → [B, C, H, W]. */
export function segLogits(h: SegHead, patches: Tensor, size: [number, number], training = false): Tensor {
  return tidy(() => {
    const [B, N, D] = patches.shape as [number, number, number];
    const [gh, gw] = h.grid;
    if (N !== gh * gw) throw new Error(`seg head: ${N} tokens for a ${gh}x${gw} grid`);
    const x = batchNorm(patches.reshape(B * N, D), {
      weight: h.bnWeight,
      bias: h.bnBias,
      runningMean: h.runningMean,
      runningVar: h.runningVar,
      training,
    });
    const logits = linear(x, h.weight, h.bias).reshape(B, gh, gw, h.classes).permute(0, 3, 1, 2);
    return interpolate(logits, size, 'bilinear', false);
  });
}

/** Trains the head on patch tokens [N, h·w, D] against masks (N arrays of H·W labels). */
export function trainSegHead(
  patches: Tensor,
  grid: [number, number],
  masks: Uint8Array[],
  size: [number, number],
  classes: number,
  ignoreIndex: number,
  o: SegTrainOptions,
): SegHead {
  const [N, , D] = patches.shape as [number, number, number];
  if (masks.length !== N) throw new Error(`seg: ${N} feature rows but ${masks.length} masks`);
  const HW = size[0] * size[1];
  const params = {
    bnWeight: keep(ones([D]).requiresGrad_(true)),
    bnBias: keep(zeros([D]).requiresGrad_(true)),
    // DINOv2/mmseg init the classifier N(0, 0.01); zero is as good for a convex head and seed-free
    weight: keep(zeros([classes, D]).requiresGrad_(true)),
    bias: keep(zeros([classes]).requiresGrad_(true)),
  };
  const head: SegHead = { ...params, runningMean: keep(zeros([D])), runningVar: keep(ones([D])), classes, grid };
  const opt = new AdamW([
    { params: [params.weight], lr: o.lr, weightDecay: o.wd },
    { params: [params.bnWeight, params.bnBias, params.bias], lr: o.lr, weightDecay: 0 },
  ]);
  const rng = new Rng(deriveSeed(o.seed, 0x5e9));
  const bs = Math.min(o.batchSize, N);
  let order: number[] = [];
  try {
    for (let step = 0; step < o.steps; step++) {
      if (order.length < bs) order = order.concat(rng.shuffle(Array.from({ length: N }, (_, i) => i)));
      const batch = order.splice(0, bs);
      const lab = new Uint8Array(bs * HW);
      for (const [j, i] of batch.entries()) lab.set(masks[i] as Uint8Array, j * HW);
      opt.setSchedule(o.lr * (1 - step / o.steps) ** 0.9); // the lr only: weight decay stays as constructed
      tidy(() => {
        const x = patches.indexSelect(0, tensor(batch, undefined, { dtype: 'int64' }));
        const y = tensor(lab, [bs, size[0], size[1]]).to('int64');
        const loss = crossEntropy(segLogits(head, x, size, true), y, { ignoreIndex });
        loss.backward();
      });
      opt.step();
      opt.zeroGrad();
    }
  } finally {
    for (const t of opt.stateTensors().values()) t.dispose();
  }
  for (const p of Object.values(params)) p.requiresGrad_(false);
  return head;
}

/** Argmax labels per image (uint8, H·W each). */
export function predictSeg(h: SegHead, patches: Tensor, size: [number, number], chunk = 32): Uint8Array[] {
  const out: Uint8Array[] = [];
  const N = patches.shape[0] as number;
  const HW = size[0] * size[1];
  noGrad(() => {
    for (let s = 0; s < N; s += chunk) {
      const b = Math.min(chunk, N - s);
      const pred = tidy(() =>
        segLogits(h, patches.narrow(0, s, b), size)
          .argmax(1)
          .to('uint8'),
      );
      const a = pred.toArray() as Uint8Array;
      pred.dispose();
      for (let j = 0; j < b; j++) out.push(a.slice(j * HW, (j + 1) * HW));
    }
  });
  return out;
}

export function scorePredictions(
  pred: Uint8Array[],
  gt: Uint8Array[],
  classes: number,
  ignoreIndex: number,
): SegScores {
  const m: Confusion = emptyConfusion(classes);
  for (const [i, p] of pred.entries()) accumulateConfusion(m, gt[i] as Uint8Array, p, ignoreIndex);
  return segScores(m);
}

/** Scores with 95% bootstrap intervals over test images (mIoU, pixel accuracy, per-class IoU). */
export function scoreWithIntervals(
  pred: Uint8Array[],
  gt: Uint8Array[],
  classes: number,
  ignoreIndex: number,
  seed = 0,
): SegScores & ReturnType<typeof segIntervals> {
  const per = pred.map((p, i) => accumulateConfusion(emptyConfusion(classes), gt[i] as Uint8Array, p, ignoreIndex));
  const m: Confusion = emptyConfusion(classes);
  for (const c of per)
    for (let k = 0; k < c.counts.length; k++) m.counts[k] = (m.counts[k] as number) + (c.counts[k] as number);
  const ci = segIntervals(per, seed);
  return {
    ...segScores(m),
    miou_ci: roundCi(ci.miou_ci),
    pixel_acc_ci: roundCi(ci.pixel_acc_ci),
    per_class_iou_ci: ci.per_class_iou_ci.map((c) => (c ? roundCi(c) : null)),
  };
}

export interface SegProbeScores extends SegScores {
  miou_ci: Interval;
  pixel_acc_ci: Interval;
  per_class_iou_ci: (Interval | null)[];
  class_names: string[];
  train_miou: number;
}

/** Train on (trainPatches, trainMasks), score on the test set. Returns the head (kept) too. */
export function segProbe(
  train: { patches: Tensor; masks: Uint8Array[] },
  test: { patches: Tensor; masks: Uint8Array[] },
  grid: [number, number],
  size: [number, number],
  classes: number,
  ignoreIndex: number,
  classNames: string[],
  o: SegTrainOptions,
): { scores: SegProbeScores; head: SegHead } {
  const head = trainSegHead(train.patches, grid, train.masks, size, classes, ignoreIndex, o);
  const scores = scoreWithIntervals(predictSeg(head, test.patches, size), test.masks, classes, ignoreIndex, o.seed);
  // Training-set mIoU on up to 64 images: a gap to the test number flags over-fitting of the head.
  const nt = Math.min(64, train.masks.length);
  const sub = train.patches.narrow(0, 0, nt);
  const trainScores = scorePredictions(predictSeg(head, sub, size), train.masks.slice(0, nt), classes, ignoreIndex);
  sub.dispose();
  return { head, scores: { ...scores, class_names: classNames, train_miou: trainScores.miou } };
}

/** Saves a head (for the report's prediction pictures). */
export function saveSegHead(path: string, h: SegHead, meta: Record<string, unknown>): void {
  saveTensors(
    path,
    {
      bn_weight: h.bnWeight,
      bn_bias: h.bnBias,
      running_mean: h.runningMean,
      running_var: h.runningVar,
      weight: h.weight,
      bias: h.bias,
    },
    { classes: String(h.classes), grid: JSON.stringify(h.grid), meta: JSON.stringify(meta) },
  );
}

// ---------------------------------------------------------------- the `seg` probe

export interface SegOptions extends SegTrainOptions {
  train: DatasetSpec;
  test: DatasetSpec | null; // null: hold out testFraction of train
  testFraction: number;
  saveHead?: string; // path of a safetensors file for the trained head
}

/** Default: Fashion-MNIST scenes, 800 train scenes and 200 eval scenes (test items only), 64 px. */
export const SEG_DEFAULTS: SegOptions = {
  ...SEG_TRAIN_DEFAULTS,
  train: { kind: 'scenes', split: 'train', length: 800 },
  test: { kind: 'scenes', split: 'eval', length: 200 },
  testFraction: 0.2,
};

export interface SegResult extends ProbeHeader, SegProbeScores {
  kind: 'seg';
  label_size: [number, number];
  grid: [number, number];
  ignore_index: number;
  miou_note: string;
  hyper: Omit<SegOptions, 'train' | 'test'>;
}

export const MIOU_NOTE =
  'mIoU = mean over classes of TP/(TP+FP+FN) from one confusion matrix over all test pixels; classes absent from both ground truth and predictions are excluded (per_class_iou null); background is class 0 and counts; pixels labelled ignore_index are skipped';

export async function loadMaskSplits(
  train: DatasetSpec,
  test: DatasetSpec | null,
  frac: number,
  seed: number,
  keepImages = false,
): Promise<[MaskSet, MaskSet]> {
  if (test) return [await loadMasks(train, undefined, keepImages), await loadMasks(test, undefined, keepImages)];
  const all = await loadMasks(train);
  const [a, b] = splitIndices(all.n, frac, seed);
  return [await loadMasks(all.spec, a, keepImages), await loadMasks(all.spec, b, keepImages)];
}

/**
 * A dense probe's train and test mask sets (one label size and class count, else an error naming the probe)
 * and their patch features: what seg and nnseg both start from.
 */
export async function denseSplits(
  ctx: EvalContext,
  o: { train: DatasetSpec; test: DatasetSpec | null; testFraction: number; seed: number },
  probe: string,
) {
  const [train, test] = await loadMaskSplits(o.train, o.test, o.testFraction, o.seed);
  if (train.width !== test.width || train.height !== test.height || train.classes !== test.classes)
    throw new Error(`${probe}: train and test sets differ in label size or class count`);
  const ftr = await embedSet(ctx, train, ['patches'], `${probe}: train`);
  const fte = await embedSet(ctx, test, ['patches'], `${probe}: test`);
  return { train, test, ftr, fte };
}

export async function segEval(ctx: EvalContext, opts: Partial<SegOptions> = {}): Promise<SegResult> {
  const o: SegOptions = { ...SEG_DEFAULTS, ...opts, seed: opts.seed ?? ctx.seed };
  const t = timer();
  const { train, test, ftr, fte } = await denseSplits(ctx, o, 'seg');
  const extractS = t.lap();
  const size: [number, number] = [train.height, train.width];
  const { scores, head } = segProbe(
    { patches: ftr.patches as Tensor, masks: train.masks },
    { patches: fte.patches as Tensor, masks: test.masks },
    ftr.grid,
    size,
    train.classes,
    train.ignoreIndex,
    train.classNames,
    o,
  );
  const fitS = t.lap();
  if (o.saveHead) saveSegHead(o.saveHead, head, { input: ctx.input, backbone: ctx.bb.hash, label_size: size });
  if (o.saveHead) await saveSegSamples(join(dirname(o.saveHead), SEG_SAMPLES_FILE), test); // the report's pictures
  disposeSegHead(head);
  disposeFeatures(ftr);
  disposeFeatures(fte);
  const { train: _tr, test: _te, ...hyper } = o;
  return {
    ...probeHeader(
      ctx,
      'seg',
      { train: train.spec, test: test.spec, n_train: train.n, n_test: test.n },
      { extract_s: extractS, fit_s: fitS, total_s: t.total() },
    ),
    kind: 'seg',
    ...scores,
    label_size: size,
    grid: ftr.grid,
    ignore_index: train.ignoreIndex,
    miou_note: MIOU_NOTE,
    hyper,
  };
}
