// Checkpoints: one safetensors file per save (student, teacher, optimizer state, RNG) with the run's
// position and config in its metadata and a SHA-256 over tensors + metadata, verified on load.
// Written atomically (temp file + fsync + rename, then the directory fsynced); never overwritten.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, openSync, readdirSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Tensor } from '../engine/index.js';
import { fromEntries, toEntries } from '../engine/io.js';
import { readSafetensorsFileSync, type StEntry, writeSafetensorsFileSync } from '../engine/safetensors.js';
import type { Config } from './config.js';
import { type Provenance, provenance } from './provenance.js';
import { errnoLine } from './run.js';

export const CHECKPOINT_FORMAT = 1;
const META = 'locus.checkpoint';
const CONFIG = 'locus.config';
const SHA = 'locus.sha256';
const PROVENANCE = 'locus.provenance'; // Locus version, commit, libtorch, device (covered by the checksum)

/** Where training stands in a checkpoint (metadata `locus.checkpoint`). */
export interface CheckpointInfo {
  format: number;
  method: string;
  step: number; // optimizer steps completed
  epoch: number; // epoch of the next step
  stepInEpoch: number; // batches of that epoch already consumed (the loader resumes there)
  stepsPerEpoch: number;
  optimizerStep: number; // AdamW's step count (bias correction)
  configHash: string;
  seed: number;
  loss: number | null; // loss of the last step
  savedAt: string;
}

export interface CheckpointData {
  info: CheckpointInfo;
  config: Config;
  /** Tensors by group: student.*, teacher.*, optim.*, rng.* (the prefix is stripped). */
  student: Map<string, Tensor>;
  teacher: Map<string, Tensor>;
  optim: Map<string, Tensor>;
  rng: Map<string, Tensor>;
  path: string;
  sha256: string; // the verified checksum: identifies the checkpoint in eval results
  provenance: Provenance | null; // null in checkpoints written before it was recorded
}

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export const checkpointName = (step: number): string => `step-${String(step).padStart(6, '0')}.safetensors`;
const NAME_RE = /^step-(\d+)\.safetensors$/;

/** SHA-256 over every tensor (name, dtype, shape, bytes; names sorted) and the metadata except the checksum. */
function checksum(entries: Record<string, StEntry>, meta: Record<string, string>): string {
  const h = createHash('sha256');
  for (const name of Object.keys(entries).sort()) {
    const e = entries[name] as StEntry;
    h.update(`${name}\0${e.dtype}\0${e.shape.join(',')}\0`);
    h.update(e.data);
  }
  for (const k of Object.keys(meta).sort()) if (k !== SHA) h.update(`${k}\0${meta[k]}\0`);
  return h.digest('hex');
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // some filesystems refuse to fsync a directory; the rename is still atomic
  }
}

export interface SaveParts {
  student: Map<string, Tensor>;
  teacher: Map<string, Tensor> | null;
  optim: Map<string, Tensor>;
  rng: Map<string, Tensor>;
}

/** Writes a checkpoint file; refuses to replace an existing one. Returns its path. */
export function saveCheckpoint(dir: string, parts: SaveParts, info: CheckpointInfo, config: Config): string {
  const path = join(dir, checkpointName(info.step));
  if (existsSync(path)) throw new CheckpointError(`checkpoint ${path} already exists; refusing to overwrite it`);
  const named = new Map<string, Tensor>();
  const add = (prefix: string, m: Map<string, Tensor> | null) => {
    for (const [k, t] of m ?? []) named.set(`${prefix}.${k}`, t);
  };
  add('student', parts.student);
  add('teacher', parts.teacher);
  add('optim', parts.optim);
  add('rng', parts.rng);
  const entries = toEntries(named);
  const meta: Record<string, string> = { [META]: JSON.stringify(info), [CONFIG]: JSON.stringify(config) };
  meta[PROVENANCE] = JSON.stringify(provenance(parts.student.values().next().value?.device ?? 'cpu'));
  meta[SHA] = checksum(entries, meta);
  const previous = listCheckpoints(dir).at(-1)?.path ?? null;
  try {
    writeSafetensorsFileSync(path, entries, meta); // removes its temp file when it fails
  } catch (e) {
    throw new CheckpointError(`cannot write checkpoint ${path} (${errnoLine(e)}); ${lastGoodLine(previous)}`);
  }
  fsyncDir(dir);
  return path;
}

/** Does a checkpoint file pass its checksum? (reads it; creates no tensors) */
export function checkpointIntact(path: string): boolean {
  try {
    const f = readSafetensorsFileSync(path);
    return f.metadata[SHA] !== undefined && checksum(f.entries, f.metadata) === f.metadata[SHA];
  } catch {
    return false;
  }
}

/** "the last good checkpoint is … (verified intact)", checked now, for error messages. */
export function lastGoodLine(previous: string | null): string {
  if (!previous) return 'no checkpoint was written before this one (--resume starts the run from step 0)';
  return checkpointIntact(previous)
    ? `the last good checkpoint is ${previous}, intact (SHA-256 verified)`
    : `the previous checkpoint ${previous} fails its SHA-256 check too`;
}

/** Reads and verifies a checkpoint file (header, checksum, format). Throws CheckpointError with one line. */
export function loadCheckpoint(path: string): CheckpointData {
  const file = resolveCheckpoint(path);
  let f: ReturnType<typeof readSafetensorsFileSync>;
  try {
    f = readSafetensorsFileSync(file);
  } catch (e) {
    throw new CheckpointError(`corrupt checkpoint ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  const meta = f.metadata;
  if (!meta[META] || !meta[SHA])
    throw new CheckpointError(`${file} is not a Locus checkpoint (no ${META}/${SHA} metadata)`);
  const sum = checksum(f.entries, meta);
  if (sum !== meta[SHA])
    throw new CheckpointError(
      `corrupt checkpoint ${file}: SHA-256 mismatch (stored ${meta[SHA].slice(0, 12)}…, computed ${sum.slice(0, 12)}…)`,
    );
  const info = metaJson<CheckpointInfo>(file, meta, META);
  if (info.format !== CHECKPOINT_FORMAT)
    throw new CheckpointError(
      `${file}: checkpoint format ${info.format} is not supported (this Locus reads ${CHECKPOINT_FORMAT})`,
    );
  const all = fromEntries(f.entries);
  const group = (prefix: string) => {
    const m = new Map<string, Tensor>();
    for (const [k, t] of all) if (k.startsWith(`${prefix}.`)) m.set(k.slice(prefix.length + 1), t);
    return m;
  };
  return {
    info,
    config: meta[CONFIG] ? metaJson<Config>(file, meta, CONFIG) : ({} as Config),
    student: group('student'),
    teacher: group('teacher'),
    optim: group('optim'),
    rng: group('rng'),
    path: file,
    sha256: sum,
    provenance: meta[PROVENANCE] ? (JSON.parse(meta[PROVENANCE]) as Provenance) : null,
  };
}

/** The resolved config stored in a checkpoint's metadata (no checksum check: use loadCheckpoint for that). */
export function checkpointConfig(path: string): Config {
  const file = resolveCheckpoint(path);
  let meta: Record<string, string>;
  try {
    meta = readSafetensorsFileSync(file).metadata;
  } catch (e) {
    throw new CheckpointError(`corrupt checkpoint ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!meta[CONFIG]) throw new CheckpointError(`${file} is not a Locus checkpoint (no ${CONFIG} metadata)`);
  return metaJson<Config>(file, meta, CONFIG);
}

function metaJson<T>(file: string, meta: Record<string, string>, key: string): T {
  try {
    return JSON.parse(meta[key] as string) as T;
  } catch (e) {
    throw new CheckpointError(
      `corrupt checkpoint ${file}: metadata ${key} is not valid JSON (${(e as Error).message})`,
    );
  }
}

/** Frees a loaded checkpoint's tensors. */
export function disposeCheckpoint(c: CheckpointData): void {
  for (const m of [c.student, c.teacher, c.optim, c.rng]) for (const t of m.values()) t.dispose();
}

/** The checkpoint files of a run (or checkpoints) directory, oldest first. */
export function listCheckpoints(dir: string): { step: number; path: string }[] {
  const d = existsSync(join(dir, 'checkpoints')) ? join(dir, 'checkpoints') : dir;
  if (!existsSync(d)) return [];
  return readdirSync(d)
    .map((f) => ({ m: NAME_RE.exec(f), f }))
    .filter((x) => x.m)
    .map((x) => ({ step: Number((x.m as RegExpExecArray)[1]), path: join(d, x.f) }))
    .sort((a, b) => a.step - b.step);
}

/** A checkpoint file from a path that is the file itself or a run directory (its latest checkpoint). */
export function resolveCheckpoint(path: string): string {
  const p = resolve(path);
  if (!existsSync(p)) throw new CheckpointError(`checkpoint '${path}' does not exist`);
  if (statSync(p).isFile()) return p;
  const list = listCheckpoints(p);
  const last = list[list.length - 1];
  if (!last) throw new CheckpointError(`no checkpoint (checkpoints/step-*.safetensors) in '${path}'`);
  return last.path;
}

/** The run directory a checkpoint file belongs to (…/RUN/checkpoints/step-N.safetensors → …/RUN). */
export function runDirOf(checkpointPath: string): string {
  const d = dirname(resolve(checkpointPath));
  return basename(d) === 'checkpoints' ? dirname(d) : d;
}

/** Deletes the oldest periodic checkpoints beyond `keep`, never `protect` (the newest is always kept). */
export function pruneCheckpoints(dir: string, keep: number, protect: Set<string> = new Set()): void {
  const list = listCheckpoints(dir);
  for (const c of list.slice(0, Math.max(0, list.length - keep)))
    if (!protect.has(c.path)) rmSync(c.path, { force: true });
}
