// Patch-location probe: a linear classifier predicts each patch token's grid cell (h·w classes) from
// the frozen token alone: how much absolute spatial information the features keep (LOCA's pretext task,
// probed). Chance is 1/(h·w). Also the mean distance in cells between predicted and true cell.

import type { DatasetSpec } from '../data/datasets.js';
import { noGrad, type Tensor } from '../engine/index.js';
import { disposeAll, type EvalContext, embedSet, loadImages, type ProbeHeader, probeHeader, timer } from './common.js';
import { disposeFeatures } from './features.js';
import {
  disposeHead,
  LINEAR_SWEEP_DEFAULTS,
  type LinearSweepOptions,
  linearLogits,
  linearSweep,
  rankedPredictions,
} from './linear.js';

export interface LocationOptions extends LinearSweepOptions {
  train: DatasetSpec;
  test: DatasetSpec;
}

/** Scenes (any image set works: only the images are used), 300 train / 100 eval → 19,200 / 6,400 tokens at an 8x8 grid. */
export const LOCATION_DEFAULTS: LocationOptions = {
  ...LINEAR_SWEEP_DEFAULTS,
  lrs: [0.1, 1, 10],
  wds: [0],
  epochs: 10,
  batchSize: 1024,
  train: { kind: 'scenes', split: 'train', length: 300 },
  test: { kind: 'scenes', split: 'eval', length: 100 },
};

export interface LocationResult extends ProbeHeader {
  kind: 'location';
  acc: number; // exact cell, top-1
  acc_ci: [number, number]; // 95% bootstrap over test tokens
  top5: number;
  top5_ci: [number, number];
  acc_within1: number; // predicted cell within one cell (Chebyshev) of the true one
  dist_err: number; // mean Euclidean distance in cells
  chance: number;
  grid: [number, number];
  sweep: {
    best: { lr: number; wd: number; val_top1: number };
    grid: { lr: number; wd: number; val_top1: number }[];
    train_top1: number;
  };
  hyper: Omit<LocationOptions, 'train' | 'test'>;
}

/** Tokens [n, h·w, D] → rows [n·h·w, D] with their cell index as label. */
function tokenRows(patches: Tensor): { x: Tensor; y: number[] } {
  const [n, N, D] = patches.shape as [number, number, number];
  const y = new Array<number>(n * N);
  for (let i = 0; i < n; i++) for (let j = 0; j < N; j++) y[i * N + j] = j;
  return { x: patches.reshape(n * N, D), y };
}

export async function locationEval(ctx: EvalContext, opts: Partial<LocationOptions> = {}): Promise<LocationResult> {
  // a train set of the user's (e.g. a folder) with the default scenes as test would test on other data
  if (opts.train !== undefined && (opts.test === undefined || opts.test === null))
    throw new Error(
      `location: train is set (${opts.train.kind}) but test is not; set test too, e.g. --set test.kind=${opts.train.kind} with its folder`,
    );
  const o: LocationOptions = { ...LOCATION_DEFAULTS, ...opts, seed: opts.seed ?? ctx.seed };
  const t = timer();
  // Only the images matter: any dataset kind works.
  const trSet = await loadImages(o.train);
  const teSet = await loadImages(o.test);
  const ftr = await embedSet(ctx, trSet, ['patches'], 'location: train');
  const fte = await embedSet(ctx, teSet, ['patches'], 'location: test');
  const extractS = t.lap();
  const [gh, gw] = ftr.grid;
  const classes = gh * gw;
  const tr = tokenRows(ftr.patches as Tensor);
  const te = tokenRows(fte.patches as Tensor);
  const { result, head } = linearSweep(tr.x, tr.y, te.x, te.y, classes, o);
  // Distance and within-one-cell accuracy from the top-1 predictions.
  const logits = noGrad(() => linearLogits(head, te.x));
  const { ranked } = rankedPredictions(logits, 1);
  logits.dispose();
  let dist = 0;
  let near = 0;
  ranked.forEach((p, i) => {
    const g = te.y[i] as number;
    const dy = Math.floor(p / gw) - Math.floor(g / gw);
    const dx = (p % gw) - (g % gw);
    dist += Math.hypot(dx, dy);
    if (Math.max(Math.abs(dx), Math.abs(dy)) <= 1) near++;
  });
  disposeHead(head);
  disposeAll(tr.x, te.x);
  disposeFeatures(ftr);
  disposeFeatures(fte);
  const { train: _tr, test: _te, ...hyper } = o;
  return {
    ...probeHeader(
      ctx,
      'location',
      {
        train: trSet.spec,
        test: teSet.spec,
        n_train: trSet.n,
        n_test: teSet.n,
        tokens_train: tr.y.length,
        tokens_test: te.y.length,
      },
      { extract_s: extractS, fit_s: t.lap(), total_s: t.total() },
    ),
    kind: 'location',
    acc: result.top1,
    acc_ci: result.top1_ci, // bootstrap over test tokens
    top5: result.top5,
    top5_ci: result.top5_ci,
    acc_within1: near / ranked.length,
    dist_err: dist / ranked.length,
    chance: 1 / classes,
    grid: [gh, gw],
    sweep: { best: result.best, grid: result.grid, train_top1: result.train_top1 },
    hyper,
  };
}
