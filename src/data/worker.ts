// Batch building (shared by the in-process path and the worker threads) and the worker entry.
//
// A sample's augmentation draws from Rng(deriveSeed(seed, AUG_STREAM, epoch, index)) only, so a
// batch is a pure function of (dataset, recipe, seed, epoch, indices), whichever thread builds it.
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { normalizeInto } from './augment.js';
import { type Dataset, type DatasetSpec, openDataset } from './datasets.js';
import { deriveSeed, Rng } from './rng.js';
import type { SkippedFile } from './spec.js';
import { type Extra, renderViews, type ViewRecipe, type ViewSet } from './views.js';

export const AUG_STREAM = 0x41554721;

export type TypedData = Float32Array | Int32Array | Uint8Array;

/**
 * A collated batch. Views, per recipe (slot order): multicrop: G globals then L locals; loca:
 * reference, query0, F focal queries; scrl: view 1, view 2; gtsa: G globals then L locals; plain: 1.
 * Extras (V views): all recipes: label Int32 [B] (−1 if none), view_box Float32 [B, V, 4] (source
 * px), view_flipped Uint8 [B, V], view_rotation Int32 [B, V] (CCW quarter turns).
 * loca: loca_labels_q0 Int32 [B, (querySize/patch)²], loca_labels_focal Int32 [B, F, (focalSize/patch)²]
 * (reference raster index or −1). scrl: scrl_boxes1 / scrl_boxes2 Float32 [K, 5] = (b, x0, y0, x1, y1)
 * in view-1 / view-2 pixels, row i of both matched (K = boxes.count·B). gtsa: gtsa_gc Float32
 * [B, G, V, 4] (global i ∩ view j in global i's rotated frame), gtsa_all Float32 [B, V, G, 4] (view j
 * ∩ global g in view j's rotated frame). plain: mask / part_mask Uint8 [B, H, W] when the dataset has them.
 */
export interface Batch {
  /** One entry per view slot: NCHW [B, 3, S, S], normalised. */
  views: { data: Float32Array; shape: number[] }[];
  /** Stacked per-sample extras [B, ...]; ragged ones (boxes) are [K, 1 + w] rows whose first column is the batch index. */
  extras: Record<string, { data: TypedData; shape: number[] }>;
  /** Dataset index of each batch row. */
  indices: number[];
  /** Bad files the dataset skipped while this batch was built (folder kinds with skipBadImages). */
  skipped?: SkippedFile[];
}

function sampleError(e: unknown, epoch: number, index: number): Error {
  const msg = e instanceof Error ? e.message : String(e);
  return new Error(`data loader: epoch ${epoch}, sample ${index}: ${msg}`, { cause: e });
}

/** Build one collated batch of the given dataset indices. */
export async function buildBatch(
  ds: Dataset,
  recipe: ViewRecipe,
  seed: number,
  epoch: number,
  indices: number[],
): Promise<Batch> {
  const sets: ViewSet[] = [];
  const before = ds.skipped?.length ?? 0;
  for (const index of indices) {
    try {
      const sample = await ds.get(index);
      sets.push(await renderViews(recipe, sample, new Rng(deriveSeed(seed, AUG_STREAM, epoch, index))));
    } catch (e) {
      throw sampleError(e, epoch, index);
    }
  }
  const batch = collate(sets, indices, recipe);
  const skipped = ds.skipped?.slice(before) ?? [];
  if (skipped.length > 0) batch.skipped = skipped.map((x) => ({ path: x.path, reason: x.reason }));
  return batch;
}

/** Stack view sets into a Batch (normalising views into NCHW). */
export function collate(sets: ViewSet[], indices: number[], recipe: ViewRecipe): Batch {
  const B = sets.length;
  const first = sets[0];
  if (!first) throw new Error('collate: empty batch');
  const { mean, std } = recipe.normalize;
  const views = first.views.map((v0, slot) => {
    const { width: S, height: Hh, channels: C } = v0.image;
    const per = S * Hh * C;
    const data = new Float32Array(B * per);
    sets.forEach((s, b) => {
      const img = s.views[slot]?.image;
      if (!img || img.width !== S || img.height !== Hh || img.channels !== C) {
        throw new Error(`collate: view ${slot} of sample ${indices[b]} differs in shape from the batch's first sample`);
      }
      normalizeInto(img, data, b * per, mean, std);
    });
    return { data, shape: [B, C, Hh, S] };
  });
  const extras: Batch['extras'] = {};
  for (const [key, e0] of Object.entries(first.extras)) {
    const all = sets.map((s, b) => {
      const e = s.extras[key];
      if (!e) throw new Error(`collate: sample ${indices[b]} lacks extra '${key}'`);
      return e;
    });
    extras[key] = e0.ragged ? stackRagged(all) : stack(all, key, indices);
  }
  return { views, extras, indices: [...indices] };
}

function alloc(proto: TypedData, n: number): TypedData {
  return proto instanceof Float32Array
    ? new Float32Array(n)
    : proto instanceof Int32Array
      ? new Int32Array(n)
      : new Uint8Array(n);
}

function stack(all: Extra[], key: string, indices: number[]): { data: TypedData; shape: number[] } {
  const e0 = all[0] as Extra;
  const per = e0.data.length;
  const data = alloc(e0.data, all.length * per);
  all.forEach((e, b) => {
    if (e.data.length !== per || e.shape.join() !== e0.shape.join()) {
      throw new Error(`collate: extra '${key}' of sample ${indices[b]} has shape [${e.shape}], expected [${e0.shape}]`);
    }
    data.set(e.data, b * per);
  });
  return { data, shape: [all.length, ...e0.shape] };
}

function stackRagged(all: Extra[]): { data: TypedData; shape: number[] } {
  const e0 = all[0] as Extra;
  const w = e0.shape.slice(1).reduce((a, b) => a * b, 1);
  const rows = all.reduce((n, e) => n + (e.shape[0] as number), 0);
  const data = alloc(e0.data, rows * (w + 1));
  let r = 0;
  all.forEach((e, b) => {
    for (let i = 0; i < (e.shape[0] as number); i++, r++) {
      data[r * (w + 1)] = b;
      data.set(e.data.subarray(i * w, (i + 1) * w), r * (w + 1) + 1);
    }
  });
  return { data, shape: [rows, w + 1] };
}

/** Every ArrayBuffer of a batch, for postMessage's transfer list. */
export function transferList(b: Batch): ArrayBuffer[] {
  const bufs = new Set<ArrayBuffer>();
  for (const v of b.views) bufs.add(v.data.buffer as ArrayBuffer);
  for (const e of Object.values(b.extras)) bufs.add(e.data.buffer as ArrayBuffer);
  return [...bufs];
}

// ---------------------------------------------------------------- worker entry

export interface WorkerInit {
  locusLoader: true;
  dataset: DatasetSpec;
  recipe: ViewRecipe;
  seed: number;
}

export interface WorkerTask {
  id: number;
  epoch: number;
  indices: number[];
}

export type WorkerReply = { id: number; batch: Batch } | { id: number; error: { message: string; stack?: string } };

const init = workerData as WorkerInit | undefined;
if (!isMainThread && parentPort && init?.locusLoader) {
  const port = parentPort;
  const ds = openDataset(init.dataset);
  ds.catch(() => {}); // reported per task
  let chain: Promise<void> = Promise.resolve();
  port.on('message', (t: WorkerTask) => {
    chain = chain.then(async () => {
      try {
        const batch = await buildBatch(await ds, init.recipe, init.seed, t.epoch, t.indices);
        port.postMessage({ id: t.id, batch } satisfies WorkerReply, transferList(batch));
      } catch (e) {
        const err = e instanceof Error ? e : new Error(String(e));
        port.postMessage({ id: t.id, error: { message: err.message, stack: err.stack } } satisfies WorkerReply);
      }
    });
  });
}
