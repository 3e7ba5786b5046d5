// A run directory → the report's ReportRun: config.json, metrics.jsonl, evals/*@*.json, and pictures of the
// seg eval's stored samples (evals/seg_samples.safetensors; without them, a few built-in eval scenes)
// through the checkpoint's eval backbone: last-layer CLS attention per head (on the patch grid), a joint PCA of the patch features as RGB, and the saved seg probe's predictions next
// to the ground truth.
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { type DatasetSpec, openDataset } from '../data/datasets.js';
import { noGrad, type Tensor, tidy } from '../engine/index.js';
import { loadMetadata, loadTensors } from '../engine/io.js';
import { defaultInput, type EvalBackbone, type InputSettings, imagesToTensor } from '../eval/features.js';
import { loadRunCheckpoint } from '../eval/index.js';
import { loadSegSamples, type PictureSamples, SEG_SAMPLES_FILE } from '../eval/samples.js';
import { disposeSegHead, type SegHead, segLogits } from '../eval/seg.js';
import { listCheckpoints } from '../train/checkpoint.js';
import { readEvals, readMetrics, readRunConfig, readRunProvenance, runPaths } from '../train/run.js';
import type { GrayMap, ReportPicture, ReportRun } from './html.js';

export interface CollectOptions {
  pictures?: number; // eval scenes to picture (default 4; 0 = none)
  name?: string; // default: the directory's name
  /** Scenes to picture, chosen by the caller; default: the samples the seg eval stored in the run, else built-in eval scenes. */
  pictureData?: DatasetSpec;
}

/** The built-in pictures when the run has no stored seg samples (a fixed spec, never one a run names). */
const DEFAULT_PICTURES = (n: number): DatasetSpec => ({ kind: 'scenes', split: 'eval', length: n });

/**
 * The report reads only the run directory it is given: a file in it that resolves (through a link)
 * outside it is refused, and no path named inside its JSON files is ever opened.
 */
function insideRun(dir: string, file: string): string {
  const root = realpathSync(dir);
  const real = realpathSync(file);
  if (real !== root && !real.startsWith(`${root}${sep}`))
    throw new Error(`report: ${file} resolves to ${real}, outside its run directory ${root}; not read`);
  return file;
}

export async function collectRun(runDir: string, o: CollectOptions = {}): Promise<ReportRun> {
  const p = runPaths(runDir);
  for (const f of [p.config, p.metrics, p.evals, p.checkpoints]) if (existsSync(f)) insideRun(p.dir, f);
  if (existsSync(p.evals)) for (const f of readdirSync(p.evals)) insideRun(p.dir, join(p.evals, f));
  const config = readRunConfig(runDir) as Record<string, unknown>;
  const evals = readEvals(runDir);
  const run: ReportRun = {
    name: o.name ?? basename(p.dir),
    method: String(config.method ?? 'unknown'),
    config,
    metrics: readMetrics(runDir),
    evals,
    provenance: readRunProvenance(runDir) as Record<string, unknown> | null,
  };
  const count = o.pictures ?? 4;
  const latest = listCheckpoints(p.dir).at(-1);
  if (count > 0 && latest) {
    insideRun(p.dir, latest.path);
    const bb = loadRunCheckpoint(latest.path);
    try {
      const stored = join(p.evals, SEG_SAMPLES_FILE);
      const headPath = join(p.evals, 'seg_head.safetensors');
      let samples: PictureSamples;
      let head: string | null = null;
      if (o.pictureData) samples = await datasetSamples(o.pictureData, count);
      else if (existsSync(stored)) {
        samples = loadSegSamples(stored);
        if (existsSync(headPath)) head = headPath; // the head was trained on these samples' label size
      } else samples = await datasetSamples(DEFAULT_PICTURES(count), count);
      run.pictures = { images: await pictures(bb, samples, count, head) };
    } finally {
      bb.vit.dispose();
    }
  }
  return run;
}

/** The first `count` images (and masks) of a dataset the caller names. */
export async function datasetSamples(spec: DatasetSpec, count: number): Promise<PictureSamples> {
  const ds = await openDataset(spec);
  const got = await Promise.all(Array.from({ length: Math.min(count, ds.length) }, (_, i) => ds.get(i)));
  const masks = got.every((s) => s.mask) ? got.map((s) => s.mask as Uint8Array) : null;
  return { images: got.map((s) => s.image), masks, classes: ds.maskClasses ?? 256 };
}

/** Pictures of the first `count` samples through a backbone (and a saved seg head). */
export async function pictures(
  bb: EvalBackbone,
  samples: PictureSamples,
  count: number,
  segHeadPath: string | null = null,
): Promise<ReportPicture[]> {
  const n = Math.min(count, samples.images.length);
  const images = samples.images.slice(0, n);
  const masks = samples.masks?.slice(0, n) ?? null;
  const head = segHeadPath ? loadSegHead(segHeadPath) : null;
  const input: InputSettings = head?.input ?? defaultInput(bb.vit);
  const vit = bb.vit;
  const wasTraining = vit.training;
  vit.eval();
  try {
    const out = noGrad(() =>
      tidy(() => {
        const y = vit.forward(imagesToTensor(images, input), { attention: true });
        const a = y.attention as Tensor; // [B, H, 1+N, 1+N]
        const N = y.patches.shape[1] as number;
        const cls = a.narrow(2, 0, 1).narrow(3, 1, N).squeeze(2); // [B, H, N]: CLS → patches
        let pred: Tensor | null = null;
        if (head) {
          const im0 = images[0];
          const m0 = masks && im0 ? [im0.height, im0.width] : [input.size, input.size];
          pred = segLogits(head.head, y.patches, m0 as [number, number])
            .argmax(1)
            .to('uint8');
        }
        return {
          attn: cls.toFloat32(),
          patches: y.patches.toFloat32(),
          H: a.shape[1] as number,
          D: y.patches.shape[2] as number,
          N,
          pred: pred?.toArray() as Uint8Array | undefined,
        };
      }),
    );
    const [gh, gw] = [input.size / vit.cfg.patchSize, input.size / vit.cfg.patchSize];
    const rgb = pcaRgb(out.patches, n * out.N, out.D);
    return images.map((image, i) => {
      const pic: ReportPicture = {
        input: { width: image.width, height: image.height, data: image.data },
        attention: Array.from({ length: out.H }, (_, h): GrayMap => {
          const o = (i * out.H + h) * out.N;
          return { width: gw, height: gh, data: out.attn.slice(o, o + out.N) };
        }),
        pca: { width: gw, height: gh, data: rgb.slice(i * out.N * 3, (i + 1) * out.N * 3) },
      };
      const mask = masks?.[i];
      if (mask) pic.segGt = { width: image.width, height: image.height, data: mask, classes: samples.classes };
      if (out.pred && head) {
        const hw = image.width * image.height;
        pic.segPred = {
          width: image.width,
          height: image.height,
          data: out.pred.slice(i * hw, (i + 1) * hw),
          classes: head.head.classes,
        };
      }
      return pic;
    });
  } finally {
    vit.train(wasTraining);
    if (head) disposeSegHead(head.head);
  }
}

function loadSegHead(path: string): { head: SegHead; input: InputSettings } {
  const meta = loadMetadata(path);
  const t = loadTensors(path);
  const get = (k: string) => {
    const x = t.get(k);
    if (!x) throw new Error(`${path}: no tensor '${k}'`);
    return x;
  };
  const info = JSON.parse(meta.meta ?? '{}') as { input: InputSettings };
  return {
    head: {
      bnWeight: get('bn_weight'),
      bnBias: get('bn_bias'),
      runningMean: get('running_mean'),
      runningVar: get('running_var'),
      weight: get('weight'),
      bias: get('bias'),
      classes: Number(meta.classes),
      grid: JSON.parse(meta.grid ?? '[0,0]') as [number, number],
    },
    input: info.input,
  };
}

/**
 * The first three principal components of the rows of x [n, d] (jointly over all images, so colours
 * compare across them), each min-max scaled to [0, 1] → RGB rows [n, 3]. Power iteration with
 * deflation on the d×d covariance (d is small: the token width).
 */
export function pcaRgb(x: Float32Array, n: number, d: number): Float32Array {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] = (mean[j] as number) + (x[i * d + j] as number) / n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) row[j] = (x[i * d + j] as number) - (mean[j] as number);
    for (let a = 0; a < d; a++) {
      const ra = row[a] as number;
      if (ra === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b] = (cov[a * d + b] as number) + ra * (row[b] as number);
    }
  }
  for (let a = 0; a < d; a++) for (let b = 0; b < a; b++) cov[a * d + b] = cov[b * d + a] as number;
  const out = new Float32Array(n * 3);
  for (let c = 0; c < 3; c++) {
    let v = Float64Array.from({ length: d }, (_, j) => Math.sin(1 + j * 12.9898 + c * 78.233)); // fixed start: deterministic colours
    let lambda = 0;
    for (let it = 0; it < 300; it++) {
      const w = new Float64Array(d);
      for (let a = 0; a < d; a++) {
        let s = 0;
        for (let b = 0; b < d; b++) s += (cov[a * d + b] as number) * (v[b] as number);
        w[a] = s;
      }
      const norm = Math.hypot(...w);
      if (norm === 0) break;
      lambda = norm;
      v = w.map((t) => t / norm);
    }
    for (let a = 0; a < d; a++)
      for (let b = 0; b < d; b++)
        cov[a * d + b] = (cov[a * d + b] as number) - lambda * (v[a] as number) * (v[b] as number);
    const score = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += ((x[i * d + j] as number) - (mean[j] as number)) * (v[j] as number);
      score[i] = s;
    }
    let lo = Number.POSITIVE_INFINITY;
    let hi = Number.NEGATIVE_INFINITY;
    for (const s of score) {
      lo = Math.min(lo, s);
      hi = Math.max(hi, s);
    }
    for (let i = 0; i < n; i++) out[i * 3 + c] = hi > lo ? ((score[i] as number) - lo) / (hi - lo) : 0.5;
  }
  return out;
}
