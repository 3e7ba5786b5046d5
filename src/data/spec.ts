// The dataset contract: samples, the Dataset interface and the serialisable specs every kind is opened
// from. Kept apart from the factory (datasets.ts) so that the kinds' modules (folder.ts, …) import the
// contract without importing the factory that imports them.
import type { Box, Image, RawImage } from './types.js';

/** One object of a sample (scenes: a Fashion-MNIST item; parts: an object with its parts). */
export interface SampleObject {
  cls: number; // class index (0-based; mask value = cls + 1)
  box: Box; // canvas pixels
  parts?: { type: number; box: Box; keypoint: [number, number] }[]; // parts dataset only
}

export interface Sample {
  index: number; // dataset index it was read from (after skip substitution: the index asked for)
  image: Image; // float32 HWC RGB in [0, 1]
  /** Folder kinds: the same pixels as 8-bit RGB (what views are resampled from natively, as PIL does). */
  raw?: RawImage;
  /** Folder kinds: the file's own size (auto-oriented) when the decode was capped by maxSide; else absent. */
  original?: { width: number; height: number };
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

/** A bad file a dataset skipped, and why (folder kinds with skipBadImages). */
export interface SkippedFile {
  path: string;
  reason: string;
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
  readonly skipped?: readonly SkippedFile[];
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
      size?: number; // square output side; omitted = the original image (views are cropped from it)
      resize?: 'crop' | 'stretch'; // with size: centre-crop to square then resize (default) or squash
      /** Without size: images whose longer side exceeds this are shrunk to it (memory cap); default 1024. */
      maxSide?: number;
      layout?: 'auto' | 'flat' | 'classes'; // auto: top-level images → flat, else classes
      skipBadImages?: boolean;
      verify?: 'header' | 'full'; // check at open: headers only (default) or full decode
      /** Resolved listing (set by Dataset.spec); when present the folder is not re-listed. */
      files?: { path: string; label?: number; width?: number; height?: number }[];
      classNames?: string[];
    }
  /** Segmentation pairs: images dir + masks dir of single-channel PNGs with the same relative stem. */
  | {
      kind: 'segfolder';
      images: string;
      masks: string;
      /** Number of mask classes; may be omitted when a classes.txt / classes.json names them (next to the masks). */
      classes?: number;
      ignoreIndex?: number; // default 255
      size?: number; // square output side (centre crop + resize; masks nearest); omitted = native
      maxSide?: number; // without size: the image-only cap, as folder's (used when pretraining on the images)
      /** Resolved class names (set by Dataset.spec from the classes file, else '0', '1', …). */
      classNames?: string[];
      skipBadImages?: boolean;
      verify?: 'header' | 'full';
      pairs?: [image: string, mask: string][]; // resolved listing (set by Dataset.spec)
    };
