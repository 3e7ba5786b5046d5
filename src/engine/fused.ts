// Fused multi-op kernels from the addon (addon/attention.cc): fewer JS→C++ hops and no JS handles for the
// intermediates, which are freed inside C++ as soon as they are dead.
import { type Handle, native } from './native.js';
import { Tensor } from './tensor.js';

/** Whether this libtorch build has the fused scaled_dot_product_attention (libtorch 2.x; detected at build time). */
export function sdpaAvailable(): boolean {
  return typeof native.sdpaAvailable === 'function' && (native.sdpaAvailable() as boolean);
}

export interface AttentionOptions {
  scale?: number; // default 1/√d
  dropout?: number; // on the attention weights, when training
  training?: boolean;
  /** Return the attention weights [B,H,Nq,Nk] (forces the explicit path). */
  weights?: boolean;
  /** Use the explicit matmul–softmax–matmul path even where the fused kernel exists. */
  explicit?: boolean;
}

/**
 * softmax(q·kᵀ·scale)·v over heads, q [B,H,Nq,d], k/v [B,H,Nk,d] → [out [B,Nq,H·d], weights or null].
 * The fused kernel is used when the build has it, the scale is 1/√d and no weights are asked for.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): [Tensor, Tensor | null] {
  const [out, attn] = native.attention(
    q.handle,
    k.handle,
    v.handle,
    o.scale,
    o.dropout ?? 0,
    o.training ?? false,
    o.weights ?? false,
    o.explicit ?? false,
  ) as [Handle, Handle | null];
  return [new Tensor(out), attn === null ? null : new Tensor(attn)];
}
