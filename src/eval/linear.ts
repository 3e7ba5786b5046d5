// Linear classifiers on frozen features: the generic trainer (also used by the location and part
// probes) and the `linear` probe on the CLS token (optionally CLS + mean patch token).
//
// Protocol: features are standardised with the training set's per-dimension mean/std (MAE's
// BatchNorm-without-affine before the head: it makes one lr grid fit every backbone), the head starts
// at zero, SGD with momentum 0.9 and a cosine lr schedule over a fixed number of epochs (DINO's
// eval_linear, without augmentation: the features are precomputed). lr × wd is swept on a validation
// split carved from train; the best setting is refit on the whole train set and scored on the test set.

import { deriveSeed, Rng } from '../data/rng.js';
import { cat, crossEntropy, keep, linear, noGrad, type Tensor, tensor, tidy, zeros } from '../engine/index.js';
import { SGD } from '../nn/index.js';
import { cosineSchedule } from '../nn/schedules.js';
import { type Interval, meanInterval, roundCi, topkHits } from './bootstrap.js';
import {
  disposeAll,
  type EvalContext,
  embedSet,
  LABELLED_DEFAULTS,
  type LabelledData,
  type ProbeHeader,
  probeHeader,
  timer,
} from './common.js';
import { disposeFeatures, type FeatureKind, type FeatureSet } from './features.js';
import { type ImageFeature, imageFeatureKinds } from './imagefeat.js';
import { topkAccuracy } from './metrics.js';
import { classificationSets, OBJECT_CROP_DEFAULTS, type ObjectCropRule } from './objects.js';

export interface LinearTrainOptions {
  epochs: number;
  batchSize: number;
  momentum: number;
  seed: number;
}

/** A trained head with its standardisation: logits = ((x − mean)/std)·Wᵀ + b. Tensors are kept. */
export interface LinearHead {
  weight: Tensor; // [C, D]
  bias: Tensor; // [C]
  mean: Tensor; // [D]
  std: Tensor; // [D]
}

export function disposeHead(h: LinearHead): void {
  for (const t of [h.weight, h.bias, h.mean, h.std]) t.dispose();
}

/** Per-dimension mean and std (floored at 1e-6 so constant dimensions stay finite). */
export function standardizer(x: Tensor): { mean: Tensor; std: Tensor } {
  return noGrad(() => tidy(() => ({ mean: x.mean(0), std: x.std(0, false).clampMin(1e-6) })));
}

export function linearLogits(h: LinearHead, x: Tensor): Tensor {
  return tidy(() => linear(x.sub(h.mean).div(h.std), h.weight, h.bias));
}

/** The top-k labels per row, best first: a row-major n×k array. */
export function rankedPredictions(logits: Tensor, k: number): { ranked: number[]; k: number } {
  const kk = Math.min(k, logits.shape[1] as number);
  const idx = tidy(() => logits.topk(kk, 1)[1]);
  const ranked = idx.toNumbers();
  idx.dispose();
  return { ranked, k: kk };
}

/**
 * Trains a linear softmax classifier on x [N, D] with labels y (0..classes-1) by minibatch SGD.
 * Deterministic for a given seed (zero init, seeded shuffles).
 */
export function trainLinear(
  x: Tensor,
  y: ArrayLike<number>,
  classes: number,
  hp: { lr: number; wd: number },
  o: LinearTrainOptions,
): LinearHead {
  const N = x.shape[0] as number;
  const D = x.shape[1] as number;
  if (y.length !== N) throw new Error(`linear: ${N} feature rows but ${y.length} labels`);
  for (let i = 0; i < N; i++) {
    const v = y[i] as number;
    if (!(Number.isInteger(v) && v >= 0 && v < classes))
      throw new Error(`linear: label ${v} outside 0..${classes - 1}`);
  }
  const { mean, std } = standardizer(x);
  const xs = noGrad(() => tidy(() => x.sub(mean).div(std)));
  const yt = tensor(Array.from(y), [N], { dtype: 'int64' });
  const weight = keep(zeros([classes, D]).requiresGrad_(true));
  const bias = keep(zeros([classes]).requiresGrad_(true));
  const opt = new SGD(
    [
      { params: [weight], lr: hp.lr, weightDecay: hp.wd },
      { params: [bias], lr: hp.lr, weightDecay: 0 },
    ],
    { momentum: o.momentum },
  );
  const bs = Math.min(o.batchSize, N);
  const perEpoch = Math.ceil(N / bs);
  const lrs = cosineSchedule(hp.lr, 0, o.epochs * perEpoch);
  const rng = new Rng(deriveSeed(o.seed, 0x11ea7));
  const order = Array.from({ length: N }, (_, i) => i);
  let step = 0;
  try {
    for (let e = 0; e < o.epochs; e++) {
      rng.shuffle(order);
      for (let s = 0; s < N; s += bs) {
        const lr = lrs[step++] as number;
        opt.setSchedule(lr); // the lr only: weight decay stays as constructed
        tidy(() => {
          const idx = tensor(order.slice(s, s + bs), undefined, { dtype: 'int64' });
          const loss = crossEntropy(linear(xs.indexSelect(0, idx), weight, bias), yt.indexSelect(0, idx));
          loss.backward();
        });
        opt.step();
        opt.zeroGrad();
      }
    }
  } finally {
    xs.dispose();
    yt.dispose();
    for (const t of opt.stateTensors().values()) t.dispose();
  }
  weight.requiresGrad_(false);
  bias.requiresGrad_(false);
  return { weight, bias, mean: keep(mean), std: keep(std) };
}

export interface LinearSweepOptions extends LinearTrainOptions {
  lrs: number[];
  wds: number[];
  valFraction: number; // carved from train for the sweep
}

export const LINEAR_SWEEP_DEFAULTS: LinearSweepOptions = {
  lrs: [0.01, 0.1, 1],
  wds: [0, 1e-3],
  valFraction: 0.2,
  epochs: 100,
  batchSize: 256,
  momentum: 0.9,
  seed: 0,
};

export interface SweepResult {
  best: { lr: number; wd: number; val_top1: number };
  grid: { lr: number; wd: number; val_top1: number }[];
  top1: number;
  top1_ci: Interval; // 95% bootstrap over test samples
  top5: number;
  top5_ci: Interval;
  train_top1: number;
  n_train: number;
  n_val: number;
  n_test: number;
}

/** Per-sample 0/1 top-k hits of a head on (x, y). */
export function headHits(h: LinearHead, x: Tensor, y: ArrayLike<number>, k = 1): Uint8Array {
  const logits = noGrad(() => linearLogits(h, x));
  const { ranked, k: kk } = rankedPredictions(logits, k);
  logits.dispose();
  return topkHits(ranked, kk, y, k);
}

/** Top-1 of a head on (x, y). */
export function headAccuracy(h: LinearHead, x: Tensor, y: ArrayLike<number>, k = 1): number {
  const logits = noGrad(() => linearLogits(h, x));
  const { ranked, k: kk } = rankedPredictions(logits, k);
  logits.dispose();
  return topkAccuracy(ranked, kk, y, k);
}

/**
 * The sweep: each (lr, wd) trained on train minus a validation split and scored on it; the best is
 * refit on all of train and scored on test. Returns the fitted head too (kept; dispose it).
 */
export function linearSweep(
  trainX: Tensor,
  trainY: ArrayLike<number>,
  testX: Tensor,
  testY: ArrayLike<number>,
  classes: number,
  o: LinearSweepOptions,
): { result: SweepResult; head: LinearHead } {
  const N = trainX.shape[0] as number;
  const perm = new Rng(deriveSeed(o.seed, 0x5a11d)).shuffle(Array.from({ length: N }, (_, i) => i));
  const nVal = o.lrs.length * o.wds.length > 1 ? Math.max(1, Math.round(N * o.valFraction)) : 0;
  const valIdx = perm.slice(0, nVal);
  const fitIdx = perm.slice(nVal);
  const grid: SweepResult['grid'] = [];
  if (nVal > 0) {
    const [fx, vx] = tidy(() => [
      trainX.indexSelect(0, tensor(fitIdx, undefined, { dtype: 'int64' })),
      trainX.indexSelect(0, tensor(valIdx, undefined, { dtype: 'int64' })),
    ]);
    const fy = fitIdx.map((i) => trainY[i] as number);
    const vy = valIdx.map((i) => trainY[i] as number);
    for (const lr of o.lrs) {
      for (const wd of o.wds) {
        const h = trainLinear(fx as Tensor, fy, classes, { lr, wd }, o);
        grid.push({ lr, wd, val_top1: headAccuracy(h, vx as Tensor, vy) });
        disposeHead(h);
      }
    }
    fx?.dispose();
    vx?.dispose();
  } else grid.push({ lr: o.lrs[0] as number, wd: o.wds[0] as number, val_top1: Number.NaN });
  // Ties keep the first (smallest lr, then smallest wd): the grid order is the tie-break.
  const best = grid.reduce((a, b) => (b.val_top1 > a.val_top1 ? b : a));
  const head = trainLinear(trainX, trainY, classes, best, o);
  const h1 = headHits(head, testX, testY, 1);
  const h5 = headHits(head, testX, testY, 5);
  const mean = (h: Uint8Array) => h.reduce((a, b) => a + b, 0) / Math.max(1, h.length);
  return {
    head,
    result: {
      best,
      grid,
      top1: mean(h1),
      top1_ci: roundCi(meanInterval(h1, o.seed)),
      top5: mean(h5),
      top5_ci: roundCi(meanInterval(h5, o.seed)),
      train_top1: headAccuracy(head, trainX, trainY, 1),
      n_train: N,
      n_val: nVal,
      n_test: testX.shape[0] as number,
    },
  };
}

// ---------------------------------------------------------------- the `linear` probe

export type LinearFeature = ImageFeature | 'cls+mean';

export interface LinearProbeOptions extends LinearSweepOptions, LabelledData {
  feature: LinearFeature; // the headline (top1/top5)
  features: LinearFeature[]; // every readout scored (by_feature)
  data: string | null; // a named preset (objects.ts LABELLED_PRESETS) replacing train/test; null = as given
  objectCrop: ObjectCropRule; // for scenes/parts data: item crops with context
}

export const LINEAR_DEFAULTS: LinearProbeOptions = {
  ...LINEAR_SWEEP_DEFAULTS,
  ...LABELLED_DEFAULTS,
  feature: 'cls',
  features: ['cls', 'mean'],
  data: null,
  objectCrop: OBJECT_CROP_DEFAULTS,
};

export interface LinearProbeResult extends ProbeHeader {
  kind: 'linear';
  top1: number;
  top1_ci: Interval;
  top5: number;
  top5_ci: Interval;
  feature: LinearFeature;
  chance: number;
  classes: number;
  sweep: SweepResult;
  by_feature: Partial<Record<LinearFeature, SweepResult>>;
  hyper: Omit<LinearProbeOptions, 'train' | 'test'>;
}

const parts = (f: LinearFeature): ImageFeature[] => (f === 'cls+mean' ? ['cls', 'mean'] : [f]);

/** Linear classifier on frozen features (CLS, mean patch token, CLS ⊕ mean, a method's token) of a labelled image set. */
export async function linearEval(ctx: EvalContext, opts: Partial<LinearProbeOptions> = {}): Promise<LinearProbeResult> {
  const o: LinearProbeOptions = { ...LINEAR_DEFAULTS, ...opts, seed: opts.seed ?? ctx.seed };
  const t = timer();
  const feats = [...new Set([o.feature, ...o.features])];
  const kinds: FeatureKind[] = imageFeatureKinds(ctx, [...new Set(feats.flatMap(parts))]);
  const [train, test] = await classificationSets(o, o.seed);
  const ftr = await embedSet(ctx, train, kinds, 'linear: train');
  const fte = await embedSet(ctx, test, kinds, 'linear: test');
  const extractS = t.lap();
  const pick = (f: FeatureSet, which: LinearFeature) =>
    which === 'cls+mean' ? cat([f.cls as Tensor, f.mean as Tensor], 1) : (f[which] as Tensor).alias();
  const classes = Math.max(train.classes, test.classes);
  const byFeature: Partial<Record<LinearFeature, SweepResult>> = {};
  for (const f of feats) {
    const xtr = pick(ftr, f);
    const xte = pick(fte, f);
    const { result, head } = linearSweep(xtr, train.labels, xte, test.labels, classes, o);
    byFeature[f] = result;
    disposeHead(head);
    disposeAll(xtr, xte);
  }
  disposeFeatures(ftr);
  disposeFeatures(fte);
  const result = byFeature[o.feature] as SweepResult;
  const { train: _tr, test: _te, ...hyper } = o;
  return {
    ...probeHeader(
      ctx,
      'linear',
      { train: train.spec, test: test.spec, n_train: train.n, n_test: test.n },
      { extract_s: extractS, fit_s: t.lap(), total_s: t.total() },
    ),
    kind: 'linear',
    top1: result.top1,
    top1_ci: result.top1_ci,
    top5: result.top5,
    top5_ci: result.top5_ci,
    feature: o.feature,
    chance: 1 / classes,
    classes,
    sweep: result,
    by_feature: byFeature,
    hyper,
  };
}
