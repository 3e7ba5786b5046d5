// Rendering a sample into its views (image + geometry) and the method's per-sample extras.
//
// Two phases: a plan draws every random number (crop boxes, flips, rotations, colour and blur
// parameters, in the order of the recipe) and derives the geometric extras from the boxes alone;
// rendering then resamples each box and applies the photometric ops. A sample's views are a pure
// function of (recipe, sample, rng) whichever resampler runs: `makeViews` resamples in JS (PIL's
// scheme, continuous boxes), `renderViews` resamples folder photos (samples with `raw` 8-bit pixels)
// natively with libvips through sharp. For such samples the boxes are snapped to whole pixels (as
// torchvision's RandomResizedCrop draws them) in both paths, so the geometry is the same.
import {
  colorJitter,
  grayscale,
  hflip,
  type Interp,
  type JitterDraw,
  resize,
  resizedCrop,
  rot90,
  sampleCropBox,
  sampleJitter,
  solarize,
} from './augment.js';
import { gaussianBlur, resizeBlur } from './blur.js';
import { boxArea, gtsaBoxes, intersection, locationLabels, sampleScrlBoxes } from './geometry.js';
import type { GtsaRecipe, Jitter4, LocaRecipe, MultiCropRecipe, Range, ScrlRecipe, ViewRecipe } from './recipes.js';
import { nativeBlur, nativeResizedCrop } from './resample.js';
import type { Rng } from './rng.js';
import type { Box, Image, RawImage, ViewGeometry } from './types.js';

export * from './recipes.js';

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
  /** 8-bit pixels of `image` (folder photos): boxes snap to whole pixels, and renderViews resamples natively. */
  raw?: RawImage;
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

/** The random photometric choices of one view. */
interface PhotoDraw {
  jitter: JitterDraw | null;
  gray: boolean;
  blurSigma: number | null; // Gaussian σ in px of the view
  resizeBlur: number | null; // SCRL ResizeBlur factor
  solarize: boolean;
}

interface ViewPlan {
  geom: ViewGeometry;
  interp: Interp;
  photo: PhotoDraw;
}

interface Plan {
  plans: ViewPlan[];
  extras: Record<string, Extra>;
}

/** Jitter (p), grayscale (p), blur (p), solarise (p): the draws in torchvision's order. */
function drawPhoto(ph: Photometric, size: number, rng: Rng): PhotoDraw {
  let jitter: JitterDraw | null = null;
  if (rng.bool(ph.jitterP)) {
    const [brightness, contrast, saturation, hue] = ph.jitter;
    jitter = sampleJitter({ brightness, contrast, saturation, hue }, rng);
  }
  const gray = rng.bool(ph.grayP);
  let blurSigma: number | null = null;
  let resizeBlurF: number | null = null;
  if (rng.bool(ph.blurP)) {
    if (ph.resizeBlurFactors) resizeBlurF = rng.choice(ph.resizeBlurFactors);
    else if (ph.blurSigma224) blurSigma = (rng.range(ph.blurSigma224[0], ph.blurSigma224[1]) * size) / 224;
  }
  const solar = rng.bool(ph.solarizeP);
  return { jitter, gray, blurSigma, resizeBlur: resizeBlurF, solarize: solar };
}

/** The source frame a plan draws boxes in; `snap` rounds boxes to whole pixels (8-bit sources). */
interface Frame {
  W: number;
  H: number;
  snap: boolean;
}

/** A box with integer corners inside the frame, at least 1 px wide and high. */
export function snapBox(b: Box, W: number, H: number): Box {
  const w = Math.min(W, Math.max(1, Math.round(b[2] - b[0])));
  const h = Math.min(H, Math.max(1, Math.round(b[3] - b[1])));
  const x0 = Math.min(W - w, Math.max(0, Math.round(b[0])));
  const y0 = Math.min(H - h, Math.max(0, Math.round(b[1])));
  return [x0, y0, x0 + w, y0 + h];
}

function cropBox(f: Frame, rng: Rng, scale: Range, ratio: Range): Box {
  const b = sampleCropBox(f.W, f.H, rng, scale, ratio);
  return f.snap ? snapBox(b, f.W, f.H) : b;
}

function plan1(box: Box, size: number, interp: Interp, flipped: boolean, rotation: 0 | 1 | 2 | 3, photo: PhotoDraw) {
  return { geom: { box, size, flipped, rotation }, interp, photo };
}

const at = (a: number[], i: number): number => (a[Math.min(i, a.length - 1)] ?? 0) as number;

function multiCropPlan(r: MultiCropRecipe, f: Frame, rng: Rng): Plan {
  const plans: ViewPlan[] = [];
  const base = { jitter: r.jitter, jitterP: r.jitterP, grayP: r.grayP, blurSigma224: r.blurSigma224 };
  for (let i = 0; i < r.globalCount + r.localCount; i++) {
    const g = i < r.globalCount;
    const box = cropBox(f, rng, g ? r.globalScale : r.localScale, r.ratio);
    const flipped = rng.bool(r.flipP);
    const ph = g
      ? { ...base, blurP: at(r.globalBlurP, i), solarizeP: at(r.globalSolarizeP, i) }
      : { ...base, blurP: r.localBlurP, solarizeP: r.localSolarizeP };
    const size = g ? r.globalSize : r.localSize;
    plans.push(plan1(box, size, r.interp, flipped, 0, drawPhoto(ph, size, rng)));
  }
  return { plans, extras: {} };
}

function locaPlan(r: LocaRecipe, f: Frame, rng: Rng): Plan {
  const base = { jitter: r.jitter, jitterP: r.jitterP, grayP: r.grayP, blurSigma224: r.blurSigma224 };
  const refBox = cropBox(f, rng, r.refScale, r.ratio);
  const ref = plan1(
    refBox,
    r.refSize,
    r.interp,
    false,
    0,
    drawPhoto({ ...base, blurP: r.refBlurP, solarizeP: 0 }, r.refSize, rng),
  );
  const plans = [ref];
  const q0Box = cropBox(f, rng, r.queryScale, r.ratio);
  const q0Flip = rng.bool(r.queryFlipP);
  const q0Photo = drawPhoto({ ...base, blurP: r.queryBlurP, solarizeP: r.querySolarizeP }, r.querySize, rng);
  plans.push(plan1(q0Box, r.querySize, r.interp, q0Flip, 0, q0Photo));
  const nf = (r.focalSize / r.patch) ** 2;
  const focal = new Int32Array(r.focalCount * nf);
  for (let k = 0; k < r.focalCount; k++) {
    const box = cropBox(f, rng, r.focalScale, r.ratio);
    const flip = rng.bool(r.queryFlipP);
    const v = plan1(
      box,
      r.focalSize,
      r.interp,
      flip,
      0,
      drawPhoto({ ...base, blurP: r.focalBlurP, solarizeP: 0 }, r.focalSize, rng),
    );
    plans.push(v);
    focal.set(locationLabels(ref.geom, v.geom, r.patch), k * nf);
  }
  const q0 = locationLabels(ref.geom, (plans[1] as ViewPlan).geom, r.patch);
  return {
    plans,
    extras: {
      loca_labels_q0: { data: q0, shape: [q0.length] },
      loca_labels_focal: { data: focal, shape: [r.focalCount, nf] },
    },
  };
}

function scrlPlan(r: ScrlRecipe, f: Frame, rng: Rng): Plan {
  for (let t = 0; t < r.maxPairTries; t++) {
    const b1 = cropBox(f, rng, r.scale, r.ratio);
    const b2 = cropBox(f, rng, r.scale, r.ratio);
    const f1 = rng.bool(r.flipP);
    const f2 = rng.bool(r.flipP);
    const g1: ViewGeometry = { box: b1, size: r.size, flipped: f1, rotation: 0 };
    const g2: ViewGeometry = { box: b2, size: r.size, flipped: f2, rotation: 0 };
    const pairs = sampleScrlBoxes(g1, g2, rng, r.boxes);
    if (pairs.length === 0) continue;
    const base = { jitter: r.jitter, jitterP: r.jitterP, grayP: r.grayP, resizeBlurFactors: r.resizeBlurFactors };
    const p1 = drawPhoto({ ...base, blurP: r.blurP[0], solarizeP: r.solarizeP[0] }, r.size, rng);
    const p2 = drawPhoto({ ...base, blurP: r.blurP[1], solarizeP: r.solarizeP[1] }, r.size, rng);
    const n = pairs.length;
    const boxes1 = new Float32Array(n * 4);
    const boxes2 = new Float32Array(n * 4);
    pairs.forEach(([a, b], i) => {
      boxes1.set(a, i * 4);
      boxes2.set(b, i * 4);
    });
    return {
      plans: [
        { geom: g1, interp: r.interp, photo: p1 },
        { geom: g2, interp: r.interp, photo: p2 },
      ],
      extras: {
        scrl_boxes1: { data: boxes1, shape: [n, 4], ragged: true },
        scrl_boxes2: { data: boxes2, shape: [n, 4], ragged: true },
      },
    };
  }
  throw new Error(
    `scrl views: no crop pair of a ${f.W}x${f.H} image overlapped enough for boxes in maxPairTries=${r.maxPairTries} draws ` +
      `(scale=[${r.scale}], size=${r.size}, boxes.minSize=${r.boxes.minSize}); widen scale or lower boxes.minSize`,
  );
}

function gtsaPlan(r: GtsaRecipe, f: Frame, rng: Rng): Plan {
  const { W, H } = f;
  const boxes: Box[] = [];
  const n = r.globalCount + r.localCount;
  for (let i = 0; i < n; i++) {
    const g = i < r.globalCount;
    const scale = g ? r.globalScale : r.localScale;
    const need = r.minIntersection * W * H * (g ? 2 : 1);
    const globalsSoFar = boxes.slice(0, Math.min(i, r.globalCount));
    let box: Box | null = null;
    for (let t = 0; t < r.maxTries && !box; t++) {
      const b = cropBox(f, rng, scale, r.ratio);
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
  const plans = boxes.map((box, i) => {
    const rotation = rng.int(0, 4) as 0 | 1 | 2 | 3;
    const size = i < r.globalCount ? r.globalSize : r.localSize;
    return plan1(box, size, r.interp, false, rotation, drawPhoto(ph, size, rng));
  });
  const gb = gtsaBoxes(
    plans.map((v) => v.geom),
    r.globalCount,
  );
  return {
    plans,
    extras: {
      gtsa_gc: { data: gb.gc, shape: [r.globalCount, n, 4] },
      gtsa_all: { data: gb.all, shape: [n, r.globalCount, 4] },
    },
  };
}

/** Every random draw of one sample's views, and the extras that follow from their geometry. */
function planViews(r: Exclude<ViewRecipe, { kind: 'plain' }>, s: SampleLike, rng: Rng): Plan {
  const src = s.raw ?? s.image; // raw first: a folder sample's float image is made on demand
  const f: Frame = { W: src.width, H: src.height, snap: s.raw !== undefined };
  switch (r.kind) {
    case 'multicrop':
      return multiCropPlan(r, f, rng);
    case 'loca':
      return locaPlan(r, f, rng);
    case 'scrl':
      return scrlPlan(r, f, rng);
    case 'gtsa':
      return gtsaPlan(r, f, rng);
    default:
      throw new Error(`unknown view recipe kind ${(r as { kind: unknown }).kind}`);
  }
}

/** Flip → rotate, then colour: jitter, grayscale (each as drawn). */
function beforeBlur(resampled: Image, p: ViewPlan): Image {
  let img = resampled;
  const ph = p.photo;
  if (p.geom.flipped) img = hflip(img);
  if (p.geom.rotation) img = rot90(img, p.geom.rotation);
  if (ph.jitter) img = colorJitter(img, ph.jitter);
  if (ph.gray) img = grayscale(img);
  return img;
}

/** After the blur: solarise (as drawn). */
function afterBlur(img: Image, p: ViewPlan): View {
  return { image: p.photo.solarize ? solarize(img, 0.5) : img, geom: p.geom };
}

/** Flip → rotate, jitter, grayscale, blur, solarise, all in JS. */
function finish(resampled: Image, p: ViewPlan): View {
  let img = beforeBlur(resampled, p);
  const ph = p.photo;
  if (ph.resizeBlur !== null) img = resizeBlur(img, ph.resizeBlur);
  else if (ph.blurSigma !== null) img = gaussianBlur(img, ph.blurSigma);
  return afterBlur(img, p);
}

function plainViewSet(r: Extract<ViewRecipe, { kind: 'plain' }>, s: SampleLike): ViewSet {
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

/** The common extras: view_box Float32 [V, 4] (source px), view_flipped Uint8 [V], view_rotation Int32 [V], label Int32 []. */
function withCommonExtras(set: ViewSet, s: SampleLike): ViewSet {
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

/**
 * One sample's views and extras, resampled in JS. Every recipe adds `view_box` Float32 [V, 4]
 * (source px), `view_flipped` Uint8 [V], `view_rotation` Int32 [V] and `label` Int32 [] (−1 when absent).
 */
export function makeViews(r: ViewRecipe, s: SampleLike, rng: Rng): ViewSet {
  if (r.kind === 'plain') return withCommonExtras(plainViewSet(r, s), s);
  const p = planViews(r, s, rng);
  const views = p.plans.map((v) => finish(resizedCrop(s.image, v.geom.box, v.geom.size, v.geom.size, v.interp), v));
  return withCommonExtras({ views, extras: p.extras }, s);
}

/**
 * The same views as makeViews (same draws, same geometry), with each crop + resize of a sample that
 * has 8-bit `raw` pixels done natively by libvips (see resample.ts for its tolerance against PIL), and
 * so is each Gaussian blur.
 */
export async function renderViews(r: ViewRecipe, s: SampleLike, rng: Rng): Promise<ViewSet> {
  const raw = s.raw;
  if (r.kind === 'plain' || !raw) return makeViews(r, s, rng);
  const p = planViews(r, s, rng);
  const views = await Promise.all(
    p.plans.map(async (v) => {
      let img = beforeBlur(await nativeResizedCrop(raw, () => s.image, v.geom.box, v.geom.size, v.interp), v);
      if (v.photo.resizeBlur !== null) img = resizeBlur(img, v.photo.resizeBlur);
      else if (v.photo.blurSigma !== null) img = await nativeBlur(img, v.photo.blurSigma);
      return afterBlur(img, v);
    }),
  );
  return withCommonExtras({ views, extras: p.extras }, s);
}
