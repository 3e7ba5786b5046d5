// Loader batches (typed arrays) → engine tensors.
import { type Tensor, tensor } from '../engine/index.js';
import type { Batch } from './worker.js';

export interface TensorBatch {
  /** One [B, 3, S, S] float tensor per view slot, in the recipe's order. */
  views: Tensor[];
  /** Extras by name: Float32Array → float32, Int32Array → int64 (indices), Uint8Array → uint8. */
  extras: Record<string, Tensor>;
  indices: number[];
  size: number;
}

export function toTensors(b: Batch, device?: string): TensorBatch {
  const views = b.views.map((v) => tensor(v.data, v.shape, { device }));
  const extras: Record<string, Tensor> = {};
  for (const [k, e] of Object.entries(b.extras)) {
    const t = tensor(e.data, e.shape, { device });
    extras[k] = e.data instanceof Int32Array ? t.to('int64') : t;
    if (e.data instanceof Int32Array) t.dispose();
  }
  return { views, extras, indices: b.indices, size: b.indices.length };
}
