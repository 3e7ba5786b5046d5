// Serialisable dataset specs and the factory that opens them. Worker threads receive a spec
// (plain JSON) and re-open the dataset with `openDataset`; `Dataset.spec` is the *resolved*
// spec (file lists included for folders), so re-opening it in a worker is cheap and yields the
// same indexing as in the main thread.
import { FASHION_MNIST_CLASSES, fashionMnistImage, loadFashionMnist } from './fashion_mnist.js';
import { ImageFolder, SegmentationFolder } from './folder.js';
import { PART_CLASSES, PART_TYPES, renderParts } from './parts.js';
import { renderScene } from './scenes.js';
import type { Dataset, DatasetSpec } from './spec.js';

export type { Dataset, DatasetSpec, Sample, SampleObject, Split } from './spec.js';

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
