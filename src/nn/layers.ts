// Basic layers with timm/DINO parameter names and initialisation.
import { conv2d, dropout, empty, layerNorm, linear, ones, rand, type Tensor, tidy, zeros } from '../engine/index.js';
import { truncNormal_ } from './init.js';
import { Module } from './module.js';

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  /** weight [out, in] ~ truncated N(0, initStd) (timm ViT), bias 0. */
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    o: { bias?: boolean; initStd?: number } = {},
  ) {
    super();
    this.weight = this.param('weight', truncNormal_(empty([outFeatures, inFeatures]), o.initStd ?? 0.02));
    this.bias = (o.bias ?? true) ? this.param('bias', zeros([outFeatures])) : null;
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

export class LayerNorm extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
    affine = true,
  ) {
    super();
    this.weight = affine ? this.param('weight', ones([dim])) : null;
    this.bias = affine ? this.param('bias', zeros([dim])) : null;
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    inCh: number,
    outCh: number,
    readonly kernel: number,
    readonly o: { stride?: number; padding?: number; bias?: boolean; initStd?: number } = {},
  ) {
    super();
    this.weight = this.param('weight', truncNormal_(empty([outCh, inCh, kernel, kernel]), o.initStd ?? 0.02));
    this.bias = (o.bias ?? true) ? this.param('bias', zeros([outCh])) : null;
  }
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.o.stride ?? 1, padding: this.o.padding ?? 0 });
  }
}

export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}

/** Stochastic depth: zeroes whole samples' residual branches with probability p, rescaling the rest. */
export function dropPath(x: Tensor, p: number, training: boolean): Tensor {
  if (p === 0 || !training) return x;
  const shape = [x.shape[0], ...x.shape.slice(1).map(() => 1)];
  const keepMask = rand(shape, { device: x.device }).ge(p).to(x.dtype);
  return x.mul(keepMask).div(1 - p);
}

/** timm's Mlp: fc1 → GELU → drop → fc2 → drop. */
export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(
    inF: number,
    hidden: number,
    outF = inF,
    readonly drop = 0,
  ) {
    super();
    this.fc1 = this.child('fc1', new Linear(inF, hidden));
    this.fc2 = this.child('fc2', new Linear(hidden, outF));
  }
  /** In a tidy scope: the hidden activations are freed as soon as fc2 has them (a no-grad pass keeps none). */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = dropout(this.fc1.forward(x).gelu(), this.drop, this.training);
      return dropout(this.fc2.forward(h), this.drop, this.training);
    });
  }
}
