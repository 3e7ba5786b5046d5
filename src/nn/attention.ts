// Multi-head self- and cross-attention (timm names: qkv/proj; q/kv/proj for cross-attention).
// The attention itself is one addon call (engine/fused.ts): libtorch's fused scaled_dot_product_attention
// where the build has it and no map is asked for, else the explicit matmul–softmax–matmul path.
// Each branch runs in a tidy scope, so a no-grad pass (eval, teachers) frees its intermediates as it goes.
import { attention, type Tensor, tidy } from '../engine/index.js';
import { Dropout, dropPath, LayerNorm, Linear, Mlp } from './layers.js';
import { Module } from './module.js';

export class Attention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly projDrop: Dropout;
  readonly scale: number;
  constructor(
    readonly dim: number,
    readonly heads: number,
    o: { qkvBias?: boolean; attnDrop?: number; projDrop?: number } = {},
    readonly attnDrop = o.attnDrop ?? 0,
  ) {
    super();
    this.qkv = this.child('qkv', new Linear(dim, dim * 3, { bias: o.qkvBias ?? true }));
    this.proj = this.child('proj', new Linear(dim, dim));
    this.projDrop = this.child('proj_drop', new Dropout(o.projDrop ?? 0));
    this.scale = (dim / heads) ** -0.5;
  }
  /** x [B,N,D] → [out [B,N,D], attention [B,H,N,N] (null when `weights` is false)]. */
  forward(x: Tensor, weights = true): [Tensor, Tensor | null] {
    return tidy(() => {
      const [B, N] = x.shape;
      const qkv = this.qkv
        .forward(x)
        .reshape(B, N, 3, this.heads, this.dim / this.heads)
        .permute(2, 0, 3, 1, 4);
      const [o, attn] = attention(qkv.select(0, 0), qkv.select(0, 1), qkv.select(0, 2), {
        scale: this.scale,
        dropout: this.attnDrop,
        training: this.training,
        weights,
      });
      return [this.projDrop.forward(this.proj.forward(o)), attn];
    });
  }
}

/** Queries from one token set attend to keys/values from another. */
export class CrossAttention extends Module {
  readonly q: Linear;
  readonly kv: Linear;
  readonly proj: Linear;
  readonly scale: number;
  constructor(
    readonly dim: number,
    readonly heads: number,
    o: { qkvBias?: boolean } = {},
  ) {
    super();
    this.q = this.child('q', new Linear(dim, dim, { bias: o.qkvBias ?? true }));
    this.kv = this.child('kv', new Linear(dim, dim * 2, { bias: o.qkvBias ?? true }));
    this.proj = this.child('proj', new Linear(dim, dim));
    this.scale = (dim / heads) ** -0.5;
  }
  /** x [B,Nq,D], context [B,Nk,D] → [out [B,Nq,D], attention [B,H,Nq,Nk] (null when `weights` is false)]. */
  forward(x: Tensor, context: Tensor, weights = true): [Tensor, Tensor | null] {
    return tidy(() => {
      const [B, Nq] = x.shape;
      const Nk = context.shape[1];
      const d = this.dim / this.heads;
      const q = this.q.forward(x).reshape(B, Nq, this.heads, d).transpose(1, 2);
      const kv = this.kv.forward(context).reshape(B, Nk, 2, this.heads, d).permute(2, 0, 3, 1, 4);
      const [o, attn] = attention(q, kv.select(0, 0), kv.select(0, 1), { scale: this.scale, weights });
      return [this.proj.forward(o), attn];
    });
  }
}

/** Pre-norm transformer block (timm/DINO): x + drop_path(attn(norm1(x))), then the same with the MLP. */
export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  constructor(
    dim: number,
    heads: number,
    o: { mlpRatio?: number; qkvBias?: boolean; dropPath?: number; drop?: number; attnDrop?: number } = {},
    readonly dropPathRate = o.dropPath ?? 0,
  ) {
    super();
    this.norm1 = this.child('norm1', new LayerNorm(dim));
    this.attn = this.child(
      'attn',
      new Attention(dim, heads, { qkvBias: o.qkvBias, attnDrop: o.attnDrop, projDrop: o.drop }),
    );
    this.norm2 = this.child('norm2', new LayerNorm(dim));
    this.mlp = this.child('mlp', new Mlp(dim, Math.round(dim * (o.mlpRatio ?? 4)), dim, o.drop ?? 0));
  }
  /** Returns the new tokens and this block's attention map (null when `weights` is false). */
  forward(x: Tensor, weights = true): [Tensor, Tensor | null] {
    return tidy((): [Tensor, Tensor | null] => {
      const y = tidy((): [Tensor, Tensor | null] => {
        const [a, attn] = this.attn.forward(this.norm1.forward(x), weights);
        return [x.add(dropPath(a, this.dropPathRate, this.training)), attn];
      });
      const m = tidy(() => dropPath(this.mlp.forward(this.norm2.forward(y[0])), this.dropPathRate, this.training));
      return [y[0].add(m), y[1]];
    });
  }
}

/** Cross-attention block with separate query/context norms (LOCA's CrossAttentionEncoderBlock). */
export class CrossBlock extends Module {
  readonly normQ: LayerNorm;
  readonly normKv: LayerNorm;
  readonly attn: CrossAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  constructor(dim: number, heads: number, o: { mlpRatio?: number; qkvBias?: boolean } = {}) {
    super();
    this.normQ = this.child('norm_q', new LayerNorm(dim));
    this.normKv = this.child('norm_kv', new LayerNorm(dim));
    this.attn = this.child('attn', new CrossAttention(dim, heads, { qkvBias: o.qkvBias }));
    this.norm2 = this.child('norm2', new LayerNorm(dim));
    this.mlp = this.child('mlp', new Mlp(dim, Math.round(dim * (o.mlpRatio ?? 4))));
  }
  forward(x: Tensor, context: Tensor): Tensor {
    const [a] = this.attn.forward(this.normQ.forward(x), this.normKv.forward(context), false);
    const y = x.add(a);
    return y.add(this.mlp.forward(this.norm2.forward(y)));
  }
}
