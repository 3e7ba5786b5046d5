// The run configuration: one zod schema with every default stated, loaded from JSON/YAML plus
// `--set key=value` overrides; errors are one line naming the field, the rule and the value given.
//
// Defaults are scaled for 64x64 Fashion-MNIST scenes on a 2-core CPU (`locus pretrain` with no options
// runs them in about 10 minutes, evaluation included); each comment names the reference value.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { cudaAvailable, PRECISIONS } from '../engine/index.js';
import { buildFlags } from '../engine/native.js';
import { getMethod, METHODS, methodNames } from '../methods/index.js';
import { momentumForRetention } from '../nn/index.js';
import { MODEL_PRESET_NAMES, MODEL_PRESETS } from '../nn/presets.js';
import { cropDefaults } from './crops.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(`config error: ${message}`);
    this.name = 'ConfigError';
  }
}

const int = (min: number) => z.number().int().min(min);
const pos = () => z.number().gt(0);
const unit = () => z.number().min(0).max(1);

const split = z.literal('train');
/** Pretraining data (src/data/datasets.ts DatasetSpec kinds that make sense for pretraining). */
const datasetSchema = z.discriminatedUnion('kind', [
  z
    .object({
      kind: z.literal('scenes'),
      split: split.default('train'),
      length: int(1).default(9600), // scenes per epoch (procedural: any number); 150 steps of 64 per epoch
      size: int(8).default(64), // canvas side in px
      seed: int(0).default(0), // scene generator seed (independent of the run seed)
      minItems: int(1).optional(),
      maxItems: int(1).optional(),
      dir: z.string().optional(), // Fashion-MNIST idx directory (default: Debian's dataset-fashion-mnist)
    })
    .strict(),
  z
    .object({
      kind: z.literal('parts'),
      split: split.default('train'),
      length: int(1).default(9600),
      size: int(8).default(64),
      seed: int(0).default(0),
      minObjects: int(1).optional(),
      maxObjects: int(1).optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('fashion-mnist'),
      split: split.default('train'),
      dir: z.string().optional(),
      length: int(1).optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal('folder'),
      root: z.string().min(1),
      // unset: views are cropped from the original image (longer side capped at maxSide); set: every image is
      // first centre-cropped and resized to this square side
      size: int(8).optional(),
      maxSide: int(8).default(1024),
      resize: z.enum(['crop', 'stretch']).default('crop'),
      layout: z.enum(['auto', 'flat', 'classes']).default('auto'),
      skipBadImages: z.boolean().default(true),
      verify: z.enum(['header', 'full']).default('header'),
    })
    .strict(),
  z
    .object({
      kind: z.literal('segfolder'), // image + mask pairs; pretraining uses the images
      images: z.string().min(1),
      masks: z.string().min(1),
      classes: int(1).optional(), // may come from a classes.txt / classes.json next to the masks
      ignoreIndex: int(0).optional(),
      size: int(8).optional(),
      maxSide: int(8).default(1024),
      skipBadImages: z.boolean().default(true),
      verify: z.enum(['header', 'full']).default('header'),
    })
    .strict(),
]);

/** The probes of src/eval (listed here too: src/eval imports this module). */
export const EVAL_KIND_NAMES = ['knn', 'linear', 'seg', 'nnseg', 'parts', 'location'] as const;
const probeOptions = z.record(z.string(), z.unknown()).default({});

function baseSchema() {
  return z
    .object({
      method: z.string().default('dino'),
      seed: int(0).default(0),
      model: z
        .object({
          // fills dim/depth/heads not given; a timm name (vit_small_patch16_224, …) also patchSize and imgSize
          preset: z.enum(MODEL_PRESET_NAMES).nullable().default(null),
          imgSize: int(1).default(32), // native input = global crop side (DINO 224; 64-px canvas → 32)
          patchSize: int(1).default(4), // 8x8 grid on a global crop (DINO ViT-S/16: 14x14)
          dim: int(1).default(192), // ViT-Tiny width
          depth: int(1).default(4), // ViT-Tiny has 12; 4 fits the 10-minute default on 2 cores
          heads: int(1).default(3), // ViT-Tiny
          mlpRatio: pos().default(4),
          qkvBias: z.boolean().default(true),
          dropPath: unit().default(0.1), // student stochastic depth (DINO --drop_path_rate 0.1); teachers get 0
          init: z.string().nullable().default(null), // weights the backbone starts from (pretrain --init FILE)
        })
        .strict()
        .prefault({}),
      data: z
        .object({
          dataset: datasetSchema.prefault({ kind: 'scenes' }),
          workers: int(0).default(2), // loader threads (the loader's batches do not depend on it)
          prefetch: int(1).nullable().default(null), // batches built ahead; null = 2·workers
        })
        .strict()
        .prefault({}),
      optim: z
        .object({
          batchSize: int(1).default(64), // per process (DINO batch_size_per_gpu 64)
          // gradient accumulation: micro-batches of batchSize per optimizer step (the update of one batch
          // accumulate·batchSize large; DDP all-reduces once per step, after the last micro-batch)
          accumulate: int(1).default(1),
          steps: int(1).default(300), // total optimizer steps: 2 epochs of the default scenes, ~9 min on 2 cores
          lr: pos().default(5e-4), // base lr per 256 images (DINO 5e-4; 4x and 16x were worse in 200-step sweeps here)
          lrScaling: z.enum(['batch/256', 'none']).default('batch/256'), // peak lr = lr·globalBatch/256 (DINO)
          minLr: z.number().min(0).default(1e-6), // DINO 1e-6
          warmupSteps: int(0).nullable().default(null), // linear warm-up from 0; null = 10% of steps (DINO 10 of 100 epochs)
          weightDecay: z.number().min(0).default(0.04), // DINO 0.04, cosine to weightDecayEnd
          weightDecayEnd: z.number().min(0).default(0.4), // DINO 0.4
          clip: z.number().min(0).default(3), // per-tensor gradient-norm clip (DINO 3.0); 0 = off
          beta1: unit().default(0.9),
          beta2: unit().default(0.999),
          // Teacher EMA momentum, cosine to teacherMomentumEnd. null (default) = budget-aware: the base momentum whose
          // product over the run is teacherRetention (nn/schedules.ts momentumForRetention), so the teacher ends holding
          // that fraction of its random init at any run length (0.969 at 300 steps, 0.994 at 1,500). Reference: 0.996
          // (DINO, SelfPatch, iBOT, GTSA, LOCA; `--set optim.teacherMomentum=0.996`), which over 300 steps leaves 55%
          // of the init in the teacher the probes evaluate; SCRL's 200-epoch config 0.97.
          teacherMomentum: unit().nullable().default(null),
          // the teacher's share of its init at the end of the run, for teacherMomentum null: 1% (DINO's 0.996 over its
          // own 125k steps leaves e^-250; 1% keeps the teacher a late average of the student, SCRL's 0.97 at 300 steps)
          teacherRetention: z.number().gt(0).lt(1).default(0.01),
          teacherMomentumEnd: unit().default(1),
        })
        .strict()
        .prefault({}),
      train: z
        .object({
          ckptEvery: int(1).default(100), // checkpoint every N steps (and at the end, and on SIGINT/SIGTERM)
          keepCheckpoints: int(1).default(3), // periodic checkpoints kept (older ones are deleted)
          logEvery: int(1).default(1), // metrics.jsonl row every N steps
          printEvery: int(1).default(20), // plain progress line every N steps when stderr is not a TTY
          threads: int(1).nullable().default(null), // libtorch threads; null = all cores (or LOCUS_THREADS)
          progress: z.enum(['auto', 'bar', 'plain', 'none']).default('auto'), // auto: bar on a TTY, else plain lines
          device: z.enum(['cpu', 'cuda', 'auto']).default('cpu'), // where training runs; auto: cuda when available
          // mixed precision: autocast in the forward (fp32 master weights and optimizer); fp16 adds dynamic loss
          // scaling (torch.cuda.amp.GradScaler semantics). libtorch 1.13's CPU has bf16 autocast, no fp16 matmul.
          precision: z.enum(PRECISIONS).default('fp32'),
        })
        .strict()
        .prefault({}),
      // What `locus main` evaluates after pretraining: each probe's options as `locus eval KIND --set` takes
      // them (src/eval defaults where not given; unknown options are errors when the probe runs).
      eval: z
        .object({
          kinds: z.array(z.enum(EVAL_KIND_NAMES)).default([...EVAL_KIND_NAMES]),
          randomInit: z.boolean().default(true), // also evaluate a random init of the same architecture
          knn: probeOptions,
          linear: probeOptions,
          seg: probeOptions,
          nnseg: probeOptions,
          parts: probeOptions,
          location: probeOptions,
        })
        .strict()
        .prefault({}),
    })
    .strict();
}

type Base = z.infer<ReturnType<typeof baseSchema>>;
/** The resolved config; the chosen method's options sit under its name (e.g. `c.dino`). */
export type Config = Base & Record<string, unknown>;
export type ModelConfig = Base['model'];
export type OptimConfig = Base['optim'];
export type TrainConfig = Base['train'];

// ---------------------------------------------------------------- error messages

type Issue = z.core.$ZodIssue;

function getAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let o = obj;
  for (const k of path) {
    if (o === null || typeof o !== 'object') return undefined;
    o = (o as Record<PropertyKey, unknown>)[k];
  }
  return o;
}

const show = (v: unknown): string =>
  typeof v === 'string' ? `'${v}'` : v === undefined ? 'nothing' : JSON.stringify(v);

/** The allowed keys of the (strict) object schema at path, for "unknown key" messages. */
function allowedKeys(schema: z.ZodType, input: unknown, path: readonly PropertyKey[]): string[] {
  let s: unknown = schema;
  const unwrap = () => {
    for (;;) {
      const def = (s as { _zod?: { def?: { type?: string; innerType?: unknown } } })._zod?.def;
      if (
        def &&
        (def.type === 'default' || def.type === 'optional' || def.type === 'nullable' || def.type === 'prefault')
      )
        s = def.innerType;
      else return;
    }
  };
  for (let i = 0; i <= path.length; i++) {
    unwrap();
    const def = (s as { _zod?: { def?: { type?: string; options?: unknown[]; shape?: Record<string, unknown> } } })._zod
      ?.def;
    if (def?.type === 'union') {
      // discriminated union: pick the option whose literal kind matches the input
      const kind = (getAt(input, path.slice(0, i)) as { kind?: unknown } | undefined)?.kind;
      s = def.options?.find((o) => (o as { shape?: { kind?: { value?: unknown } } }).shape?.kind?.value === kind) ?? s;
      unwrap();
    }
    if (i === path.length) break;
    const shape = (s as { shape?: Record<string, unknown> }).shape;
    if (!shape) return [];
    s = shape[path[i] as string];
  }
  const shape = (s as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

function describe(issue: Issue, input: unknown, schema: z.ZodType, prefix: string): string {
  const path = issue.path.map(String);
  const field = prefix + path.join('.');
  const got = getAt(input, issue.path);
  switch (issue.code) {
    case 'too_small':
      return `${field} must be ${issue.inclusive ? '≥' : '>'} ${issue.minimum} (got ${show(got)})`;
    case 'too_big':
      return `${field} must be ${issue.inclusive ? '≤' : '<'} ${issue.maximum} (got ${show(got)})`;
    case 'invalid_value':
      return `${field} must be one of ${issue.values.map((v) => show(v)).join(', ')} (got ${show(got)})`;
    case 'invalid_union': {
      const options = (issue as { options?: unknown[] }).options;
      return options?.length
        ? `${field} must be one of ${options.map((v) => show(v)).join(', ')} (got ${show(got)})`
        : `${field} is invalid (got ${show(got)})`;
    }
    case 'unrecognized_keys': {
      const allowed = allowedKeys(schema, input, issue.path);
      if (prefix === '' && path.length === 0) allowed.push(...methodNames());
      const keys = issue.keys.map((k) => prefix + [...path, k].join('.'));
      return `unknown key${keys.length > 1 ? 's' : ''} ${keys.join(', ')} (allowed: ${allowed.join(', ')})${datasetKindHint(prefix + path.join('.'), issue.keys)}`;
    }
    case 'invalid_type':
      return `${field} must be ${issue.expected === 'int' ? 'an integer' : `a ${issue.expected}`} (got ${show(got)})`;
    default:
      return `${field}: ${issue.message} (got ${show(got)})`;
  }
}

/** For a data.dataset key of another kind (e.g. root without kind=folder): which kind to set. */
function datasetKindHint(field: string, keys: string[]): string {
  if (field !== 'data.dataset') return '';
  const kinds = datasetSchema.options
    .filter((o) => keys.every((k) => k in o.shape))
    .map((o) => String(o.shape.kind.value));
  return kinds.length
    ? `; ${keys.join(', ')} belong${keys.length > 1 ? '' : 's'} to data.dataset.kind ${kinds.join(' or ')}: add --set data.dataset.kind=${kinds[0]}`
    : '';
}

function parseOrThrow<T>(schema: z.ZodType<T>, input: unknown, prefix = ''): T {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  throw new ConfigError(describe(r.error.issues[0] as Issue, input, schema, prefix));
}

// ---------------------------------------------------------------- resolution

/** Applies a model preset (its dim/depth/heads fill the fields not given) and the default dataset kind. */
function applyPreset(raw: Record<string, unknown>): Record<string, unknown> {
  const data = raw.data as Record<string, unknown> | undefined;
  const ds = data?.dataset as Record<string, unknown> | undefined;
  // `--set data.dataset.length=N` alone tunes the default dataset
  if (ds && typeof ds === 'object' && !Array.isArray(ds) && ds.kind === undefined)
    raw = { ...raw, data: { ...data, dataset: { kind: 'scenes', ...ds } } };
  const model = raw.model as Record<string, unknown> | undefined;
  const preset = model?.preset;
  if (typeof preset !== 'string' || !Object.hasOwn(MODEL_PRESETS, preset)) return raw;
  const { dim, depth, heads, patchSize, imgSize } = MODEL_PRESETS[preset] as (typeof MODEL_PRESETS)[string];
  const sizes = patchSize ? { patchSize, imgSize } : {};
  return { ...raw, model: { dim, depth, heads, ...sizes, ...model } };
}

/** The chosen method's optimiser defaults under the config's own `optim` values (which win). */
function withMethodOptimDefaults(raw: Record<string, unknown>): Record<string, unknown> {
  const name = raw.method ?? 'dino';
  const defaults = typeof name === 'string' && name in METHODS ? METHODS[name]?.optimDefaults : undefined;
  if (!defaults) return raw;
  const optim = raw.optim;
  if (optim !== undefined && (optim === null || typeof optim !== 'object' || Array.isArray(optim))) return raw;
  return { ...raw, optim: { ...defaults, ...(optim as Record<string, unknown> | undefined) } };
}

/**
 * Validates a raw config (file contents merged with overrides) and fills every default. The result
 * holds the chosen method's options under its name; other methods' sections are checked, then dropped.
 */
export function resolveConfig(raw: unknown = {}): Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ConfigError('the config must be an object');
  const input = withMethodOptimDefaults(applyPreset(raw as Record<string, unknown>));
  const baseInput = Object.fromEntries(Object.entries(input).filter(([k]) => !(k in METHODS)));
  const base = parseOrThrow(baseSchema(), baseInput);
  const def = (() => {
    try {
      return getMethod(base.method);
    } catch (e) {
      throw new ConfigError((e as Error).message);
    }
  })();
  const out: Record<string, unknown> = { ...base };
  for (const name of methodNames()) {
    const section = (input as Record<string, unknown>)[name];
    if (name === base.method) {
      // crop sizes follow the model (src/train/crops.ts) where the section does not set them
      const given = section && typeof section === 'object' && !Array.isArray(section) ? section : {};
      const sized = { ...cropDefaults(name, base.model, given as Record<string, unknown>), ...given };
      out[name] = parseOrThrow(def.schema, section === undefined || section === given ? sized : section, `${name}.`);
    } else if (section !== undefined) parseOrThrow(METHODS[name].schema, section, `${name}.`);
  }
  const cfg = out as Config;
  checkConsistency(cfg);
  return cfg;
}

function checkConsistency(c: Config): void {
  const m = c.model;
  if (m.imgSize % m.patchSize !== 0)
    throw new ConfigError(`model.imgSize ${m.imgSize} is not divisible by model.patchSize ${m.patchSize}`);
  if (m.dim % m.heads !== 0) throw new ConfigError(`model.dim ${m.dim} is not divisible by model.heads ${m.heads}`);
  if (c.optim.teacherMomentum !== null && c.optim.teacherMomentumEnd < c.optim.teacherMomentum)
    throw new ConfigError(
      `optim.teacherMomentumEnd ${c.optim.teacherMomentumEnd} must be ≥ optim.teacherMomentum ${c.optim.teacherMomentum}`,
    );
  if (c.optim.warmupSteps !== null && c.optim.warmupSteps > c.optim.steps)
    throw new ConfigError(`optim.warmupSteps ${c.optim.warmupSteps} must be ≤ optim.steps ${c.optim.steps}`);
  const ds = c.data.dataset;
  const dir =
    ds.kind === 'folder' ? ['data.dataset.root', ds.root] : 'dir' in ds && ds.dir ? ['data.dataset.dir', ds.dir] : null;
  if (dir && !existsSync(dir[1] as string)) throw new ConfigError(`${dir[0]} '${dir[1]}' does not exist`);
  if (ds.kind === 'segfolder')
    for (const k of ['images', 'masks'] as const)
      if (!existsSync(ds[k])) throw new ConfigError(`data.dataset.${k} '${ds[k]}' does not exist`);
  const problem = getMethod(c.method).check?.(c[c.method], { imgSize: m.imgSize, patchSize: m.patchSize });
  if (problem) throw new ConfigError(problem);
}

/**
 * The device train.device names on this machine: 'cpu', or 'cuda' ('auto' = cuda when available). Checked
 * where training starts rather than in resolveConfig, so that a run trained on a GPU still loads (for eval,
 * export, report) on a machine without one.
 */
export function resolveDevice(c: Config): 'cpu' | 'cuda' {
  const d = c.train.device;
  if (d === 'cpu') return 'cpu';
  if (d === 'auto') return cudaAvailable() ? 'cuda' : 'cpu';
  if (!buildFlags().cuda && !cudaAvailable())
    throw new ConfigError("train.device is 'cuda' but this libtorch build has no CUDA (locus info shows the build)");
  if (!cudaAvailable())
    throw new ConfigError(
      "train.device is 'cuda' but no CUDA device is available (this libtorch build has CUDA; locus info shows the build)",
    );
  return 'cuda';
}

// ---------------------------------------------------------------- files and overrides

/** Reads a JSON or YAML config file (by extension; anything else is tried as YAML, a superset of JSON). */
export function readConfigFile(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ConfigError(`config file '${path}' does not exist`);
  const text = readFileSync(path, 'utf8');
  let v: unknown;
  try {
    v = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new ConfigError(`cannot parse ${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${path} must hold an object at the top level`);
  return v as Record<string, unknown>;
}

/** `a.b.c=value`: value parsed as JSON when it parses (numbers, booleans, null, arrays), else a string. */
export function parseSet(expr: string): [string[], unknown] {
  const eq = expr.indexOf('=');
  if (eq <= 0) throw new ConfigError(`--set expects key=value (got '${expr}')`);
  const key = expr.slice(0, eq).trim();
  const text = expr.slice(eq + 1);
  const path = key.split('.');
  if (path.some((p) => p === '' || p === '__proto__' || p === 'constructor' || p === 'prototype'))
    throw new ConfigError(`--set: bad key '${key}'`);
  let value: unknown = text;
  try {
    value = JSON.parse(text);
  } catch {
    // a plain string
  }
  return [path, value];
}

/** Returns a copy of obj with value set at path (intermediate objects created). */
export function setPath(obj: Record<string, unknown>, path: string[], value: unknown): Record<string, unknown> {
  const out = structuredClone(obj);
  let o = out;
  path.slice(0, -1).forEach((k, i) => {
    const next = o[k];
    if (next === undefined || next === null) o[k] = {};
    else if (typeof next !== 'object' || Array.isArray(next))
      throw new ConfigError(`--set ${path.join('.')}: ${path.slice(0, i + 1).join('.')} is not an object`);
    o = o[k] as Record<string, unknown>;
  });
  o[path[path.length - 1] as string] = value;
  return out;
}

export interface ConfigSources {
  file?: string;
  sets?: string[];
  method?: string;
  steps?: number;
  seed?: number;
}

/**
 * Defaults < config file (or `base`, e.g. a resumed run's saved config, when no file is given)
 * < --method/--steps/--seed < --set (in order).
 */
export function loadConfig(src: ConfigSources = {}, base?: Config): Config {
  let raw: Record<string, unknown> = src.file ? readConfigFile(src.file) : base ? structuredClone(base) : {};
  if (src.method !== undefined) raw = setPath(raw, ['method'], src.method);
  if (src.steps !== undefined) raw = setPath(raw, ['optim', 'steps'], src.steps);
  if (src.seed !== undefined) raw = setPath(raw, ['seed'], src.seed);
  for (const s of src.sets ?? []) {
    const [path, value] = parseSet(s);
    raw = setPath(raw, path, value);
  }
  return resolveConfig(raw);
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object')
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  return v;
}

/** The parts of a config that decide the training math (not logging, checkpoint cadence, eval or threads). */
export function trainingPart(c: Config): Record<string, unknown> {
  const { train: _t, eval: _e, data, ...rest } = c;
  const { workers: _w, prefetch: _p, ...dataRest } = data;
  // optim.accumulate = 1 (the default) is left out, so runs saved before it existed keep their hash
  const { accumulate, ...optimRest } = c.optim;
  return { ...rest, optim: accumulate === 1 ? optimRest : c.optim, data: dataRest };
}

/** SHA-256 of the training part in canonical JSON: a resumed run must match it. */
export function configHash(c: Config): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(trainingPart(c))))
    .digest('hex');
}

/** Dotted paths where two configs differ (for "config differs from the saved run" messages). */
export function configDiff(a: unknown, b: unknown, prefix = ''): string[] {
  if (JSON.stringify(canonical(a)) === JSON.stringify(canonical(b))) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) =>
      configDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], prefix ? `${prefix}.${k}` : k),
    );
  }
  return [`${prefix} (${show(a)} vs ${show(b)})`];
}

/** Peak learning rate: DINO's lr·global batch/256 (global batch = batchSize·accumulate·processes). */
export function peakLr(c: Config, worldSize = 1): number {
  const batch = c.optim.batchSize * c.optim.accumulate * worldSize; // the global batch of one optimizer step
  return c.optim.lrScaling === 'batch/256' ? (c.optim.lr * batch) / 256 : c.optim.lr;
}

/** The base teacher momentum: optim.teacherMomentum, or (null) the one leaving optim.teacherRetention of the init at the end. */
export function teacherMomentumBase(c: Config): number {
  const o = c.optim;
  return o.teacherMomentum ?? momentumForRetention(o.teacherRetention, o.steps, o.teacherMomentumEnd);
}

export function warmupSteps(c: Config): number {
  return c.optim.warmupSteps ?? Math.round(0.1 * c.optim.steps);
}
