// `locus eval KIND --checkpoint PATH`: the probe registry and the one entry point the CLI and the
// comparison call. Every result JSON carries all eval hyper-parameters, the seed, the data specs, the
// input settings and the checkpoint hash (probeHeader); unknown options are errors, never ignored.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, type Tensor } from '../engine/index.js';
import { loadMetadata, loadTensors } from '../engine/io.js';
import type { Method } from '../methods/method.js';
import { createVit, type Module, VisionTransformer, type VitConfig } from '../nn/index.js';
import { disposeCheckpoint, loadCheckpoint, resolveCheckpoint, runDirOf } from '../train/checkpoint.js';
import { type Config, resolveConfig } from '../train/config.js';
import { evalFileName } from '../train/evalfiles.js';
import { fileSha, importBackbone, isForeignWeights } from '../train/import.js';
import { buildMethod } from '../train/loop.js';
import { provenance } from '../train/provenance.js';
import { holdsRun, runPaths, writeJsonAtomic } from '../train/run.js';
import type { EvalContext } from './common.js';
import { defaultInput, type EvalBackbone } from './features.js';
import { KNN_DEFAULTS, knnEval } from './knn.js';
import { LINEAR_DEFAULTS, linearEval } from './linear.js';
import { LOCATION_DEFAULTS, locationEval } from './location.js';
import { NNSEG_DEFAULTS, nnSegEval } from './nnseg.js';
import { validateCommonOptions, validateProbeOptions } from './options.js';
import { PARTS_DEFAULTS, partsEval } from './parts.js';
import { SEG_DEFAULTS, segEval } from './seg.js';

export const EVAL_KINDS = ['knn', 'linear', 'seg', 'nnseg', 'parts', 'location'] as const;
export type EvalKind = (typeof EVAL_KINDS)[number];

/** Each probe's defaults (its option names are exactly these keys). */
export const EVAL_DEFAULTS: Record<EvalKind, Record<string, unknown>> = {
  knn: KNN_DEFAULTS as unknown as Record<string, unknown>,
  linear: LINEAR_DEFAULTS as unknown as Record<string, unknown>,
  seg: SEG_DEFAULTS as unknown as Record<string, unknown>,
  nnseg: NNSEG_DEFAULTS as unknown as Record<string, unknown>,
  parts: PARTS_DEFAULTS as unknown as Record<string, unknown>,
  location: LOCATION_DEFAULTS as unknown as Record<string, unknown>,
};

/** Options every probe takes besides its own. */
export interface CommonEvalOptions {
  size?: number; // eval input side (default: the model's native imgSize)
  batchSize?: number; // images per forward pass (default 64)
  seed?: number; // default 0
  cacheDir?: string | null; // feature cache; default <run>/cache for a run checkpoint, else none; null = off
  progress?: boolean;
  /** Where <kind>@<dataset>.json (and seg_head.safetensors) go; default <run>/evals for a run checkpoint; null = don't write. */
  outDir?: string | null;
}

const COMMON_KEYS = new Set(['size', 'batchSize', 'seed', 'cacheDir', 'progress', 'outDir']);

export interface RunEvalArgs {
  /** A checkpoint path (run checkpoint or exported backbone .safetensors), 'random[:seed]', or a ready backbone. */
  checkpoint: string | EvalBackbone;
  options?: CommonEvalOptions & Record<string, unknown>;
  /** Model config for 'random' (default: ViT-Tiny-like, 32 px, patch 4, depth 6). */
  randomConfig?: Partial<VitConfig>;
  /** Which network of a run checkpoint: its EMA teacher or its student (default: what the method's reference evaluates). */
  backbone?: string;
}

export const BACKBONES = ['teacher', 'student'] as const;
export type Network = (typeof BACKBONES)[number];

const isPlain = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * An option over its default: nested objects merge (`{train: {length: 500}}` keeps the default
 * dataset's other fields; `{seg: {steps: 100}}` the other seg settings), unless a dataset spec
 * changes kind, which replaces it whole.
 */
export function mergeOption(def: unknown, v: unknown): unknown {
  if (!isPlain(def) || !isPlain(v)) return v;
  if ('kind' in v && v.kind !== def.kind) return v;
  return { ...def, ...v };
}

/** Runs one probe; returns its result JSON (and writes <outDir>/<kind>@<dataset>.json when outDir is set). */
export async function runEval(kind: string, args: RunEvalArgs): Promise<Record<string, unknown>> {
  if (!(EVAL_KINDS as readonly string[]).includes(kind))
    throw new Error(`unknown eval kind '${kind}' (allowed: ${EVAL_KINDS.join(', ')})`);
  const k = kind as EvalKind;
  const opts = { ...(args.options ?? {}) };
  const own: Record<string, unknown> = {};
  const allowed = Object.keys(EVAL_DEFAULTS[k]);
  for (const [key, v] of Object.entries(opts)) {
    if (COMMON_KEYS.has(key) || v === undefined) continue;
    if (!allowed.includes(key))
      throw new Error(`eval ${k}: unknown option '${key}' (allowed: ${[...allowed, ...COMMON_KEYS].join(', ')})`);
    own[key] = mergeOption(EVAL_DEFAULTS[k][key], v);
  }
  validateCommonOptions(k, opts);
  validateProbeOptions(k, EVAL_DEFAULTS[k], own);
  const network = checkNetwork(args.backbone);
  const seed = opts.seed ?? 0;
  manualSeed(seed);
  const bb = await resolveBackbone(args.checkpoint, args.randomConfig, seed, network);
  const run =
    typeof args.checkpoint === 'string' && !/^random/.test(args.checkpoint) ? runDirFor(args.checkpoint) : null;
  const outDir = opts.outDir === undefined ? (run ? runPaths(run).evals : null) : opts.outDir;
  if (outDir) mkdirSync(outDir, { recursive: true });
  const cacheDir = opts.cacheDir === undefined ? (run ? join(run, 'cache') : undefined) : (opts.cacheDir ?? undefined);
  const ctx: EvalContext = {
    bb,
    input: defaultInput(bb.vit, opts.size),
    seed,
    batchSize: opts.batchSize ?? 64,
    cacheDir,
    progress: opts.progress,
  };
  try {
    return await dispatch(k, ctx, own, outDir, network ? `${k}_${network}` : k);
  } finally {
    if (typeof args.checkpoint === 'string') bb.dispose?.();
  }
}

async function dispatch(
  k: EvalKind,
  ctx: EvalContext,
  own: Record<string, unknown>,
  outDir: string | null,
  name: string = k,
): Promise<Record<string, unknown>> {
  let result: Record<string, unknown>;
  switch (k) {
    case 'knn':
      result = { ...(await knnEval(ctx, own)) };
      break;
    case 'linear':
      result = { ...(await linearEval(ctx, own)) };
      break;
    case 'seg':
      result = {
        ...(await segEval(ctx, { ...own, saveHead: outDir ? join(outDir, 'seg_head.safetensors') : undefined })),
      };
      break;
    case 'nnseg':
      result = { ...(await nnSegEval(ctx, own)) };
      break;
    case 'parts':
      result = { ...(await partsEval(ctx, own)) };
      break;
    case 'location':
      result = { ...(await locationEval(ctx, own)) };
      break;
  }
  // Provenance stamp and the (probe, dataset)-keyed file name: <outDir>/<kind>@<dataset>.json
  result.provenance = provenance(ctx.bb.vit.parameters()[0]?.device ?? 'cpu');
  // JSON has no NaN: a NaN (e.g. an mIoU with no class counted) is written as null
  if (outDir) writeJsonAtomic(join(outDir, evalFileName(name, result)), result); // name: <kind>[_<network>]
  return result;
}

/** One line for the terminal: a probe result's headline numbers (with their 95% intervals). */
export function describeResult(kind: string, r: Record<string, unknown>): string {
  if (r.error) return `error: ${r.error}`;
  const pct = (v: unknown) => (typeof v === 'number' ? `${(100 * v).toFixed(1)}%` : '–');
  const ci = (v: unknown) =>
    Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'number'
      ? ` [${(100 * v[0]).toFixed(1)}, ${(100 * v[1]).toFixed(1)}]`
      : '';
  const byFeature = () => {
    const bf = r.by_feature as Record<string, { top1: number; top1_ci?: unknown }> | undefined;
    if (!bf) return '';
    return `; ${Object.entries(bf)
      .map(([f, v]) => `${f} ${pct(v.top1)}${ci(v.top1_ci)}`)
      .join(', ')}`;
  };
  switch (kind) {
    case 'knn':
    case 'linear':
      return `top-1 ${pct(r.top1)}${ci(r.top1_ci)} (${r.feature ?? 'cls'}), top-5 ${pct(r.top5)}${byFeature()}`;
    case 'seg':
    case 'nnseg':
      return `mIoU ${pct(r.miou)}${ci(r.miou_ci)}, pixel acc ${pct(r.pixel_acc)}${ci(r.pixel_acc_ci)}`;
    case 'parts':
      return `part mIoU ${pct(r.part_miou)} vs object mIoU ${pct(r.object_miou)}; part acc ${pct(r.part_acc)} vs object acc ${pct(r.object_acc)}`;
    case 'location':
      return `acc ${pct(r.acc)}${ci(r.acc_ci)}`;
    default:
      return '';
  }
}

// ---------------------------------------------------------------- backbones

/** A backbone from a checkpoint path, 'random[:seed]', or as given. */
export async function resolveBackbone(
  ck: string | EvalBackbone,
  randomConfig: Partial<VitConfig> = {},
  seed = 0,
  network?: Network,
): Promise<EvalBackbone> {
  if (typeof ck !== 'string') {
    if (network) throw new Error('--backbone applies to run checkpoints only (this backbone is given ready)');
    return ck;
  }
  const m = /^random(?::(\d+))?$/.exec(ck);
  if (m) {
    if (network) throw new Error('--backbone applies to run checkpoints only (a random init has one network)');
    return randomBackbone(randomConfig, m[1] === undefined ? seed : Number(m[1]));
  }
  // a checkpoint Locus did not write (timm/DINO/iBOT/DeiT/MAE .pth or safetensors): src/train/import.ts
  if (isForeignWeights(ck)) {
    if (network) throw new Error('--backbone applies to Locus run checkpoints only (an imported file has one network)');
    return importBackbone(ck);
  }
  // a run checkpoint (or run directory) carries locus.checkpoint metadata; an exported backbone does not
  if (ck.endsWith('.safetensors') && existsSync(ck) && !('locus.checkpoint' in loadMetadata(ck))) {
    if (network)
      throw new Error(`--backbone applies to run checkpoints only (${ck} is an exported backbone: one network)`);
    return loadExportedBackbone(ck);
  }
  return loadRunCheckpoint(ck, network);
}

/** The --backbone value, checked: teacher, student or absent. */
export function checkNetwork(v: string | undefined): Network | undefined {
  if (v === undefined) return undefined;
  if (!(BACKBONES as readonly string[]).includes(v))
    throw new Error(`unknown --backbone '${v}' (allowed: ${BACKBONES.join(', ')})`);
  return v as Network;
}

/** The first VisionTransformer inside a network (depth first, in child order). */
export function findVit(m: Module): VisionTransformer | null {
  if (m instanceof VisionTransformer) return m;
  for (const [, c] of m.children()) {
    const v = findVit(c);
    if (v) return v;
  }
  return null;
}

/** Whether `target` is `m` or inside it. */
function contains(m: Module, target: Module): boolean {
  return m === target || m.children().some(([, c]) => contains(c, target));
}

/** The network a method's reference evaluates ('teacher' when its eval backbone lives in the teacher). */
export function defaultNetwork(method: Method): Network {
  return method.teacher && contains(method.teacher, method.evalBackbone()) ? 'teacher' : 'student';
}

/** The backbone of the chosen network; a method with no teacher asked for one fails naming what is allowed. */
export function networkBackbone(method: Method, network: Network): VisionTransformer {
  if (network === defaultNetwork(method)) return method.evalBackbone();
  const net = network === 'teacher' ? method.teacher : method.student;
  if (!net)
    throw new Error(`--backbone teacher: method '${method.name}' has no teacher (EMA) network (allowed: student)`);
  const vit = findVit(net);
  if (!vit) throw new Error(`--backbone ${network}: method '${method.name}' has no ViT in its ${network} network`);
  return vit;
}

/** The backbone architecture of a run config (for a random init of the same model). */
export function vitConfigOf(c: Config): Partial<VitConfig> {
  const m = c.model;
  return {
    imgSize: m.imgSize,
    patchSize: m.patchSize,
    dim: m.dim,
    depth: m.depth,
    heads: m.heads,
    mlpRatio: m.mlpRatio,
  };
}

/** A randomly initialised ViT (the "no pretraining" baseline); hash 'random-<seed>-<config hash>'. */
export function randomBackbone(cfg: Partial<VitConfig> = {}, seed = 0): EvalBackbone {
  manualSeed(seed);
  const vit = createVit({ imgSize: 32, patchSize: 4, depth: 6, ...cfg });
  vit.eval();
  const h = createHash('sha256').update(JSON.stringify(vit.cfg)).digest('hex').slice(0, 12);
  return { vit, hash: `random-${seed}-${h}`, method: 'random', dispose: () => vit.dispose() };
}

/** A backbone exported by `src/train/export.ts` (timm names, architecture in the metadata). */
export function loadExportedBackbone(path: string): EvalBackbone {
  const meta = loadMetadata(path);
  const num = (k: string): number => {
    const v = Number(meta[k]);
    if (!Number.isFinite(v))
      throw new Error(`${path}: metadata '${k}' missing or not a number; is this a Locus backbone export?`);
    return v;
  };
  const cfg: Partial<VitConfig> = {
    imgSize: num('img_size'),
    patchSize: num('patch_size'),
    inChans: num('in_chans'),
    dim: num('embed_dim'),
    depth: num('depth'),
    heads: num('num_heads'),
    mlpRatio: num('mlp_ratio'),
    qkvBias: meta.qkv_bias !== 'false',
  };
  const vit = createVit(cfg);
  const state = loadTensors(path);
  try {
    vit.loadStateDict(state);
  } catch (e) {
    throw new Error(`checkpoint ${path} does not match the architecture in its metadata: ${(e as Error).message}`);
  } finally {
    for (const t of state.values()) t.dispose();
  }
  vit.eval();
  return { vit, hash: fileSha(path), checkpoint: path, method: meta.method, dispose: () => vit.dispose() };
}

/**
 * A run checkpoint (a step-*.safetensors file, or a run directory: its latest): the method rebuilt from
 * the config stored in the checkpoint, its weights loaded, and its eval backbone (the teacher's where
 * the method evaluates the teacher). A checkpoint whose tensors do not fit its config fails in one line.
 */
export function loadRunCheckpoint(path: string, network?: Network): EvalBackbone {
  const ck = loadCheckpoint(path);
  try {
    const config = resolveConfig(ck.config);
    const method = buildMethod(config);
    try {
      method.student.loadStateDict(ck.student);
      if (method.teacher) method.teacher.loadStateDict(ck.teacher);
    } catch (e) {
      const m = config.model;
      throw new Error(
        `checkpoint ${ck.path} does not match its config (method ${config.method}, model dim ${m.dim}, depth ${m.depth}, heads ${m.heads}, patch ${m.patchSize}, imgSize ${m.imgSize}): ${(e as Error).message}`,
      );
    }
    const def = defaultNetwork(method);
    const net = network ?? def;
    let vit: VisionTransformer;
    try {
      vit = networkBackbone(method, net);
    } catch (e) {
      method.student.dispose();
      method.teacher?.dispose();
      throw e;
    }
    vit.eval();
    const dispose = () => {
      method.student.dispose();
      method.teacher?.dispose();
    };
    const netModule = (net === 'teacher' ? method.teacher : method.student) as Module;
    return {
      vit,
      // the reference's network keeps the file hash (caches and records stay valid); the other one is marked
      hash: net === def ? ck.sha256 : `${ck.sha256}:${net}`,
      checkpoint: ck.path,
      method: ck.info.method,
      step: ck.info.step,
      network: net,
      projector: net === def ? projectorOf(method) : projectorOf(method, netModule),
      imageToken: imageTokenOf(netModule),
      dispose,
    };
  } finally {
    disposeCheckpoint(ck);
  }
}

/**
 * The method's CLS projector for the part-aware "projector" features, where it has one: an
 * `evalProjector()` on the method if it defines it, else a DINO-style head (`head` or `cHead` with
 * `embed`, the L2-normalised bottleneck before the prototypes) of the evaluated network.
 */
export function projectorOf(method: Method, network?: Module): ((cls: Tensor) => Tensor) | undefined {
  const custom = (method as { evalProjector?: () => ((cls: Tensor) => Tensor) | null }).evalProjector?.();
  if (custom && !network) return custom;
  const net = (network ?? method.teacher ?? method.student) as unknown as Record<string, unknown>;
  for (const name of ['head', 'cHead']) {
    const h = net[name] as { embed?: (x: Tensor) => Tensor } | undefined;
    if (h && typeof h.embed === 'function') return (cls) => (h.embed as (x: Tensor) => Tensor).call(h, cls);
  }
  return undefined;
}

/** A method's own image token from the patch tokens, where its network has one (SelfPatch: class attention). */
export function imageTokenOf(network: Module): ((patches: Tensor) => Tensor) | undefined {
  const ca = (network as unknown as Record<string, unknown>).caHead as { attend?: (x: Tensor) => Tensor } | undefined;
  if (ca && typeof ca.attend === 'function') return (p) => (ca.attend as (x: Tensor) => Tensor).call(ca, p);
  return undefined;
}

/** The run directory of a checkpoint path (file or run dir), or null for a bare file. */
export function runDirFor(path: string): string | null {
  try {
    const file = resolveCheckpoint(path);
    const run = runDirOf(file);
    return holdsRun(run) ? run : null;
  } catch {
    return null;
  }
}

/** The networks of a run checkpoint: the one its method's reference evaluates, and all it has. */
export function runNetworks(path: string): { reference: Network; networks: Network[] } {
  const ck = loadCheckpoint(path);
  try {
    const method = buildMethod(resolveConfig(ck.config));
    try {
      return { reference: defaultNetwork(method), networks: method.teacher ? ['teacher', 'student'] : ['student'] };
    } finally {
      method.student.dispose();
      method.teacher?.dispose();
    }
  } finally {
    disposeCheckpoint(ck);
  }
}
