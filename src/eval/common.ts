// What every probe shares: the eval context (backbone, input settings, seed, cache), image sets read
// from dataset specs (labels and masks collected once; images re-read on demand, so a large set is
// never held in memory), feature extraction through the cache, and the header of every result JSON.
import { availableParallelism } from 'node:os';
import { type DatasetSpec, openDataset, type SampleObject } from '../data/datasets.js';
import { deriveSeed, Rng } from '../data/rng.js';
import type { Image } from '../data/types.js';
import type { Tensor } from '../engine/index.js';
import { getNumThreads } from '../engine/index.js';
import type { VitConfig } from '../nn/index.js';
import { type EvalBackbone, embedImages, type FeatureKind, type FeatureSet, type InputSettings } from './features.js';

export interface EvalContext {
  bb: EvalBackbone;
  input: InputSettings;
  seed: number;
  batchSize: number; // images per forward pass
  cacheDir?: string; // feature cache (e.g. <run>/cache); none = no caching
  progress?: boolean; // progress bars (default: on a TTY)
}

/** Images addressed by index, with a spec that identifies them (for results and cache keys). */
export interface ImageSet {
  spec: DatasetSpec;
  indices: number[]; // dataset indices, in set order
  n: number;
  image(i: number): Promise<Image>; // i-th image of the set
}

export interface LabelledSet extends ImageSet {
  labels: Int32Array;
  classes: number;
  classNames?: string[];
}

export interface MaskSet extends ImageSet {
  width: number; // label resolution
  height: number;
  masks: Uint8Array[]; // per image, height·width
  classes: number; // mask values 0..classes-1 are classes
  ignoreIndex: number;
  classNames: string[];
  partMasks?: Uint8Array[]; // parts dataset
  partTypes?: string[];
  objects?: SampleObject[][]; // scenes and parts
  sourceImages?: Image[]; // only when asked for (crops need the full-resolution images)
}

/** Indices 0..n-1 of a dataset, or a seeded split of them into [rest, held-out]. */
export function splitIndices(n: number, fraction: number, seed: number): [number[], number[]] {
  const perm = new Rng(deriveSeed(seed, 0x7e57)).shuffle(Array.from({ length: n }, (_, i) => i));
  const k = Math.max(1, Math.min(n - 1, Math.round(n * fraction)));
  return [perm.slice(k).sort((a, b) => a - b), perm.slice(0, k).sort((a, b) => a - b)];
}

/** Just the images of a dataset (any kind). */
export async function loadImages(spec: DatasetSpec): Promise<ImageSet> {
  const ds = await openDataset(spec);
  const indices = Array.from({ length: ds.length }, (_, i) => i);
  return { spec: ds.spec, indices, n: ds.length, image: async (i) => (await ds.get(i)).image };
}

/** An image-level labelled set (fashion-mnist, or an image folder in class layout). */
export async function loadLabelled(spec: DatasetSpec, indices?: number[]): Promise<LabelledSet> {
  const ds = await openDataset(spec);
  const idx = indices ?? Array.from({ length: ds.length }, (_, i) => i);
  const labels = new Int32Array(idx.length);
  for (const [j, i] of idx.entries()) {
    const s = await ds.get(i);
    if (s.label === undefined)
      throw new Error(
        `eval: dataset '${spec.kind}' has no image-level labels (use fashion-mnist or a folder in class layout)`,
      );
    labels[j] = s.label;
  }
  const classes = ds.classes?.length ?? Math.max(0, ...labels) + 1;
  return {
    spec: ds.spec,
    indices: idx,
    n: idx.length,
    labels,
    classes,
    classNames: ds.classes ? [...ds.classes] : undefined,
    image: async (i) => (await ds.get(idx[i] as number)).image,
  };
}

/** Where a classification probe's images come from: a train set and a test set, or a fraction of train held out. */
export interface LabelledData {
  train: DatasetSpec;
  test: DatasetSpec | null; // null: hold out testFraction of train (seeded)
  testFraction: number;
}

/**
 * Object-level default (out of domain): Fashion-MNIST items (28 px, resized to the model input), first 2000
 * train / all 10000 test (a 95% interval of ±1 point or less on an accuracy; features are cached).
 */
export const LABELLED_DEFAULTS: LabelledData = {
  train: { kind: 'fashion-mnist', split: 'train', length: 2000 },
  test: { kind: 'fashion-mnist', split: 'test', length: 10000 },
  testFraction: 0.2,
};

export async function labelledSplits(d: LabelledData, seed: number): Promise<[LabelledSet, LabelledSet]> {
  if (d.test) return [await loadLabelled(d.train), await loadLabelled(d.test)];
  const ds = await openDataset(d.train);
  const [a, b] = splitIndices(ds.length, d.testFraction, seed);
  return [await loadLabelled(ds.spec, a), await loadLabelled(ds.spec, b)];
}

/**
 * A set with per-pixel labels (scenes, parts, segfolder). A segfolder mask with a value ≥ its declared
 * class count (other than the ignore index) fails here with the file named.
 */
export async function loadMasks(spec: DatasetSpec, indices?: number[], keepImages = false): Promise<MaskSet> {
  let ds: Awaited<ReturnType<typeof openDataset>>;
  try {
    ds = await openDataset(spec);
  } catch (e) {
    throw new Error(`eval: cannot open the segmentation data: ${(e as Error).message}`);
  }
  if (ds.maskClasses === undefined)
    throw new Error(`eval: dataset '${spec.kind}' has no per-pixel labels (use scenes, parts or segfolder)`);
  const idx = indices ?? Array.from({ length: ds.length }, (_, i) => i);
  const masks: Uint8Array[] = [];
  const partMasks: Uint8Array[] = [];
  const objects: SampleObject[][] = [];
  const images: Image[] = [];
  let width = 0;
  let height = 0;
  for (const i of idx) {
    let s: Awaited<ReturnType<typeof ds.get>>;
    try {
      s = await ds.get(i);
    } catch (e) {
      throw new Error(`eval: bad segmentation sample ${i}: ${(e as Error).message}`);
    }
    if (!s.mask) throw new Error(`eval: sample ${i} of '${spec.kind}' has no mask`);
    if (width === 0) [width, height] = [s.image.width, s.image.height];
    if (s.image.width !== width || s.image.height !== height)
      throw new Error(
        `eval: images must share one size for the probe (got ${s.image.width}x${s.image.height} and ${width}x${height}); set the dataset's size option`,
      );
    masks.push(s.mask);
    if (s.partMask) partMasks.push(s.partMask);
    if (s.objects) objects.push(s.objects);
    if (keepImages) images.push(s.image);
  }
  return {
    spec: ds.spec,
    indices: idx,
    n: idx.length,
    width,
    height,
    masks,
    classes: ds.maskClasses,
    ignoreIndex: ds.ignoreIndex ?? 255,
    classNames: ds.classes ? [...ds.classes] : Array.from({ length: ds.maskClasses }, (_, c) => String(c)),
    partMasks: partMasks.length === idx.length ? partMasks : undefined,
    partTypes: ds.partTypes ? [...ds.partTypes] : undefined,
    objects: objects.length === idx.length ? objects : undefined,
    sourceImages: keepImages ? images : undefined,
    image: keepImages ? async (i) => images[i] as Image : async (i) => (await ds.get(idx[i] as number)).image,
  };
}

/** Features of a set, through the cache when the context has one. `extra` must name anything else that changes the images. */
export function embedSet(
  ctx: EvalContext,
  set: ImageSet,
  kinds: FeatureKind[],
  label: string,
  extra: Record<string, unknown> = {},
): Promise<FeatureSet> {
  return embedImages(ctx.bb, set.n, (i) => set.image(i), {
    input: ctx.input,
    kinds,
    batchSize: ctx.batchSize,
    label,
    progress: ctx.progress,
    cache: ctx.cacheDir
      ? { dir: ctx.cacheDir, key: { spec: publicSpec(set.spec), indices: set.indices, ...extra } }
      : undefined,
  });
}

/** A spec as recorded in results: resolved file listings (folder kinds) replaced by their length. */
export function publicSpec(spec: DatasetSpec): Record<string, unknown> {
  const out: Record<string, unknown> = { ...spec };
  for (const k of ['files', 'pairs', 'classNames']) {
    const v = out[k];
    if (Array.isArray(v)) {
      delete out[k];
      out[`${k}_count`] = v.length;
    }
  }
  return out;
}

/** Fields every result JSON starts with. */
export interface ProbeHeader {
  kind: string;
  format: 'locus-eval/1';
  created: string; // ISO date
  seed: number;
  checkpoint: {
    path: string | null;
    hash: string;
    method: string | null;
    step: number | null;
    network: 'teacher' | 'student' | null; // which network of the run was evaluated
  };
  model: VitConfig;
  input: InputSettings & { note: string };
  data: Record<string, unknown>;
  timing: Record<string, number>;
  machine: { threads: number; cores: number };
}

export function probeHeader(
  ctx: EvalContext,
  kind: string,
  data: Record<string, unknown>,
  timing: Record<string, number>,
): ProbeHeader {
  const native = ctx.bb.vit.cfg.imgSize;
  const note =
    ctx.input.size === native
      ? `images resized to the model's native input ${native}x${native} (${ctx.input.interp}); labels kept at their own resolution`
      : `images resized to ${ctx.input.size}x${ctx.input.size} (${ctx.input.interp}; model native ${native}, position embedding interpolated); labels kept at their own resolution`;
  const pub: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data))
    pub[k] = v && typeof v === 'object' && 'kind' in (v as object) ? publicSpec(v as DatasetSpec) : v;
  return {
    kind,
    format: 'locus-eval/1',
    created: new Date().toISOString(),
    seed: ctx.seed,
    checkpoint: {
      path: ctx.bb.checkpoint ?? null,
      hash: ctx.bb.hash,
      method: ctx.bb.method ?? null,
      step: ctx.bb.step ?? null,
      network: ctx.bb.network ?? null,
    },
    model: { ...ctx.bb.vit.cfg },
    input: { ...ctx.input, mean: [...ctx.input.mean], std: [...ctx.input.std], note },
    data: pub,
    timing,
    machine: { threads: getNumThreads(), cores: availableParallelism() },
  };
}

/** Seconds since start, and since the previous lap. */
export function timer(): { lap(): number; total(): number } {
  const t0 = performance.now();
  let last = t0;
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    lap() {
      const now = performance.now();
      const d = (now - last) / 1000;
      last = now;
      return r3(d);
    },
    total: () => r3((performance.now() - t0) / 1000),
  };
}

export function disposeAll(...ts: (Tensor | undefined | null)[]): void {
  for (const t of ts) t?.dispose();
}
