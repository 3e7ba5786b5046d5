// View recipes: plain serialisable configs ({kind, ...}) that workers rebuild, and `makeViews`,
// which turns one sample into its views (image + geometry) and the method's per-sample extras.
//
// Small-scale defaults (methods.md §8: keep ratios, not pixel sizes): 64x64 sources, global views
// of 32 px and a patch of 4 (8x8 grid), local/focal views of 16 px (4x4 grid; 96/224·32 ≈ 14 → 16).
// View counts follow the references except DINO's locals (6, not 8). Blur σ ranges are given in
// pixels of a 224-px view and scaled by size/224, so at 32 px DINO's U(0.1, 2) becomes
// U(0.014, 0.29) px: nearly a no-op, as CIFAR-scale SSL recipes that drop blur.
import {
  colorJitter,
  gaussianBlur,
  grayscale,
  hflip,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type Interp,
  resize,
  resizeBlur,
  resizedCrop,
  rot90,
  sampleCropBox,
  sampleJitter,
  solarize,
} from './augment.js';
import {
  boxArea,
  gtsaBoxes,
  intersection,
  locationLabels,
  SCRL_BOX_DEFAULTS,
  type ScrlBoxOptions,
  sampleScrlBoxes,
} from './geometry.js';
import type { Rng } from './rng.js';
import type { Box, Image, ViewGeometry } from './types.js';

type Range = [number, number];
type Jitter4 = [brightness: number, contrast: number, saturation: number, hue: number];

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

// ---------------------------------------------------------------- rendering

export interface View {
  image: Image;
  geom: ViewGeometry;
}

/** A per-sample extra: shape excludes the batch axis; ragged extras are [n, ...] rows concatenated over the batch with a leading batch-index column. */
export interface Extra {
  data: Float32Array | Int32Array | Uint8Array;
  shape: number[];
  ragged?: boolean;
}

export interface ViewSet {
  views: View[];
  extras: Record<string, Extra>;
}

/** What makeViews needs of a dataset sample. */
export interface SampleLike {
  image: Image;
  label?: number;
  mask?: Uint8Array;
  partMask?: Uint8Array;
}

interface Photometric {
  jitter: Jitter4;
  jitterP: number;
  grayP: number;
  blurP: number;
  blurSigma224?: Range;
  resizeBlurFactors?: number[];
  solarizeP: number;
}

/** Crop → resize → flip → rotate, then colour: jitter (p), grayscale (p), blur (p), solarise (p). */
function renderView(
  src: Image,
  box: Box,
  size: number,
  interp: Interp,
  flipped: boolean,
  rotation: 0 | 1 | 2 | 3,
  ph: Photometric,
  rng: Rng,
): View {
  let img = resizedCrop(src, box, size, size, interp);
  if (flipped) img = hflip(img);
  if (rotation) img = rot90(img, rotation);
  if (rng.bool(ph.jitterP)) {
    const [brightness, contrast, saturation, hue] = ph.jitter;
    img = colorJitter(img, sampleJitter({ brightness, contrast, saturation, hue }, rng));
  }
  if (rng.bool(ph.grayP)) img = grayscale(img);
  if (rng.bool(ph.blurP)) {
    if (ph.resizeBlurFactors) img = resizeBlur(img, rng.choice(ph.resizeBlurFactors));
    else if (ph.blurSigma224) {
      const sigma = (rng.range(ph.blurSigma224[0], ph.blurSigma224[1]) * size) / 224;
      img = gaussianBlur(img, sigma);
    }
  }
  if (rng.bool(ph.solarizeP)) img = solarize(img, 0.5);
  return { image: img, geom: { box, size, flipped, rotation } };
}

const at = (a: number[], i: number): number => (a[Math.min(i, a.length - 1)] ?? 0) as number;

function multiCropViews(r: MultiCropRecipe, img: Image, rng: Rng): ViewSet {
  const views: View[] = [];
  const base = { jitter: r.jitter, jitterP: r.jitterP, grayP: r.grayP, blurSigma224: r.blurSigma224 };
  for (let i = 0; i < r.globalCount + r.localCount; i++) {
    const g = i < r.globalCount;
    const box = sampleCropBox(img.width, img.height, rng, g ? r.globalScale : r.localScale, r.ratio);
    const flipped = rng.bool(r.flipP);
    const ph = g
      ? { ...base, blurP: at(r.globalBlurP, i), solarizeP: at(r.globalSolarizeP, i) }
      : { ...base, blurP: r.localBlurP, solarizeP: r.localSolarizeP };
    views.push(renderView(img, box, g ? r.globalSize : r.localSize, r.interp, flipped, 0, ph, rng));
  }
  return { views, extras: {} };
}

function locaViewSet(r: LocaRecipe, img: Image, rng: Rng): ViewSet {
  const base = { jitter: r.jitter, jitterP: r.jitterP, grayP: r.grayP, blurSigma224: r.blurSigma224 };
  const W = img.width;
  const H = img.height;
  const ref = renderView(
    img,
    sampleCropBox(W, H, rng, r.refScale, r.ratio),
    r.refSize,
    r.interp,
    false,
    0,
    { ...base, blurP: r.refBlurP, solarizeP: 0 },
    rng,
  );
  const views = [ref];
  const q0Box = sampleCropBox(W, H, rng, r.queryScale, r.ratio);
  views.push(
    renderView(
      img,
      q0Box,
      r.querySize,
      r.interp,
      rng.bool(r.queryFlipP),
      0,
      { ...base, blurP: r.queryBlurP, solarizeP: r.querySolarizeP },
      rng,
    ),
  );
  const nf = (r.focalSize / r.patch) ** 2;
  const focal = new Int32Array(r.focalCount * nf);
  for (let f = 0; f < r.focalCount; f++) {
    const box = sampleCropBox(W, H, rng, r.focalScale, r.ratio);
    const v = renderView(
      img,
      box,
      r.focalSize,
      r.interp,
      rng.bool(r.queryFlipP),
      0,
      { ...base, blurP: r.focalBlurP, solarizeP: 0 },
      rng,
    );
    views.push(v);
    focal.set(locationLabels(ref.geom, v.geom, r.patch), f * nf);
  }
  const q0 = locationLabels(ref.geom, (views[1] as View).geom, r.patch);
  return {
    views,
    extras: {
      loca_labels_q0: { data: q0, shape: [q0.length] },
      loca_labels_focal: { data: focal, shape: [r.focalCount, nf] },
    },
  };
}

function scrlViewSet(r: ScrlRecipe, img: Image, rng: Rng): ViewSet {
  for (let t = 0; t < r.maxPairTries; t++) {
    const b1 = sampleCropBox(img.width, img.height, rng, r.scale, r.ratio);
    const b2 = sampleCropBox(img.width, img.height, rng, r.scale, r.ratio);
    const f1 = rng.bool(r.flipP);
    const f2 = rng.bool(r.flipP);
    const g1: ViewGeometry = { box: b1, size: r.size, flipped: f1, rotation: 0 };
    const g2: ViewGeometry = { box: b2, size: r.size, flipped: f2, rotation: 0 };
    const pairs = sampleScrlBoxes(g1, g2, rng, r.boxes);
    if (pairs.length === 0) continue;
    const base = { jitter: r.jitter, jitterP: r.jitterP, grayP: r.grayP, resizeBlurFactors: r.resizeBlurFactors };
    const v1 = renderView(
      img,
      b1,
      r.size,
      r.interp,
      f1,
      0,
      { ...base, blurP: r.blurP[0], solarizeP: r.solarizeP[0] },
      rng,
    );
    const v2 = renderView(
      img,
      b2,
      r.size,
      r.interp,
      f2,
      0,
      { ...base, blurP: r.blurP[1], solarizeP: r.solarizeP[1] },
      rng,
    );
    const n = pairs.length;
    const boxes1 = new Float32Array(n * 4);
    const boxes2 = new Float32Array(n * 4);
    pairs.forEach(([a, b], i) => {
      boxes1.set(a, i * 4);
      boxes2.set(b, i * 4);
    });
    return {
      views: [v1, v2],
      extras: {
        scrl_boxes1: { data: boxes1, shape: [n, 4], ragged: true },
        scrl_boxes2: { data: boxes2, shape: [n, 4], ragged: true },
      },
    };
  }
  throw new Error(
    `scrl views: no crop pair of a ${img.width}x${img.height} image overlapped enough for boxes in maxPairTries=${r.maxPairTries} draws ` +
      `(scale=[${r.scale}], size=${r.size}, boxes.minSize=${r.boxes.minSize}); widen scale or lower boxes.minSize`,
  );
}

function gtsaViewSet(r: GtsaRecipe, img: Image, rng: Rng): ViewSet {
  const W = img.width;
  const H = img.height;
  const boxes: Box[] = [];
  const n = r.globalCount + r.localCount;
  for (let i = 0; i < n; i++) {
    const g = i < r.globalCount;
    const scale = g ? r.globalScale : r.localScale;
    const need = r.minIntersection * W * H * (g ? 2 : 1);
    const globalsSoFar = boxes.slice(0, Math.min(i, r.globalCount));
    let box: Box | null = null;
    for (let t = 0; t < r.maxTries && !box; t++) {
      const b = sampleCropBox(W, H, rng, scale, r.ratio);
      if (globalsSoFar.every((o) => boxArea(intersection(b, o) ?? [0, 0, 0, 0]) > need)) box = b;
    }
    if (!box) {
      throw new Error(
        `gtsa views: view ${i} never overlapped the global views by more than minIntersection=${r.minIntersection}` +
          `${g ? ' x2' : ''} of the image in maxTries=${r.maxTries} draws (globalScale=[${r.globalScale}], localScale=[${r.localScale}])`,
      );
    }
    boxes.push(box);
  }
  const ph = {
    jitter: r.jitter,
    jitterP: r.jitterP,
    grayP: r.grayP,
    blurP: r.blurP,
    blurSigma224: r.blurSigma224,
    solarizeP: 0,
  };
  const views = boxes.map((box, i) => {
    const rotation = rng.int(0, 4) as 0 | 1 | 2 | 3;
    return renderView(img, box, i < r.globalCount ? r.globalSize : r.localSize, r.interp, false, rotation, ph, rng);
  });
  const gb = gtsaBoxes(
    views.map((v) => v.geom),
    r.globalCount,
  );
  return {
    views,
    extras: {
      gtsa_gc: { data: gb.gc, shape: [r.globalCount, n, 4] },
      gtsa_all: { data: gb.all, shape: [n, r.globalCount, 4] },
    },
  };
}

function plainViewSet(r: PlainRecipe, s: SampleLike): ViewSet {
  const { image } = s;
  const view: View = {
    image: resize(image, r.size, r.size, r.interp),
    geom: { box: [0, 0, image.width, image.height], size: r.size, flipped: false, rotation: 0 },
  };
  const extras: Record<string, Extra> = {};
  if (s.mask) extras.mask = { data: s.mask, shape: [image.height, image.width] };
  if (s.partMask) extras.part_mask = { data: s.partMask, shape: [image.height, image.width] };
  return { views: [view], extras };
}

/**
 * One sample's views and extras. Every recipe adds `view_box` Float32 [V, 4] (source px),
 * `view_flipped` Uint8 [V], `view_rotation` Int32 [V] and `label` Int32 [] (−1 when absent).
 */
export function makeViews(r: ViewRecipe, s: SampleLike, rng: Rng): ViewSet {
  let set: ViewSet;
  switch (r.kind) {
    case 'multicrop':
      set = multiCropViews(r, s.image, rng);
      break;
    case 'loca':
      set = locaViewSet(r, s.image, rng);
      break;
    case 'scrl':
      set = scrlViewSet(r, s.image, rng);
      break;
    case 'gtsa':
      set = gtsaViewSet(r, s.image, rng);
      break;
    case 'plain':
      set = plainViewSet(r, s);
      break;
    default:
      throw new Error(`unknown view recipe kind ${(r as { kind: unknown }).kind}`);
  }
  const V = set.views.length;
  const box = new Float32Array(V * 4);
  const flipped = new Uint8Array(V);
  const rotation = new Int32Array(V);
  set.views.forEach((v, i) => {
    box.set(v.geom.box, i * 4);
    flipped[i] = v.geom.flipped ? 1 : 0;
    rotation[i] = v.geom.rotation;
  });
  set.extras.view_box = { data: box, shape: [V, 4] };
  set.extras.view_flipped = { data: flipped, shape: [V] };
  set.extras.view_rotation = { data: rotation, shape: [V] };
  set.extras.label = { data: Int32Array.of(typeof s.label === 'number' ? s.label : -1), shape: [] };
  return set;
}
