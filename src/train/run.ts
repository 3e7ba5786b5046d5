// The run directory: config.json (resolved), metrics.jsonl (one row per logged step), checkpoints/,
// evals/<kind>@<dataset>.json, report.html and, while a process writes the run, its lock file. A run directory is
// always in one of two states: new or never checkpointed (--resume starts it from step 0 with its saved
// config) or checkpointed (--resume continues exactly). It is created atomically: written into a temp
// directory beside it, then renamed into place, so a failed creation leaves nothing behind.
import { randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { type Config, resolveDevice } from './config.js';
import { evalFileName } from './evalfiles.js';
import { pidAlive } from './lock.js';
import { type Provenance, provenance } from './provenance.js';

export class RunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunError';
  }
}

export interface RunPaths {
  dir: string;
  config: string;
  metrics: string;
  checkpoints: string;
  evals: string;
  report: string;
  lock: string;
}

export function runPaths(dir: string): RunPaths {
  const d = resolve(dir);
  return {
    dir: d,
    config: join(d, 'config.json'),
    metrics: join(d, 'metrics.jsonl'),
    checkpoints: join(d, 'checkpoints'),
    evals: join(d, 'evals'),
    report: join(d, 'report.html'),
    lock: join(d, 'lock'),
  };
}

/** An fs error's first line, led by its code where the message does not start with it ('ENOSPC: …'). */
export function errnoLine(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const msg = (err.message ?? String(e)).split('\n')[0] as string;
  return `${err.code && !msg.startsWith(err.code) ? `${err.code}: ` : ''}${msg}`;
}

/** An fs error as one line that names the file (Node's messages for write/append on a descriptor do not). */
export function ioError(what: string, file: string, e: unknown): RunError {
  return new RunError(`${what} ${file}: ${errnoLine(e)}`);
}

/** runs/<method>-YYYYMMDD-HHMMSS (local time), with a suffix if that exists already. */
export function defaultRunDir(method: string, root = 'runs', now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  const base = join(root, `${method.replace(/[^A-Za-z0-9_.-]/g, '_')}-${stamp}`);
  let d = base;
  for (let i = 2; existsSync(d); i++) d = `${base}-${i}`;
  return d;
}

/** Is there a run in dir? (config.json is written first, in the same rename that creates the directory.) */
export function holdsRun(dir: string): boolean {
  return existsSync(runPaths(dir).config);
}

const CREATING_RE = /^\..+\.creating-(\d+)-[0-9a-f]+$/;

/**
 * Creates a fresh run directory with the resolved config, atomically: config.json, checkpoints/ and
 * (when `lock` is given) the lock file are written into a temp directory beside `dir`, which is then
 * renamed to `dir` (an empty existing directory is replaced). An existing run there is an error.
 */
export function createRun(dir: string, config: Config, lock?: (tmpDir: string) => void): RunPaths {
  const p = runPaths(dir);
  if (holdsRun(p.dir))
    throw new RunError(
      `run directory ${p.dir} already holds a run; use --resume ${dir} to continue it, or another --out`,
    );
  if (existsSync(p.dir) && readdirSync(p.dir).length > 0)
    throw new RunError(`--out ${dir} exists and is not empty; choose a new or empty directory`);
  const parent = dirname(p.dir);
  try {
    mkdirSync(parent, { recursive: true });
  } catch (e) {
    throw ioError('cannot create the parent directory of', p.dir, e);
  }
  removeStaleCreations(parent);
  const tmp = join(parent, `.${basename(p.dir)}.creating-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(join(tmp, 'checkpoints'), { recursive: true });
    writeJsonAtomic(join(tmp, 'config.json'), stamped(config, null));
    lock?.(tmp);
    renameSync(tmp, p.dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    const msg = (e instanceof RunError ? e : ioError('cannot write in', tmp, e)).message.replaceAll(tmp, p.dir);
    throw new RunError(`cannot create run directory ${p.dir} (nothing was left behind): ${msg}`);
  }
  return p;
}

/**
 * Writes config.json: the resolved config plus a top-level `provenance` (Locus version, commit, libtorch,
 * device) from when the run was created; a rewrite (resume with a new length) keeps the first one.
 */
export function writeRunConfig(dir: string, config: Config): void {
  const p = runPaths(dir);
  writeJsonAtomic(p.config, stamped(config, existsSync(p.config) ? readRunProvenance(dir) : null));
}

/** The config with its provenance stamp (`prev`, else a new one for the configured device). */
function stamped(config: Config, prev: Provenance | null): Config & { provenance: Provenance } {
  let device: string = config.train?.device ?? 'cpu';
  try {
    device = resolveDevice(config);
  } catch {
    // the device was checked before; keep the configured name
  }
  return { ...config, provenance: prev ?? provenance(device) };
}

/** The provenance stamped into a run's config.json (null for runs written before it was recorded). */
export function readRunProvenance(dir: string): Provenance | null {
  try {
    const j = JSON.parse(readFileSync(runPaths(dir).config, 'utf8')) as { provenance?: Provenance };
    return j.provenance ?? null;
  } catch {
    return null;
  }
}

/** Temp directories of creations whose process is gone (killed between mkdir and rename). */
function removeStaleCreations(parent: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const n of names) {
    const m = CREATING_RE.exec(n);
    if (m && !pidAlive(Number(m[1]))) rmSync(join(parent, n), { recursive: true, force: true });
  }
}

/** Writes text through a temp file (PATH.PID.tmp) + rename: readers never see half a file; a failure
 * removes the temp file and is one line `<what> PATH: …`. */
export function writeTextAtomic(path: string, text: string, what = 'cannot write'): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw ioError(what, path, e);
  }
}

/** Writes JSON through a temp file + rename (readers never see half a file). Errors name the file. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeTextAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw ioError('cannot read', path, e);
  }
}

/** Parses a JSON file; an unreadable or invalid file is one line naming it. */
export function readJsonFile<T>(path: string): T {
  const text = readText(path);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new RunError(`${path} is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

export function readRunConfig(dir: string): Config {
  const p = runPaths(dir);
  if (!existsSync(p.config)) throw new RunError(`${dir} is not a run directory (no config.json)`);
  const j = readJsonFile<Config & { provenance?: unknown }>(p.config);
  if (j === null || typeof j !== 'object' || Array.isArray(j) || typeof j.method !== 'string')
    throw new RunError(`${p.config} is not a Locus run config (no "method" field)`);
  const { provenance: _p, ...c } = j;
  return c as Config; // the provenance stamp is not part of the config (readRunProvenance)
}

export type MetricsRow = Record<string, number>;

export function appendMetrics(p: RunPaths, row: MetricsRow): void {
  try {
    appendFileSync(p.metrics, `${JSON.stringify(row)}\n`);
  } catch (e) {
    throw ioError('cannot append to', p.metrics, e);
  }
}

export function readMetrics(dir: string): MetricsRow[] {
  const p = runPaths(dir);
  if (!existsSync(p.metrics)) return [];
  return readText(p.metrics)
    .split('\n')
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as MetricsRow];
      } catch {
        return []; // a line cut by a crash
      }
    });
}

/** On resume: drop metric rows logged after the checkpoint's step (they will be logged again). */
export function truncateMetrics(p: RunPaths, step: number): void {
  if (!existsSync(p.metrics)) return;
  const keep = readMetrics(p.dir).filter((r) => (r.step ?? 0) <= step);
  writeTextAtomic(p.metrics, keep.map((r) => `${JSON.stringify(r)}\n`).join(''), 'cannot rewrite');
}

// Temp files of this run's writers: checkpoints (.step-NNNNNN.safetensors.PID.RAND.tmp), seg heads and
// samples (.NAME.safetensors.PID.RAND.tmp) and JSON/metrics rewrites (NAME.PID.tmp).
const TEMP_PATTERNS: [string, RegExp][] = [
  ['checkpoints', /^\.step-\d+\.safetensors\.(\d+)\.[0-9a-f]+\.tmp$/],
  ['.', /^(?:config\.json|metrics\.jsonl)\.(\d+)\.tmp$/],
  ['evals', /^[A-Za-z0-9_-]+\.json\.(\d+)\.tmp$/],
  ['evals', /^\.[A-Za-z0-9_-]+\.safetensors\.(\d+)\.[0-9a-f]+\.tmp$/],
];

/** Removes temp files left by killed writers of this run (only this run's naming patterns, only dead pids). */
export function removeStaleTemps(dir: string): string[] {
  const p = runPaths(dir);
  const removed: string[] = [];
  for (const [sub, re] of TEMP_PATTERNS) {
    const d = sub === '.' ? p.dir : join(p.dir, sub);
    if (!existsSync(d)) continue;
    for (const n of readdirSync(d)) {
      const m = re.exec(n);
      if (!m || pidAlive(Number(m[1]))) continue;
      rmSync(join(d, n), { force: true });
      removed.push(join(d, n));
    }
  }
  return removed;
}

/** Writes <run>/evals/<kind>@<dataset>.json (kind may be `<probe>_random_init`); returns its path. */
export function writeEval(dir: string, kind: string, result: Record<string, unknown>): string {
  const p = runPaths(dir);
  mkdirSync(p.evals, { recursive: true });
  const path = join(p.evals, evalFileName(kind, result));
  writeJsonAtomic(path, result);
  return path;
}

export function readEvals(dir: string): Record<string, Record<string, unknown>> {
  const p = runPaths(dir);
  if (!existsSync(p.evals)) return {};
  const out: Record<string, Record<string, unknown>> = {};
  for (const f of readdirSync(p.evals).sort()) {
    if (!f.endsWith('.json')) continue;
    try {
      out[f.slice(0, -5)] = readJsonFile<Record<string, unknown>>(join(p.evals, f));
    } catch (e) {
      process.stderr.write(`locus: skipping ${(e as Error).message}\n`); // named, and the rest still reads
    }
  }
  return out;
}

/** Files a run directory owns: writing over them (or into its checkpoints/, evals/, cache/) breaks the run. */
const OWNED_FILES = new Set(['config.json', 'metrics.jsonl', 'lock']);
const OWNED_DIRS = new Set(['checkpoints', 'evals', 'cache']);

/** The nearest existing ancestor's real path + the rest: a path as the filesystem will resolve it. */
function realish(path: string): string {
  let head = resolve(path);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(realpathSync(head), ...rest.reverse());
    } catch {
      const up = dirname(head);
      if (up === head) return resolve(path);
      rest.push(basename(head));
      head = up;
    }
  }
}

/**
 * If `path` is (or would be) a file a run directory owns, one line saying so, naming the run; else null.
 * A run directory is one with a config.json; config.json, metrics.jsonl, lock and anything under
 * checkpoints/, evals/ or cache/ are the run's (report.html and other new files are not).
 */
export function runOwnedPath(path: string): string | null {
  const full = realish(path);
  for (let d = dirname(full); ; d = dirname(d)) {
    if (
      existsSync(join(d, 'config.json')) &&
      (existsSync(join(d, 'checkpoints')) || existsSync(join(d, 'metrics.jsonl')))
    ) {
      const rel = relative(d, full);
      const top = rel.split(sep)[0] as string;
      if ((rel === top && OWNED_FILES.has(top)) || (rel !== top && OWNED_DIRS.has(top)))
        return `${path} is ${rel} of the run directory ${d}, a file the run owns`;
    }
    if (dirname(d) === d) return null;
  }
}

/** Throws a RunError when `path` (an --out) would write over a file a run owns. */
export function refuseRunOwned(path: string, option = '--out'): void {
  const owned = runOwnedPath(path);
  if (owned) throw new RunError(`${option}: ${owned}; choose a path outside it (e.g. beside the run directory)`);
}
