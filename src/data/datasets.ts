// Serialisable dataset specs and the factory that opens them. Worker threads receive a spec
// (plain JSON) and re-open the dataset with `openDataset`; `Dataset.spec` is the *resolved*
// spec (file lists included for folders), so re-opening it in a worker is cheap and yields the
// same indexing as in the main thread.
import { FASHION_MNIST_CLASSES, fashionMnistImage, loadFashionMnist } from './fashion_mnist.js';
import { ImageFolder, SegmentationFolder } from './folder.js';
import { PART_CLASSES, PART_TYPES, renderParts } from './parts.js';
import { renderScene } from './scenes.js';
import type { Box, Image } from './types.js';

/** One object of a sample (scenes: a Fashion-MNIST item; parts: an object with its parts). */
export interface SampleObject {
  cls: number; // class index (0-based; mask value = cls + 1)
  box: Box; // canvas pixels
  parts?: { type: number; box: Box; keypoint: [number, number] }[]; // parts dataset only
}

export interface Sample {
  index: number; // dataset index it was read from (after skip substitution: the index asked for)
  image: Image; // float32 HWC RGB in [0, 1]
  /** Image-level class: Fashion-MNIST label, or ImageFolder class index (sorted class names). */
  label?: number;
  /**
   * Per-pixel semantic labels, H*W row-major. scenes: 0 background, 1..10 Fashion-MNIST class + 1;
   * parts: 0 background, 1..6 object class + 1; segfolder: raw mask values (0..classes-1, or the
   * dataset's ignoreIndex).
   */
  mask?: Uint8Array;
  /** parts only: per-pixel part type, 0 background, 1..4 part type + 1. */
  partMask?: Uint8Array;
  /** scenes and parts: objects in drawing order (bottom first). */
  objects?: SampleObject[];
  path?: string; // folder datasets: the image file
}

export interface Dataset {
  readonly length: number;
  /** Class names: image-level classes (fashion-mnist, ImageFolder) or mask classes (scenes, parts). */
  readonly classes?: readonly string[];
  /** Mask values 0..maskClasses-1 are classes (scenes 11 and parts 7, counting background 0; segfolder `classes`). */
  readonly maskClasses?: number;
  readonly ignoreIndex?: number; // segfolder: mask value excluded from losses and metrics
  /** Part type names (parts only; partMask value = index + 1). */
  readonly partTypes?: readonly string[];
  /** Bad files skipped so far (folder kinds with skipBadImages). */
  readonly skipped?: readonly { path: string; reason: string }[];
  /** Resolved, serialisable spec: re-opening it gives the same dataset cheaply. */
  readonly spec: DatasetSpec;
  get(i: number): Promise<Sample>;
}

export type Split = 'train' | 'eval';

export type DatasetSpec =
  /** Fashion-MNIST scenes (the default data); `length` scenes, each a pure function of (seed, split, index). */
  | {
      kind: 'scenes';
      split: Split;
      length: number;
      size?: number; // canvas side, default 64
      seed?: number; // default 0
      minItems?: number; // default 2
      maxItems?: number; // default 5
      dir?: string; // Fashion-MNIST directory override
    }
  /** Part-structured synthetic scenes. */
  | {
      kind: 'parts';
      split: Split;
      length: number;
      size?: number;
      seed?: number;
      minObjects?: number;
      maxObjects?: number;
    }
  /** Raw 28x28 Fashion-MNIST images (grey replicated to RGB); 'eval' = 'test'. `length` truncates. */
  | { kind: 'fashion-mnist'; split: 'train' | 'test' | 'eval'; dir?: string; length?: number }
  /** Image folder: flat (unlabelled) or ImageFolder class layout root/<class>/**. */
  | {
      kind: 'folder';
      root: string;
      size?: number; // square output side; omitted = native size
      resize?: 'crop' | 'stretch'; // with size: centre-crop to square then resize (default) or squash
      layout?: 'auto' | 'flat' | 'classes'; // auto: top-level images → flat, else classes
      skipBadImages?: boolean;
      verify?: 'header' | 'full'; // check at open: headers only (default) or full decode
      /** Resolved listing (set by Dataset.spec); when present the folder is not re-listed. */
      files?: { path: string; label?: number }[];
      classNames?: string[];
    }
  /** Segmentation pairs: images dir + masks dir of single-channel PNGs with the same relative stem. */
  | {
      kind: 'segfolder';
      images: string;
      masks: string;
      classes: number;
      ignoreIndex?: number; // default 255
      size?: number; // square output side (centre crop + resize; masks nearest); omitted = native
      skipBadImages?: boolean;
      verify?: 'header' | 'full';
      pairs?: [image: string, mask: string][]; // resolved listing (set by Dataset.spec)
    };

/** Open a dataset from its spec. Folder kinds list and check their files here. */
export async function openDataset(spec: DatasetSpec): Promise<Dataset> {
  switch (spec.kind) {
    case 'scenes':
      return scenesDataset(spec);
    case 'parts':
      return partsDataset(spec);
    case 'fashion-mnist':
      return fashionDataset(spec);
    case 'folder':
      return ImageFolder.open(spec);
    case 'segfolder':
      return SegmentationFolder.open(spec);
    default:
      throw new Error(`unknown dataset kind: ${(spec as { kind: unknown }).kind}`);
  }
}

export function checkIndex(i: number, length: number, what: string): void {
  if (!(Number.isInteger(i) && i >= 0 && i < length))
    throw new RangeError(`${what}: index ${i} outside [0, ${length})`);
}

function checkLength(n: number, what: string): void {
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`${what}: length must be a positive integer, got ${n}`);
}

function scenesDataset(spec: Extract<DatasetSpec, { kind: 'scenes' }>): Dataset {
  checkLength(spec.length, 'scenes');
  const opts = { seed: spec.seed, size: spec.size, minItems: spec.minItems, maxItems: spec.maxItems, dir: spec.dir };
  renderScene(spec.split, 0, opts); // fail early (missing Fashion-MNIST, bad options)
  return {
    length: spec.length,
    classes: ['background', ...FASHION_MNIST_CLASSES],
    maskClasses: 11,
    spec,
    get: async (i) => {
      checkIndex(i, spec.length, 'scenes');
      const s = renderScene(spec.split, i, opts);
      return { index: i, image: s.image, mask: s.labels, objects: s.items };
    },
  };
}

function partsDataset(spec: Extract<DatasetSpec, { kind: 'parts' }>): Dataset {
  checkLength(spec.length, 'parts');
  const opts = { seed: spec.seed, size: spec.size, minObjects: spec.minObjects, maxObjects: spec.maxObjects };
  renderParts(spec.split, 0, opts);
  return {
    length: spec.length,
    classes: ['background', ...PART_CLASSES],
    maskClasses: 7,
    partTypes: PART_TYPES,
    spec,
    get: async (i) => {
      checkIndex(i, spec.length, 'parts');
      const s = renderParts(spec.split, i, opts);
      return { index: i, image: s.image, mask: s.objectMap, partMask: s.partMap, objects: s.objects };
    },
  };
}

function fashionDataset(spec: Extract<DatasetSpec, { kind: 'fashion-mnist' }>): Dataset {
  const ds = loadFashionMnist(spec.split, spec.dir);
  const length = spec.length === undefined ? ds.count : Math.min(spec.length, ds.count);
  checkLength(length, 'fashion-mnist');
  return {
    length,
    classes: FASHION_MNIST_CLASSES,
    spec,
    get: async (i) => {
      checkIndex(i, length, 'fashion-mnist');
      return { index: i, image: fashionMnistImage(ds, i), label: ds.labels[i] as number };
    },
  };
}
