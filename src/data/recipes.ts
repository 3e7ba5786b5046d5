// View recipes: plain serialisable configs ({kind, ...}) that workers rebuild, their defaults and
// their validation. Rendering a sample into views is views.ts.
//
// Small-scale defaults (methods.md §8: keep ratios, not pixel sizes): 64x64 sources, global views
// of 32 px and a patch of 4 (8x8 grid), local/focal views of 16 px (4x4 grid; 96/224·32 ≈ 14 → 16).
// View counts follow the references except DINO's locals (6, not 8). Blur σ ranges are given in
// pixels of a 224-px view and scaled by size/224, so at 32 px DINO's U(0.1, 2) becomes
// U(0.014, 0.29) px: nearly a no-op, as CIFAR-scale SSL recipes that drop blur.
import { IMAGENET_MEAN, IMAGENET_STD, type Interp } from './augment.js';
import { SCRL_BOX_DEFAULTS, type ScrlBoxOptions } from './geometry.js';

export type Range = [number, number];
export type Jitter4 = [brightness: number, contrast: number, saturation: number, hue: number];

export interface Normalization {
  mean: [number, number, number];
  std: [number, number, number];
}
const IMAGENET: Normalization = { mean: IMAGENET_MEAN, std: IMAGENET_STD };

export interface MultiCropRecipe {
  kind: 'multicrop';
  globalCount: number; // 2
  globalSize: number; // 32 (DINO 224)
  globalScale: Range; // (0.4, 1); SelfPatch: (0.25, 1)
  localCount: number; // 6 (DINO 8)
  localSize: number; // 16 (DINO 96)
  localScale: Range; // (0.05, 0.4); SelfPatch: (0.05, 0.25)
  ratio: Range; // (3/4, 4/3)
  interp: Interp; // bicubic
  flipP: number; // 0.5
  jitter: Jitter4; // (0.4, 0.4, 0.2, 0.1)
  jitterP: number; // 0.8
  grayP: number; // 0.2
  blurSigma224: Range; // (0.1, 2.0) px at 224
  globalBlurP: number[]; // per global view, the last repeats: (1.0, 0.1)
  localBlurP: number; // 0.5
  globalSolarizeP: number[]; // (0, 0.2)
  localSolarizeP: number; // 0
  normalize: Normalization; // ImageNet
}

export interface LocaRecipe {
  kind: 'loca';
  patch: number; // 4: labels index the reference's (refSize/patch)² grid
  refSize: number; // 32 (224), never flipped
  refScale: Range; // area (0.32, 1)
  querySize: number; // 32 (224): query0
  queryScale: Range; // (0.32, 1)
  focalCount: number; // 9
  focalSize: number; // 16 (96); must be < refSize
  focalScale: Range; // (0.05, 0.32)
  ratio: Range; // (3/4, 4/3)
  interp: Interp; // bilinear (TF inception crop)
  queryFlipP: number; // 0.5, every query
  jitter: Jitter4; // (0.4, 0.4, 0.2, 0.1)
  jitterP: number; // 0.8
  grayP: number; // 0.2
  // Blur: the released config's blur is a no-op (methods.md §3); we apply the intended DINO
  // probabilities. Set them to 0 to reproduce the released behaviour.
  blurSigma224: Range; // (0.1, 2.0)
  refBlurP: number; // 1.0
  queryBlurP: number; // 0.1
  focalBlurP: number; // 0.5
  querySolarizeP: number; // 0.2, query0 only
  normalize: Normalization;
}

export interface ScrlRecipe {
  kind: 'scrl';
  size: number; // 32 (224)
  scale: Range; // (0.2, 1)
  ratio: Range; // (3/4, 4/3)
  interp: Interp; // bicubic
  flipP: number; // 0.5
  jitter: Jitter4; // (0.4, 0.4, 0.2, 0.1)
  jitterP: number; // 0.8
  grayP: number; // 0.2
  blurP: Range; // (1.0, 0.1): view 1, view 2
  resizeBlurFactors: number[]; // (1.1, 1.2, 1.5): SCRL's ResizeBlur (downscale, upscale; bicubic)
  solarizeP: Range; // (0, 0.2)
  boxes: ScrlBoxOptions; // count 10, minSize 32/224 of the view side, IoU 0.5, 50 tries, grid-based
  maxPairTries: number; // 20: crop pairs drawn until boxes exist, then an Error
  normalize: Normalization;
}

export interface GtsaRecipe {
  kind: 'gtsa';
  globalCount: number; // 2
  globalSize: number; // 32 (224)
  globalScale: Range; // (0.3, 1)
  localCount: number; // 8
  localSize: number; // 16 (96)
  localScale: Range; // (0.1, 0.3)
  ratio: Range; // (3/4, 4/3)
  interp: Interp; // bilinear
  minIntersection: number; // 0.01 of the image area with every global drawn before; twice between globals
  maxTries: number; // 100 crop draws per view, then an Error (the reference loops forever)
  jitter: Jitter4; // (0.8, 0.8, 0.8, 0.2)
  jitterP: number; // 0.8
  grayP: number; // 0.2
  blurP: number; // 0.2
  blurSigma224: Range; // (0.1, 2.0)
  normalize: Normalization;
}

/** Evaluation view: the whole image resized, no randomness; masks carried at source resolution. */
export interface PlainRecipe {
  kind: 'plain';
  size: number; // 32
  interp: Interp; // bilinear
  normalize: Normalization;
}

export type ViewRecipe = MultiCropRecipe | LocaRecipe | ScrlRecipe | GtsaRecipe | PlainRecipe;

const COMMON = { ratio: [3 / 4, 4 / 3] as Range, normalize: IMAGENET };
const BYOL_JITTER: Jitter4 = [0.4, 0.4, 0.2, 0.1];

export function multiCrop(cfg: Partial<Omit<MultiCropRecipe, 'kind'>> = {}): MultiCropRecipe {
  return validateRecipe({
    kind: 'multicrop',
    globalCount: 2,
    globalSize: 32,
    globalScale: [0.4, 1],
    localCount: 6,
    localSize: 16,
    localScale: [0.05, 0.4],
    ...COMMON,
    interp: 'bicubic',
    flipP: 0.5,
    jitter: BYOL_JITTER,
    jitterP: 0.8,
    grayP: 0.2,
    blurSigma224: [0.1, 2],
    globalBlurP: [1, 0.1],
    localBlurP: 0.5,
    globalSolarizeP: [0, 0.2],
    localSolarizeP: 0,
    ...cfg,
  });
}

export function locaViews(cfg: Partial<Omit<LocaRecipe, 'kind'>> = {}): LocaRecipe {
  return validateRecipe({
    kind: 'loca',
    patch: 4,
    refSize: 32,
    refScale: [0.32, 1],
    querySize: 32,
    queryScale: [0.32, 1],
    focalCount: 9,
    focalSize: 16,
    focalScale: [0.05, 0.32],
    ...COMMON,
    interp: 'bilinear',
    queryFlipP: 0.5,
    jitter: BYOL_JITTER,
    jitterP: 0.8,
    grayP: 0.2,
    blurSigma224: [0.1, 2],
    refBlurP: 1,
    queryBlurP: 0.1,
    focalBlurP: 0.5,
    querySolarizeP: 0.2,
    ...cfg,
  });
}

export function scrlViews(
  cfg: Partial<Omit<ScrlRecipe, 'kind' | 'boxes'>> & { boxes?: Partial<ScrlBoxOptions> } = {},
): ScrlRecipe {
  return validateRecipe({
    kind: 'scrl',
    size: 32,
    scale: [0.2, 1],
    ...COMMON,
    interp: 'bicubic',
    flipP: 0.5,
    jitter: BYOL_JITTER,
    jitterP: 0.8,
    grayP: 0.2,
    blurP: [1, 0.1],
    resizeBlurFactors: [1.1, 1.2, 1.5],
    solarizeP: [0, 0.2],
    maxPairTries: 20,
    ...cfg,
    boxes: { ...SCRL_BOX_DEFAULTS, ...cfg.boxes },
  });
}

export function gtsaViews(cfg: Partial<Omit<GtsaRecipe, 'kind'>> = {}): GtsaRecipe {
  return validateRecipe({
    kind: 'gtsa',
    globalCount: 2,
    globalSize: 32,
    globalScale: [0.3, 1],
    localCount: 8,
    localSize: 16,
    localScale: [0.1, 0.3],
    ...COMMON,
    interp: 'bilinear',
    minIntersection: 0.01,
    maxTries: 100,
    jitter: [0.8, 0.8, 0.8, 0.2],
    jitterP: 0.8,
    grayP: 0.2,
    blurP: 0.2,
    blurSigma224: [0.1, 2],
    ...cfg,
  });
}

export function plainViews(cfg: Partial<Omit<PlainRecipe, 'kind'>> = {}): PlainRecipe {
  return validateRecipe({ kind: 'plain', size: 32, interp: 'bilinear', normalize: IMAGENET, ...cfg });
}

/** Throws an Error naming the offending field; returns the recipe unchanged. */
export function validateRecipe<R extends ViewRecipe>(r: R): R {
  const fail = (msg: string): never => {
    throw new Error(`${r.kind} view recipe: ${msg}`);
  };
  const pos = (name: string, v: number) => {
    if (!(Number.isInteger(v) && v > 0)) fail(`${name} must be a positive integer (got ${v})`);
  };
  const range = (name: string, v: Range) => {
    if (!(v[0] > 0 && v[0] <= v[1] && v[1] <= 1)) fail(`${name} must satisfy 0 < lo ≤ hi ≤ 1 (got [${v}])`);
  };
  switch (r.kind) {
    case 'multicrop':
      pos('globalSize', r.globalSize);
      pos('globalCount', r.globalCount);
      range('globalScale', r.globalScale);
      if (r.localCount > 0) {
        pos('localSize', r.localSize);
        range('localScale', r.localScale);
      }
      break;
    case 'loca':
      pos('patch', r.patch);
      for (const k of ['refSize', 'querySize', 'focalSize'] as const) {
        pos(k, r[k]);
        if (r[k] % r.patch !== 0) fail(`${k} ${r[k]} is not a multiple of patch ${r.patch}`);
      }
      if (r.focalSize >= r.refSize) fail(`focalSize (${r.focalSize}) must be smaller than refSize (${r.refSize})`);
      range('refScale', r.refScale);
      range('queryScale', r.queryScale);
      range('focalScale', r.focalScale);
      break;
    case 'scrl':
      pos('size', r.size);
      range('scale', r.scale);
      pos('boxes.count', r.boxes.count);
      pos('maxPairTries', r.maxPairTries);
      break;
    case 'gtsa':
      pos('globalSize', r.globalSize);
      pos('localSize', r.localSize);
      if (r.globalCount < 1) fail('globalCount must be ≥ 1');
      range('globalScale', r.globalScale);
      range('localScale', r.localScale);
      pos('maxTries', r.maxTries);
      break;
    case 'plain':
      pos('size', r.size);
      break;
    default:
      throw new Error(`unknown view recipe kind ${(r as { kind: unknown }).kind}`);
  }
  return r;
}
