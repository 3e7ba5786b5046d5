// Frozen features for the probes: images → resize to the eval input size → normalise → backbone in
// eval mode under noGrad, batched; CLS, mean patch token, patch tokens and (optionally) a method's
// projector output. Results can be cached per (checkpoint hash, data, input settings) as safetensors.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { IMAGENET_MEAN, IMAGENET_STD, type Interp, normalizeInto } from '../data/augment.js';
import { resizeCenterCrop } from '../data/resample.js';
import type { Image } from '../data/types.js';
import { cat, keep, noGrad, type Tensor, tensor, tidy } from '../engine/index.js';
import { loadMetadata, loadTensors, saveTensors } from '../engine/io.js';
import type { VisionTransformer } from '../nn/index.js';

/** What the probes evaluate: a frozen ViT plus where it came from. */
export interface EvalBackbone {
  vit: VisionTransformer;
  /** Content hash of the checkpoint (recorded in every result and in cache keys); 'random-<seed>' for random init. */
  hash: string;
  checkpoint?: string; // path, when loaded from one
  method?: string;
  step?: number; // training steps behind the checkpoint
  /** Frees everything the loader allocated (the method's networks), when it owns them. */
  dispose?: () => void;
  /** The method's projector on the CLS token (part-aware retrieval "projector" features), where it has one. */
  projector?: (cls: Tensor) => Tensor;
  /** The method's own image token from the patch tokens (SelfPatch: class-attention output), where it has one. */
  imageToken?: (patches: Tensor) => Tensor;
  /** Which network the backbone is: 'teacher' (EMA) or 'student' (trained by gradient). */
  network?: 'teacher' | 'student';
}

/** How images become model inputs. Stated in every result JSON. */
export interface InputSettings {
  size: number; // square side fed to the model (default: the model's native imgSize = global crop size)
  interp: Interp;
  mean: readonly number[];
  std: readonly number[];
}

/** The eval input: the model's native size, bilinear, ImageNet normalisation (the data pipeline's `plain` recipe). */
export function defaultInput(vit: VisionTransformer, size?: number): InputSettings {
  const s = size ?? vit.cfg.imgSize;
  if (!(Number.isInteger(s) && s > 0 && s % vit.cfg.patchSize === 0))
    throw new Error(`eval input size ${s} must be a positive multiple of the patch size ${vit.cfg.patchSize}`);
  return { size: s, interp: 'bilinear', mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] };
}

/** Images → one normalised [B, 3, S, S] tensor (resized where their size differs). */
export function imagesToTensor(images: Image[], input: InputSettings): Tensor {
  const S = input.size;
  const buf = new Float32Array(images.length * 3 * S * S);
  images.forEach((img, i) => {
    if (img.channels !== 3) throw new Error(`eval: expected RGB images, got ${img.channels} channels`);
    // non-square photos: Resize + CenterCrop (never stretched); square images are just resized
    const r = img.width === S && img.height === S ? img : resizeCenterCrop(img, S, input.interp);
    normalizeInto(r, buf, i * 3 * S * S, input.mean, input.std);
  });
  return tensor(buf, [images.length, 3, S, S]);
}

export type FeatureKind = 'cls' | 'mean' | 'patches' | 'proj' | 'attn';

/** Features of n images, row i = image i. Tensors are kept (outside tidy scopes): dispose with disposeFeatures. */
export interface FeatureSet {
  n: number;
  grid: [number, number];
  cls?: Tensor; // [n, D] after the final norm
  mean?: Tensor; // [n, D] mean of the patch tokens
  patches?: Tensor; // [n, h·w, D]
  proj?: Tensor; // [n, P] projector output
  attn?: Tensor; // [n, D] the method's own image token
}

export function disposeFeatures(f: FeatureSet): void {
  for (const k of ['cls', 'mean', 'patches', 'proj', 'attn'] as const) f[k]?.dispose();
}

export interface EmbedOptions {
  input: InputSettings;
  kinds: FeatureKind[];
  batchSize?: number; // default 64
  label?: string; // progress bar label
  progress?: boolean; // default: on when stderr is a TTY (and LOCUS_NO_PROGRESS unset)
  /** Cache: directory and everything that determines the features besides the backbone hash and input. */
  cache?: { dir: string; key: Record<string, unknown> };
}

function progressBar(label: string, total: number, on: boolean | undefined): cliProgress.SingleBar | null {
  const show = on ?? (process.stderr.isTTY === true && !process.env.LOCUS_NO_PROGRESS);
  if (!show || total <= 0) return null;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label.padEnd(18)} {bar} {value}/{total} images | {duration_formatted} (eta {eta_formatted})`,
      stream: process.stderr,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return bar;
}

/** The cache file for a key (sha256 of its canonical JSON). */
export function cacheFile(dir: string, key: Record<string, unknown>): { path: string; keyJson: string } {
  const keyJson = JSON.stringify(key, Object.keys(flattenKeys(key)).sort());
  const h = createHash('sha256').update(keyJson).digest('hex').slice(0, 20);
  return { path: join(dir, `features-${h}.safetensors`), keyJson };
}

// All nested key names, so JSON.stringify's key whitelist keeps nested objects and sorts them.
function flattenKeys(o: unknown, out: Record<string, true> = {}): Record<string, true> {
  if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o as Record<string, unknown>)) {
      out[k] = true;
      flattenKeys(v, out);
    }
  }
  return out;
}

/**
 * Embeds n images (fetched by index, so large sets never sit in memory twice) with the frozen backbone.
 * With `cache`, a file keyed by (backbone hash, input settings, kinds, n, cache.key) is reused when present.
 */
export async function embedImages(
  bb: EvalBackbone,
  n: number,
  getImage: (i: number) => Image | Promise<Image>,
  o: EmbedOptions,
): Promise<FeatureSet> {
  if (!(n > 0)) throw new Error(`eval: nothing to embed for '${o.label ?? 'features'}' (0 images)`);
  const kinds = [...new Set(o.kinds)].sort() as FeatureKind[];
  if (kinds.includes('proj') && !bb.projector)
    throw new Error('eval: projector features asked for, but this backbone has no projector');
  if (kinds.includes('attn') && !bb.imageToken)
    throw new Error("eval: 'attn' features asked for, but this backbone has no class-attention token");
  const p = bb.vit.cfg.patchSize;
  const grid: [number, number] = [o.input.size / p, o.input.size / p];
  let cachePath: string | null = null;
  let keyJson = '';
  if (o.cache) {
    ({ path: cachePath, keyJson } = cacheFile(o.cache.dir, {
      ...o.cache.key,
      backbone: bb.hash,
      input: o.input,
      kinds,
      n,
    }));
    if (existsSync(cachePath)) {
      try {
        if (loadMetadata(cachePath).key === keyJson) {
          const m = loadTensors(cachePath);
          const f: FeatureSet = { n, grid };
          for (const k of kinds) {
            const t = m.get(k);
            if (!t) throw new Error(`cache file lacks '${k}'`);
            f[k] = keep(t);
          }
          for (const [k, t] of m) if (!kinds.includes(k as FeatureKind)) t.dispose();
          return f;
        }
      } catch {
        // unreadable or stale cache: recompute and overwrite
      }
    }
  }
  const bs = o.batchSize ?? 64;
  const parts: Record<FeatureKind, Tensor[]> = { cls: [], mean: [], patches: [], proj: [], attn: [] };
  const vit = bb.vit;
  const wasTraining = vit.training;
  vit.eval();
  const bar = progressBar(o.label ?? 'features', n, o.progress);
  try {
    for (let s = 0; s < n; s += bs) {
      const imgs: Image[] = [];
      for (let i = s; i < Math.min(n, s + bs); i++) imgs.push(await getImage(i));
      const out = noGrad(() =>
        tidy(() => {
          const x = imagesToTensor(imgs, o.input);
          const y = vit.forward(x);
          const r: Partial<Record<FeatureKind, Tensor>> = {};
          if (kinds.includes('cls')) r.cls = y.cls.contiguous();
          if (kinds.includes('mean')) r.mean = y.patches.mean(1);
          if (kinds.includes('patches')) r.patches = y.patches.contiguous();
          if (kinds.includes('attn')) r.attn = (bb.imageToken as (p: Tensor) => Tensor)(y.patches).contiguous();
          if (kinds.includes('proj')) r.proj = (bb.projector as (c: Tensor) => Tensor)(y.cls).contiguous();
          return r;
        }),
      );
      for (const k of kinds) parts[k].push(keep(out[k] as Tensor));
      bar?.update(Math.min(n, s + bs));
    }
  } finally {
    bar?.stop();
    vit.train(wasTraining);
  }
  const f: FeatureSet = { n, grid };
  for (const k of kinds) {
    const list = parts[k];
    f[k] = keep(list.length === 1 ? (list[0] as Tensor) : cat(list, 0));
    if (list.length > 1) for (const t of list) t.dispose();
  }
  if (cachePath && o.cache) {
    mkdirSync(o.cache.dir, { recursive: true });
    const save: Record<string, Tensor> = {};
    for (const k of kinds) save[k] = f[k] as Tensor;
    saveTensors(cachePath, save, { key: keyJson });
  }
  return f;
}
