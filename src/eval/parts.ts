// The part-aware study's protocol (Zhu et al. 2023, JiePKU/understand-ssl-part-aware; methods.md §6) on
// the part-structured synthetic set, with the same probes at object level as controls:
//  - part crops: square crops centred on each part's keypoint, side from the distance to the nearest
//    other keypoint in the image (moco/loader.py: d = nearest/2, half-side = round(d/2)), clamped to a
//    sane range for 64-px canvases (the reference drops d ≤ 20 px instead: at our scale that drops all);
//  - retrieval: every crop queries all crops (itself included) by cosine similarity, positives = same
//    part type; AP (mean over queries) and mAP (mean over classes), with mean-patch, CLS and projector
//    features (pr_patch_retrieval.py);
//  - a frozen linear classifier on CLS (patch_lincls.py's `linear` head; our sweep protocol, linear.ts);
//  - frozen linear part segmentation (part-type map), and object-class segmentation as the control.
// Object level: crops of each object's box (a square around it) → the same retrieval and classification.
import type { DatasetSpec, SampleObject } from '../data/datasets.js';
import type { Box, Image } from '../data/types.js';
import { noGrad, normalize, type Tensor, tidy } from '../engine/index.js';
import type { Interval } from './bootstrap.js';
import { cropPad, pyRound } from './crops.js';

export { cropPad, pyRound } from './crops.js';

import {
  type EvalContext,
  embedSet,
  type ImageSet,
  type MaskSet,
  type ProbeHeader,
  probeHeader,
  timer,
} from './common.js';
import { disposeFeatures, type FeatureKind, type FeatureSet } from './features.js';
import type { ImageFeature } from './imagefeat.js';
import {
  disposeHead,
  LINEAR_SWEEP_DEFAULTS,
  type LinearSweepOptions,
  linearSweep,
  type SweepResult,
} from './linear.js';
import { retrievalAp } from './metrics.js';
import {
  disposeSegHead,
  loadMaskSplits,
  SEG_TRAIN_DEFAULTS,
  type SegProbeScores,
  type SegTrainOptions,
  segProbe,
} from './seg.js';

export interface CropRule {
  minSide: number; // px on a 64-px canvas (scaled by canvas/64)
  maxSide: number;
}

export const CROP_DEFAULTS: CropRule = { minSide: 16, maxSide: 32 };

export interface Crop {
  image: number; // index in the set
  box: Box; // integer pixel box [x0, y0, x1, y1), may extend past the canvas (zero padded)
  label: number;
}

/**
 * Part crop boxes of one image. For keypoint k: d = (distance to the nearest other keypoint)/2,
 * half = round(d/2), side = 2·half clamped to [minSide, maxSide]·canvas/64, box centred on k with its
 * corners rounded (PIL's crop rounds a float box). A lone keypoint gets the largest side.
 */
export function partCropBoxes(
  objects: SampleObject[],
  canvas: number,
  rule: CropRule = CROP_DEFAULTS,
): { box: Box; label: number; side: number }[] {
  const kps: { x: number; y: number; type: number }[] = [];
  for (const ob of objects)
    for (const p of ob.parts ?? []) kps.push({ x: p.keypoint[0], y: p.keypoint[1], type: p.type });
  const scale = canvas / 64;
  return kps.map((k, i) => {
    let near = Number.POSITIVE_INFINITY;
    kps.forEach((q, j) => {
      const dd = Math.hypot(q.x - k.x, q.y - k.y);
      if (j !== i && dd > 0) near = Math.min(near, dd); // the reference sets zero distances (duplicates) to ∞
    });
    const d = near / 2;
    const side = Number.isFinite(d) ? 2 * pyRound(d / 2) : Number.POSITIVE_INFINITY;
    const s = Math.min(rule.maxSide * scale, Math.max(rule.minSide * scale, side));
    const h = s / 2;
    return {
      box: [pyRound(k.x - h), pyRound(k.y - h), pyRound(k.x + h), pyRound(k.y + h)] as Box,
      label: k.type,
      side: s,
    };
  });
}

/** Object crop: the square of side max(w, h) around the object's box centre (corners rounded). */
export function objectCropBox(ob: SampleObject): Box {
  const [x0, y0, x1, y1] = ob.box;
  const s = Math.max(x1 - x0, y1 - y0);
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  return [pyRound(cx - s / 2), pyRound(cy - s / 2), pyRound(cx + s / 2), pyRound(cy + s / 2)];
}

function cropSet(src: MaskSet, crops: Crop[]): ImageSet {
  const imgs = src.sourceImages as Image[];
  return {
    spec: src.spec,
    indices: src.indices,
    n: crops.length,
    image: async (i) => cropPad(imgs[(crops[i] as Crop).image] as Image, (crops[i] as Crop).box),
  };
}

function partCrops(set: MaskSet, rule: CropRule): Crop[] {
  const out: Crop[] = [];
  (set.objects ?? []).forEach((objs, i) => {
    for (const c of partCropBoxes(objs, set.width, rule)) out.push({ image: i, box: c.box, label: c.label });
  });
  return out;
}

function objectCrops(set: MaskSet): Crop[] {
  const out: Crop[] = [];
  (set.objects ?? []).forEach((objs, i) => {
    for (const ob of objs) out.push({ image: i, box: objectCropBox(ob), label: ob.cls });
  });
  return out;
}

/** Retrieval AP/mAP with features [n, D] (cosine similarity, the query included among the results). */
export function retrievalScores(
  x: Tensor,
  labels: number[],
): { ap: number; map: number; per_class_ap: Record<string, number> } {
  const sims = noGrad(() =>
    tidy(() => {
      const z = normalize(x, 1);
      return z.matmul(z.T);
    }),
  );
  const a = sims.toArray() as Float32Array;
  sims.dispose();
  return retrievalAp(a, labels);
}

export interface LevelResult {
  classes: number;
  class_names: string[];
  n_train_crops: number;
  n_test_crops: number;
  retrieval: Record<string, { ap: number; map: number; per_class_ap: Record<string, number> }>; // by feature: mean_patch, cls, projector
  linear: {
    top1: number; // CLS
    top1_ci: Interval;
    top5: number;
    best: { lr: number; wd: number; val_top1: number };
    train_top1: number;
    /** Every readout: CLS, mean patch token, and the method's own token where it has one. */
    by_feature: Partial<Record<ImageFeature, { top1: number; top1_ci: Interval; top5: number }>>;
  };
  seg: SegProbeScores;
}

export interface PartsOptions {
  train: DatasetSpec;
  test: DatasetSpec;
  crop: CropRule;
  linear: LinearSweepOptions;
  seg: SegTrainOptions;
  seed: number;
}

/** 200 train / 100 eval part scenes (≈ 1,400 / 700 part crops, 400 / 200 object crops). */
export const PARTS_DEFAULTS: PartsOptions = {
  train: { kind: 'parts', split: 'train', length: 200 },
  test: { kind: 'parts', split: 'eval', length: 100 },
  crop: CROP_DEFAULTS,
  linear: { ...LINEAR_SWEEP_DEFAULTS },
  seg: { ...SEG_TRAIN_DEFAULTS },
  seed: 0,
};

export interface PartsResult extends ProbeHeader {
  kind: 'parts';
  part: LevelResult;
  object: LevelResult;
  /** object − part for each measure (positive: the encoder is better at whole objects than at parts). */
  gap: {
    linear_top1: number;
    retrieval_map_cls: number;
    retrieval_map_mean_patch: number;
    seg_miou: number;
    retrieval_map_projector?: number;
  };
  part_acc: number;
  part_acc_ci: Interval;
  object_acc: number;
  object_acc_ci: Interval;
  part_map: number; // retrieval mAP with mean-patch features (the study's "embedding")
  object_map: number;
  part_miou: number;
  part_miou_ci: Interval;
  object_miou: number;
  object_miou_ci: Interval;
  hyper: Omit<PartsOptions, 'train' | 'test'>;
  crop_note: string;
}

async function level(
  ctx: EvalContext,
  name: 'part' | 'object',
  train: MaskSet,
  test: MaskSet,
  crops: [Crop[], Crop[]],
  classNames: string[],
  seg: {
    patches: [Tensor, Tensor];
    grid: [number, number];
    masks: [Uint8Array[], Uint8Array[]];
    classes: number;
    names: string[];
  },
  o: PartsOptions,
): Promise<LevelResult> {
  const feats: ImageFeature[] = ctx.bb.imageToken ? ['cls', 'mean', 'attn'] : ['cls', 'mean'];
  const kinds: FeatureKind[] = [...feats];
  if (ctx.bb.projector) kinds.push('proj');
  const extra = { crops: name, rule: name === 'part' ? o.crop : 'object-box-square' };
  const ftr: FeatureSet = await embedSet(ctx, cropSet(train, crops[0]), feats, `parts: ${name} train`, extra);
  const fte: FeatureSet = await embedSet(ctx, cropSet(test, crops[1]), kinds, `parts: ${name} test`, extra);
  const ytr = crops[0].map((c) => c.label);
  const yte = crops[1].map((c) => c.label);
  const named = (r: ReturnType<typeof retrievalScores>) => ({
    ...r,
    per_class_ap: Object.fromEntries(Object.entries(r.per_class_ap).map(([c, v]) => [classNames[Number(c)] ?? c, v])),
  });
  const retrieval: LevelResult['retrieval'] = {
    mean_patch: named(retrievalScores(fte.mean as Tensor, yte)),
    cls: named(retrievalScores(fte.cls as Tensor, yte)),
  };
  if (fte.proj) retrieval.projector = named(retrievalScores(fte.proj, yte));
  const byFeature: LevelResult['linear']['by_feature'] = {};
  let result: SweepResult | null = null;
  for (const f of feats) {
    const r = linearSweep(ftr[f] as Tensor, ytr, fte[f] as Tensor, yte, classNames.length, {
      ...o.linear,
      seed: o.seed,
    });
    disposeHead(r.head);
    byFeature[f] = { top1: r.result.top1, top1_ci: r.result.top1_ci, top5: r.result.top5 };
    if (f === 'cls') result = r.result;
  }
  if (!result) throw new Error('parts: no CLS result');
  disposeFeatures(ftr);
  disposeFeatures(fte);
  const sp = segProbe(
    { patches: seg.patches[0], masks: seg.masks[0] },
    { patches: seg.patches[1], masks: seg.masks[1] },
    seg.grid,
    [train.height, train.width],
    seg.classes,
    train.ignoreIndex,
    seg.names,
    { ...o.seg, seed: o.seed },
  );
  disposeSegHead(sp.head);
  return {
    classes: classNames.length,
    class_names: classNames,
    n_train_crops: crops[0].length,
    n_test_crops: crops[1].length,
    retrieval,
    linear: {
      top1: result.top1,
      top1_ci: result.top1_ci,
      top5: result.top5,
      best: result.best,
      train_top1: result.train_top1,
      by_feature: byFeature,
    },
    seg: sp.scores,
  };
}

export async function partsEval(ctx: EvalContext, opts: Partial<PartsOptions> = {}): Promise<PartsResult> {
  const o: PartsOptions = { ...PARTS_DEFAULTS, ...opts, seed: opts.seed ?? ctx.seed };
  const t = timer();
  const [train, test] = await loadMaskSplits(o.train, o.test, 0.2, o.seed, true);
  if (!train.objects || !train.partMasks || !test.objects || !test.partMasks || !train.partTypes)
    throw new Error(`parts probe: needs the part-structured dataset (kind 'parts'), got '${o.train.kind}'`);
  const sceneF = [
    await embedSet(ctx, train, ['patches'], 'parts: scenes train'),
    await embedSet(ctx, test, ['patches'], 'parts: scenes test'),
  ] as const;
  const patches: [Tensor, Tensor] = [sceneF[0].patches as Tensor, sceneF[1].patches as Tensor];
  const grid = sceneF[0].grid;
  const partNames = [...train.partTypes];
  const objectNames = train.classNames.slice(1); // drop 'background'
  const part = await level(
    ctx,
    'part',
    train,
    test,
    [partCrops(train, o.crop), partCrops(test, o.crop)],
    partNames,
    {
      patches,
      grid,
      masks: [train.partMasks, test.partMasks],
      classes: partNames.length + 1,
      names: ['background', ...partNames],
    },
    o,
  );
  const object = await level(
    ctx,
    'object',
    train,
    test,
    [objectCrops(train), objectCrops(test)],
    objectNames,
    {
      patches,
      grid,
      masks: [train.masks, test.masks],
      classes: train.classes,
      names: train.classNames,
    },
    o,
  );
  disposeFeatures(sceneF[0]);
  disposeFeatures(sceneF[1]);
  const gap: PartsResult['gap'] = {
    linear_top1: object.linear.top1 - part.linear.top1,
    retrieval_map_cls: (object.retrieval.cls?.map ?? Number.NaN) - (part.retrieval.cls?.map ?? Number.NaN),
    retrieval_map_mean_patch:
      (object.retrieval.mean_patch?.map ?? Number.NaN) - (part.retrieval.mean_patch?.map ?? Number.NaN),
    seg_miou: object.seg.miou - part.seg.miou,
  };
  if (part.retrieval.projector && object.retrieval.projector)
    gap.retrieval_map_projector = object.retrieval.projector.map - part.retrieval.projector.map;
  const { train: _tr, test: _te, ...hyper } = o;
  return {
    ...probeHeader(
      ctx,
      'parts',
      { train: train.spec, test: test.spec, n_train: train.n, n_test: test.n },
      { total_s: t.total() },
    ),
    kind: 'parts',
    part,
    object,
    gap,
    part_acc: part.linear.top1,
    part_acc_ci: part.linear.top1_ci,
    object_acc: object.linear.top1,
    object_acc_ci: object.linear.top1_ci,
    part_map: part.retrieval.mean_patch?.map ?? Number.NaN,
    object_map: object.retrieval.mean_patch?.map ?? Number.NaN,
    part_miou: part.seg.miou,
    part_miou_ci: part.seg.miou_ci,
    object_miou: object.seg.miou,
    object_miou_ci: object.seg.miou_ci,
    hyper,
    crop_note:
      'part crop side = 2·round(d/2) with d = half the distance to the nearest other keypoint in the image (reference), clamped to [minSide, maxSide]·canvas/64; object crop = square of side max(w, h) around the object box; crops zero-padded past the canvas and resized to the eval input',
  };
}
