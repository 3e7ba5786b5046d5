// Parameter initialisers as in timm/DINO (in place, no grad).
import { noGrad, type Tensor } from '../engine/index.js';

/** Truncated normal: N(mean, std) restricted to [a, b], by inverse-CDF sampling (timm's trunc_normal_). */
export function truncNormal_(t: Tensor, std = 0.02, mean = 0, a = -2, b = 2): Tensor {
  const cdf = (x: number) => (1 + erf((x - mean) / std / Math.SQRT2)) / 2;
  const l = cdf(a);
  const u = cdf(b);
  return noGrad(() =>
    t
      .uniform_(2 * l - 1, 2 * u - 1)
      .erfinv_()
      .mul_(std * Math.SQRT2)
      .add_(mean)
      .clamp_(a, b),
  );
}

// Abramowitz–Stegun 7.1.26 is too coarse near the tails; this series/continued-fraction pair is exact to ~1e-15.
function erf(x: number): number {
  const sign = x < 0 ? -1 : 1;
  const z = Math.abs(x);
  if (z < 2.5) {
    let sum = z;
    let term = z;
    for (let n = 1; n < 60; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return (sign * 2 * sum) / Math.sqrt(Math.PI);
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (z + f);
  return sign * (1 - Math.exp(-z * z) / Math.sqrt(Math.PI) / (z + f));
}

export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}
export function ones_(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}
export function normal_(t: Tensor, std: number, mean = 0): Tensor {
  return noGrad(() => t.normal_(mean, std));
}

/**
 * PyTorch's default Conv2d/Linear init: kaiming_uniform_(a=√5) on the weight, i.e. U(±1/√fan_in) (std
 * 1/√(3·fan_in): 0.083 at a 4×4×3 patch), and U(±1/√fan_in) on the bias. DINO, SelfPatch, iBOT and GTSA
 * leave their patch-embedding conv at this (their ViT's _init_weights touches Linear and LayerNorm only).
 */
export function torchDefault_(weight: Tensor, bias: Tensor | null): void {
  const fanIn = weight.shape.slice(1).reduce((a, b) => a * b, 1);
  const bound = 1 / Math.sqrt(fanIn);
  noGrad(() => {
    weight.uniform_(-bound, bound);
    bias?.uniform_(-bound, bound);
  });
}

/**
 * Flax's lecun_normal (scenic's ViT patch embedding, LOCA): a normal truncated at ±2σ with its std
 * corrected to 1/√fan_in (σ = (1/√fan_in)/0.8796…, jax's variance_scaling 'truncated_normal'); bias zero.
 */
export function lecunNormal_(weight: Tensor, bias: Tensor | null): void {
  const fanIn = weight.shape.slice(1).reduce((a, b) => a * b, 1);
  const sigma = 1 / Math.sqrt(fanIn) / 0.8796256610342398;
  truncNormal_(weight, sigma, 0, -2 * sigma, 2 * sigma);
  if (bias) zeros_(bias);
}

/** The patch-embedding conv's inits: 'torch' (PyTorch default), 'lecun-normal' (flax), 'trunc-normal' (timm's 0.02). */
export const PATCH_INITS = ['torch', 'lecun-normal', 'trunc-normal'] as const;
export type PatchInit = (typeof PATCH_INITS)[number];

export function initPatchEmbed_(conv: { weight: Tensor; bias: Tensor | null }, kind: PatchInit): void {
  if (kind === 'torch') torchDefault_(conv.weight, conv.bias);
  else if (kind === 'lecun-normal') lecunNormal_(conv.weight, conv.bias);
  else {
    truncNormal_(conv.weight, 0.02);
    if (conv.bias) zeros_(conv.bias);
  }
}
