// User data decoded with sharp: image folders (flat or ImageFolder class layout) and segmentation
// pairs (image + single-channel PNG mask with the same relative stem). Without a `size`, a sample is
// the original image (auto-oriented; shrunk only when its longer side exceeds maxSide), so that
// views are cropped from it as RandomResizedCrop does; `raw` carries its 8-bit pixels for native
// resampling. Bad files are skipped (skipBadImages) and recorded with their reason.
import { readdir } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { type DecodeOptions, decodeRaw, probeImage, toFloat } from './decode.js';
import {
  checkIdx,
  cmp,
  IMAGE_EXTENSIONS,
  isImage,
  listImages,
  mapPool,
  readClassNames,
  requireDir,
  stem,
  visible,
} from './listing.js';
import { checkLabels, decodeMask, type Mask, probeMask, resizeMask, resizeMaskTo } from './masks.js';
import type { Dataset, DatasetSpec, Sample, SkippedFile } from './spec.js';
import type { Image, RawImage } from './types.js';

export { decodeImage, decodeRaw } from './decode.js';
export { IMAGE_EXTENSIONS } from './listing.js';
export { decodeMask } from './masks.js';

export type FolderSpec = Extract<DatasetSpec, { kind: 'folder' }>;
export type SegFolderSpec = Extract<DatasetSpec, { kind: 'segfolder' }>;
type FileEntry = NonNullable<FolderSpec['files']>[number];

/** Default cap on the longer side of a decoded original (memory: 1024x768 RGB float is 9.4 MB). */
export const DEFAULT_MAX_SIDE = 1024;

/** The error for a folder without one readable file: names the first few and why. */
function allBad(what: string, skipped: SkippedFile[], total: number): Error {
  const list = skipped
    .slice(0, 3)
    .map((s) => `${s.path} (${s.reason.replace(`${s.path}: `, '')})`)
    .join('; ');
  const more = skipped.length > 3 ? `; and ${skipped.length - 3} more` : '';
  return new Error(`${what}: all ${total} images are unreadable: ${list}${more}`);
}

function sample(i: number, raw: RawImage, path: string, original?: { width: number; height: number }): Sample {
  // the float copy is made only when something reads it (views of folder photos resample `raw`)
  let float: Image | undefined;
  const s = {
    index: i,
    raw,
    path,
    get image(): Image {
      float ??= toFloat(raw);
      return float;
    },
  } as Sample;
  if (original && (original.width !== raw.width || original.height !== raw.height)) s.original = original;
  return s;
}

/** Image folder dataset: flat (unlabelled) or class layout root/<class>/** (labels by sorted class name). */
export class ImageFolder implements Dataset {
  readonly skipped: SkippedFile[] = [];
  private readonly bad = new Set<number>();

  private constructor(
    private readonly files: FileEntry[],
    readonly classes: readonly string[] | undefined,
    private readonly base: FolderSpec,
  ) {}

  static async open(spec: FolderSpec): Promise<ImageFolder> {
    if (spec.files) return new ImageFolder(spec.files, spec.classNames, spec);
    await requireDir(spec.root, 'image folder');
    const layout = spec.layout ?? 'auto';
    const top = (await readdir(spec.root, { withFileTypes: true })).filter(visible);
    const flat = layout === 'flat' || (layout === 'auto' && top.some((d) => d.isFile() && isImage(d.name)));
    let files: FileEntry[];
    let classes: string[] | undefined;
    if (flat) {
      files = (await listImages(spec.root)).map((path) => ({ path }));
    } else {
      classes = top
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort(cmp);
      files = [];
      for (const [label, name] of classes.entries()) {
        const inClass = await listImages(join(spec.root, name));
        if (inClass.length === 0)
          throw new Error(`image folder ${spec.root}: class directory ${join(spec.root, name)} has no images`);
        for (const path of inClass) files.push({ path, label });
      }
    }
    if (files.length === 0) {
      throw new Error(`image folder ${spec.root} is empty: no ${IMAGE_EXTENSIONS.join('/')} files found`);
    }
    const skipped: SkippedFile[] = [];
    const ok = await mapPool(files, 16, async (f) => {
      try {
        const dims = await probeImage(f.path);
        if (spec.verify === 'full') await decodeRaw(f.path);
        f.width = dims.width;
        f.height = dims.height;
        return true;
      } catch (e) {
        if (!spec.skipBadImages) throw e;
        skipped.push({ path: f.path, reason: (e as Error).message });
        return false;
      }
    });
    skipped.sort((a, b) => cmp(a.path, b.path));
    const good = files.filter((_, i) => ok[i]);
    if (good.length === 0) throw allBad(`image folder ${spec.root}`, skipped, files.length);
    const ds = new ImageFolder(good, classes, spec);
    ds.skipped.push(...skipped);
    return ds;
  }

  get length(): number {
    return this.files.length;
  }

  get skippedCount(): number {
    return this.skipped.length;
  }

  /** Resolved spec: carries the file list so workers need not list or probe again. */
  get spec(): FolderSpec {
    return { ...this.base, files: this.files, classNames: this.classes ? [...this.classes] : undefined };
  }

  async get(i: number): Promise<Sample> {
    checkIdx(i, this.files.length, this.base.root);
    const b = this.base;
    const opts: DecodeOptions = { size: b.size, resize: b.resize, autoOrient: true };
    if (b.size === undefined) opts.maxSide = b.maxSide ?? DEFAULT_MAX_SIDE;
    // A file that passed the header probe may still fail to decode: in skip mode the next good
    // file stands in (deterministic: depends only on the files), and the bad one is recorded.
    for (let k = 0; k < this.files.length; k++) {
      const j = (i + k) % this.files.length;
      if (this.bad.has(j)) continue;
      const f = this.files[j] as FileEntry;
      try {
        const raw = await decodeRaw(f.path, opts);
        const orig = b.size === undefined && f.width && f.height ? { width: f.width, height: f.height } : undefined;
        const s = sample(i, raw, f.path, orig);
        if (f.label !== undefined) s.label = f.label;
        return s;
      } catch (e) {
        if (!b.skipBadImages) throw e;
        this.bad.add(j);
        this.skipped.push({ path: f.path, reason: (e as Error).message });
      }
    }
    throw allBad(`image folder ${b.root}`, this.skipped, this.files.length);
  }
}

/** Segmentation pairs: images dir + masks dir; pairs are driven by the masks (VOC-style subsets). */
export class SegmentationFolder implements Dataset {
  readonly skipped: SkippedFile[] = [];
  readonly ignoreIndex: number;
  readonly maskClasses: number;
  readonly classes: readonly string[];
  private readonly bad = new Set<number>();

  private constructor(
    private readonly pairs: [string, string][],
    private readonly base: SegFolderSpec & { classes: number; classNames: string[] },
  ) {
    this.ignoreIndex = base.ignoreIndex ?? 255;
    this.maskClasses = base.classes;
    this.classes = base.classNames;
  }

  /** The class count and names: `classes`, a classes.txt / classes.json next to the masks, or both (then they must agree). */
  private static classSpec(spec: SegFolderSpec): { classes: number; classNames: string[] } {
    if (spec.classNames) return { classes: spec.classNames.length, classNames: spec.classNames };
    const named = readClassNames(spec.masks);
    if (named && spec.classes !== undefined && named.names.length !== spec.classes)
      throw new Error(`segfolder: classes = ${spec.classes} but ${named.file} names ${named.names.length} classes`);
    const classes = spec.classes ?? named?.names.length;
    if (classes === undefined)
      throw new Error(
        `segfolder: set classes (the number of mask labels) or put a classes.txt (one name a line) next to the masks in ${spec.masks}`,
      );
    if (!(Number.isInteger(classes) && classes >= 1 && classes <= 256))
      throw new Error(`segfolder: classes must be an integer in 1..256, got ${classes}`);
    return { classes, classNames: named?.names ?? Array.from({ length: classes }, (_, i) => String(i)) };
  }

  static async open(spec: SegFolderSpec): Promise<SegmentationFolder> {
    const ignore = spec.ignoreIndex ?? 255;
    if (!(Number.isInteger(ignore) && ignore >= 0 && ignore <= 255))
      throw new Error(`segfolder: ignoreIndex must be an integer in 0..255, got ${ignore}`);
    if (spec.pairs) return new SegmentationFolder(spec.pairs, { ...spec, ...SegmentationFolder.classSpec(spec) });
    await requireDir(spec.images, 'segmentation images folder');
    await requireDir(spec.masks, 'segmentation masks folder');
    const cs = SegmentationFolder.classSpec(spec);
    const { classes } = cs;
    const masks = (await listImages(spec.masks)).filter((p) => extname(p).toLowerCase() === '.png');
    if (masks.length === 0) throw new Error(`segmentation masks folder ${spec.masks} is empty: no .png masks found`);
    const byStem = new Map<string, string>();
    for (const p of await listImages(spec.images)) {
      const s = stem(spec.images, p);
      const prev = byStem.get(s);
      if (prev) throw new Error(`segfolder: two images share the stem '${s}': ${prev} and ${p}`);
      byStem.set(s, p);
    }
    const pairs: [string, string][] = masks.map((m) => {
      const img = byStem.get(stem(spec.masks, m));
      if (!img) throw new Error(`segfolder: mask ${m} has no image with the same name in ${spec.images}`);
      return [img, m];
    });
    const skipped: SkippedFile[] = [];
    const ok = await mapPool(pairs, 16, async ([img, m]) => {
      let isz: { width: number; height: number };
      let msz: { width: number; height: number };
      let mask: Mask | null = null; // verify 'full': decoded once, for its size and its labels
      try {
        isz = await probeImage(img);
        if (spec.verify === 'full') msz = mask = await decodeMask(m);
        else msz = await probeMask(m);
        if (spec.verify === 'full') await decodeRaw(img);
      } catch (e) {
        if (!spec.skipBadImages) throw e;
        skipped.push({ path: (e as Error).message.includes(m) ? m : img, reason: (e as Error).message });
        return false;
      }
      if (isz.width !== msz.width || isz.height !== msz.height) {
        throw new Error(
          `segfolder: mask ${m} is ${msz.width}x${msz.height} but its image ${img} is ${isz.width}x${isz.height}`,
        );
      }
      if (mask) checkLabels(mask.data, m, classes, ignore);
      return true;
    });
    skipped.sort((a, b) => cmp(a.path, b.path));
    const good = pairs.filter((_, i) => ok[i]);
    if (good.length === 0) throw allBad(`segfolder ${spec.images}`, skipped, pairs.length);
    const ds = new SegmentationFolder(good, { ...spec, ...cs });
    ds.skipped.push(...skipped);
    return ds;
  }

  get length(): number {
    return this.pairs.length;
  }

  get skippedCount(): number {
    return this.skipped.length;
  }

  get spec(): SegFolderSpec {
    return { ...this.base, pairs: this.pairs };
  }

  async get(i: number): Promise<Sample> {
    checkIdx(i, this.pairs.length, this.base.images);
    const { size, maxSide } = this.base;
    for (let k = 0; k < this.pairs.length; k++) {
      const j = (i + k) % this.pairs.length;
      if (this.bad.has(j)) continue;
      const [img, m] = this.pairs[j] as [string, string];
      let raw: RawImage;
      let mask: Mask;
      try {
        mask = await decodeMask(m);
        raw = await decodeRaw(img); // native first: sizes must match before resizing
      } catch (e) {
        if (!this.base.skipBadImages) throw e;
        this.bad.add(j);
        this.skipped.push({ path: (e as Error).message.includes(m) ? m : img, reason: (e as Error).message });
        continue;
      }
      if (raw.width !== mask.width || raw.height !== mask.height) {
        throw new Error(
          `segfolder: mask ${m} is ${mask.width}x${mask.height} but its image ${img} is ${raw.width}x${raw.height}`,
        );
      }
      checkLabels(mask.data, m, this.maskClasses, this.ignoreIndex);
      const original = { width: raw.width, height: raw.height };
      if (size !== undefined) {
        // Both resized from raw pixels with the same 'cover' geometry, so they stay aligned.
        raw = await decodeRaw(raw, { size });
        mask = await resizeMask(mask, size);
      } else if (maxSide !== undefined && Math.max(raw.width, raw.height) > maxSide) {
        raw = await decodeRaw(raw, { maxSide });
        mask = await resizeMaskTo(mask, raw.width, raw.height);
      }
      const s = sample(i, raw, img, size === undefined ? original : undefined);
      s.mask = mask.data;
      return s;
    }
    throw allBad(`segfolder ${this.base.images}`, this.skipped, this.pairs.length);
  }
}
