// Model presets for `model.preset`: Locus's width-only presets (tiny/small/base: dim, depth, heads; the
// input and patch stay the config's) and timm's ViT names, which fix the input side and patch too
// (timm's vision_transformer.py model defs: embed_dim, depth, num_heads, patch_size, img_size).
// Fields given explicitly in the config win over the preset's.
import { VIT_PRESETS } from './vit.js';

export interface VitPreset {
  dim: number;
  depth: number;
  heads: number;
  patchSize?: number;
  imgSize?: number;
}

const WIDTHS = {
  ...VIT_PRESETS, // tiny, small, base
  large: { dim: 1024, depth: 24, heads: 16 },
  huge: { dim: 1280, depth: 32, heads: 16 },
} as const;

const timm = (w: keyof typeof WIDTHS, patchSize: number, imgSize: number): VitPreset => ({
  ...WIDTHS[w],
  patchSize,
  imgSize,
});

export const MODEL_PRESETS: Readonly<Record<string, VitPreset>> = {
  tiny: WIDTHS.tiny,
  small: WIDTHS.small,
  base: WIDTHS.base,
  vit_tiny_patch16_224: timm('tiny', 16, 224),
  vit_tiny_patch16_384: timm('tiny', 16, 384),
  vit_small_patch32_224: timm('small', 32, 224),
  vit_small_patch16_224: timm('small', 16, 224),
  vit_small_patch16_384: timm('small', 16, 384),
  vit_small_patch8_224: timm('small', 8, 224),
  vit_base_patch32_224: timm('base', 32, 224),
  vit_base_patch16_224: timm('base', 16, 224),
  vit_base_patch16_384: timm('base', 16, 384),
  vit_base_patch8_224: timm('base', 8, 224),
  vit_large_patch32_224: timm('large', 32, 224),
  vit_large_patch16_224: timm('large', 16, 224),
  vit_large_patch14_224: timm('large', 14, 224),
  vit_huge_patch14_224: timm('huge', 14, 224),
  deit_tiny_patch16_224: timm('tiny', 16, 224),
  deit_small_patch16_224: timm('small', 16, 224),
  deit_base_patch16_224: timm('base', 16, 224),
};

export const MODEL_PRESET_NAMES = Object.keys(MODEL_PRESETS) as [string, ...string[]];
