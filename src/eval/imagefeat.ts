// The image-level readouts every classification-type probe scores (issue 11 item 4): the CLS token after the
// final norm, the mean of the patch tokens (LOCA, SCRL, GTSA and MIM never train the CLS), and a method's own
// image token where it has one (SelfPatch: its class-attention head run over the patch tokens).
import type { Tensor } from '../engine/index.js';
import type { EvalContext } from './common.js';
import type { FeatureKind, FeatureSet } from './features.js';

export type ImageFeature = 'cls' | 'mean' | 'attn';
export const IMAGE_FEATURES: readonly ImageFeature[] = ['cls', 'mean', 'attn'];

/** Readouts this backbone offers. */
export function availableFeatures(ctx: EvalContext): ImageFeature[] {
  return ctx.bb.imageToken ? ['cls', 'mean', 'attn'] : ['cls', 'mean'];
}

/** The feature kinds to embed for these readouts; a readout the backbone lacks fails naming what is allowed. */
export function imageFeatureKinds(ctx: EvalContext, feats: readonly string[]): FeatureKind[] {
  const ok = availableFeatures(ctx);
  for (const f of feats)
    if (!(ok as string[]).includes(f))
      throw new Error(
        f === 'attn'
          ? `eval: feature 'attn' (a method's class-attention token) asked for, but this backbone (method ${ctx.bb.method ?? 'unknown'}) has none (allowed: ${ok.join(', ')})`
          : `eval: unknown feature '${f}' (allowed: ${ok.join(', ')})`,
      );
  return [...new Set(feats)] as FeatureKind[];
}

export function pickFeature(f: FeatureSet, kind: ImageFeature): Tensor {
  const t = f[kind];
  if (!t) throw new Error(`eval: feature '${kind}' was not extracted`);
  return t;
}

/** Default readouts: CLS and mean patch token, plus the method's own token when it has one. */
export function defaultFeatures(ctx: EvalContext, asked: readonly ImageFeature[]): ImageFeature[] {
  return asked.filter((f) => f !== 'attn' || ctx.bb.imageToken !== undefined);
}
