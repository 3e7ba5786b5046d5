// In-domain object-level data for the classification probes (issue 11 item 3): item crops cut, with their
// context, from the scenes the model was pretrained on (train scenes → probe train set, eval scenes, whose
// items are Fashion-MNIST *test* items, → probe test set), and object crops of the part-structured set. The
// crop is the square around the object's box enlarged by `context` (1.5: a quarter of the box side on each
// side), zero-padded past the canvas, resized to the model input like every eval image. Objects hidden
// under others (fewer than `minVisible` of their box's pixels carry their label) are skipped: their class
// is not in the picture. The single Fashion-MNIST items on black stay available as the out-of-domain row.
import { type DatasetSpec, openDataset } from '../data/datasets.js';
import type { Box } from '../data/types.js';
import { type LabelledData, type LabelledSet, labelledSplits } from './common.js';
import { cropPad, pyRound } from './crops.js';

export interface ObjectCropRule {
  context: number; // crop side = context · max(box w, h)
  minVisible: number; // fraction of the box's pixels labelled with the object
}

export const OBJECT_CROP_DEFAULTS: ObjectCropRule = { context: 1.5, minVisible: 0.2 };

/** Named data presets of the classification probes (`--set data=NAME`). */
export const LABELLED_PRESETS: Record<string, LabelledData> = {
  // out of domain: single 28-px items on black (the default)
  'fashion-mnist': {
    train: { kind: 'fashion-mnist', split: 'train', length: 2000 },
    test: { kind: 'fashion-mnist', split: 'test', length: 10000 },
    testFraction: 0.2,
  },
  // in domain: items of the pretraining scenes (≈ 3.6 per scene, ~80% kept)
  'scene-items': {
    train: { kind: 'scenes', split: 'train', length: 800 },
    test: { kind: 'scenes', split: 'eval', length: 3000 },
    testFraction: 0.2,
  },
  // in domain for a parts run: the objects of the part-structured scenes
  'part-objects': {
    train: { kind: 'parts', split: 'train', length: 800 },
    test: { kind: 'parts', split: 'eval', length: 4000 },
    testFraction: 0.2,
  },
};

/** The square crop box around an object box, side = context · max(w, h). */
export function contextBox(box: Box, context: number): Box {
  const [x0, y0, x1, y1] = box;
  const s = Math.max(1, context * Math.max(x1 - x0, y1 - y0));
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  return [pyRound(cx - s / 2), pyRound(cy - s / 2), pyRound(cx + s / 2), pyRound(cy + s / 2)];
}

/** Fraction of the (canvas-clipped) box's pixels whose mask value is `value`. */
export function visibleFraction(mask: Uint8Array, W: number, H: number, box: Box, value: number): number {
  const [x0, y0, x1, y1] = [Math.max(0, box[0]), Math.max(0, box[1]), Math.min(W, box[2]), Math.min(H, box[3])];
  let hit = 0;
  let all = 0;
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      all++;
      if (mask[y * W + x] === value) hit++;
    }
  return all > 0 ? hit / all : 0;
}

/** A labelled set of object crops of a scenes/parts dataset (crops re-cut on demand; labels collected once). */
export async function objectCropSet(
  spec: DatasetSpec,
  rule: ObjectCropRule = OBJECT_CROP_DEFAULTS,
): Promise<LabelledSet> {
  const ds = await openDataset(spec);
  const crops: { scene: number; box: Box; label: number }[] = [];
  for (let i = 0; i < ds.length; i++) {
    const s = await ds.get(i);
    if (!s.objects || !s.mask)
      throw new Error(
        `eval: object crops need a dataset with object boxes and masks (scenes or parts), got '${spec.kind}'`,
      );
    for (const ob of s.objects)
      if (visibleFraction(s.mask, s.image.width, s.image.height, ob.box, ob.cls + 1) >= rule.minVisible)
        crops.push({ scene: i, box: contextBox(ob.box, rule.context), label: ob.cls });
  }
  if (crops.length === 0) throw new Error(`eval: no visible objects in ${spec.kind} (length ${ds.length})`);
  const names = ds.classes ? [...ds.classes].slice(1) : undefined; // drop 'background'
  const classes = names?.length ?? Math.max(...crops.map((c) => c.label)) + 1;
  return {
    spec: {
      ...ds.spec,
      crops: 'objects',
      context: rule.context,
      minVisible: rule.minVisible,
    } as unknown as DatasetSpec,
    indices: crops.map((_, j) => j),
    n: crops.length,
    labels: Int32Array.from(crops, (c) => c.label),
    classes,
    classNames: names,
    image: async (j) => {
      const c = crops[j] as { scene: number; box: Box };
      return cropPad((await ds.get(c.scene)).image, c.box);
    },
  };
}

const isObjectKind = (spec: DatasetSpec) => spec.kind === 'scenes' || spec.kind === 'parts';

/**
 * The train and test sets of a classification probe: the `data` preset if named (else train/test as given);
 * a scenes or parts spec means object crops of it, any other kind its image-level labels.
 */
export async function classificationSets(
  o: LabelledData & { data: string | null; objectCrop: ObjectCropRule },
  seed: number,
): Promise<[LabelledSet, LabelledSet]> {
  const d = o.data === null ? o : LABELLED_PRESETS[o.data];
  if (!d)
    throw new Error(
      `eval: unknown data preset '${o.data}' (allowed: ${Object.keys(LABELLED_PRESETS).join(', ')}, or null)`,
    );
  if (!isObjectKind(d.train)) return labelledSplits(d, seed);
  if (!d.test) throw new Error('eval: object crops need a test spec (scenes/parts: a split of their own)');
  return [await objectCropSet(d.train, o.objectCrop), await objectCropSet(d.test, o.objectCrop)];
}
