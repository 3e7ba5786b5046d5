// The run directory: config.json (resolved), metrics.jsonl (one row per logged step), checkpoints/,
// evals/<kind>@<dataset>.json and report.html. A new run never reuses a directory that holds a run.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Config, resolveDevice } from './config.js';
import { evalFileName } from './evalfiles.js';
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
  };
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

/** Is there a run (config, metrics or checkpoints) in dir? */
export function holdsRun(dir: string): boolean {
  const p = runPaths(dir);
  return existsSync(p.config) || existsSync(p.metrics) || existsSync(p.checkpoints);
}

/** Creates a fresh run directory and writes the resolved config. An existing run there is an error. */
export function createRun(dir: string, config: Config): RunPaths {
  const p = runPaths(dir);
  if (existsSync(p.dir) && holdsRun(p.dir))
    throw new RunError(
      `run directory ${p.dir} already holds a run; use --resume ${dir} to continue it, or another --out`,
    );
  if (existsSync(p.dir) && readdirSync(p.dir).length > 0)
    throw new RunError(`--out ${dir} exists and is not empty; choose a new or empty directory`);
  mkdirSync(p.checkpoints, { recursive: true });
  writeRunConfig(p.dir, config);
  return p;
}

/**
 * Writes config.json: the resolved config plus a top-level `provenance` (Locus version, commit, libtorch,
 * device) from when the run was created; a rewrite (resume with a new length) keeps the first one.
 */
export function writeRunConfig(dir: string, config: Config): void {
  const p = runPaths(dir);
  let device: string = config.train?.device ?? 'cpu';
  try {
    device = resolveDevice(config);
  } catch {
    // the device was checked before; keep the configured name
  }
  const prov = (existsSync(p.config) && readRunProvenance(dir)) || provenance(device);
  writeJsonAtomic(p.config, { ...config, provenance: prov });
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

/** Writes JSON through a temp file + rename (readers never see half a file). */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

export function readRunConfig(dir: string): Config {
  const p = runPaths(dir);
  if (!existsSync(p.config)) throw new RunError(`${dir} is not a run directory (no config.json)`);
  const { provenance: _p, ...config } = JSON.parse(readFileSync(p.config, 'utf8')) as Config & { provenance?: unknown };
  return config as Config; // the provenance stamp is not part of the config (readRunProvenance)
}

export type MetricsRow = Record<string, number>;

export function appendMetrics(p: RunPaths, row: MetricsRow): void {
  appendFileSync(p.metrics, `${JSON.stringify(row)}\n`);
}

export function readMetrics(dir: string): MetricsRow[] {
  const p = runPaths(dir);
  if (!existsSync(p.metrics)) return [];
  return readFileSync(p.metrics, 'utf8')
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
  const tmp = `${p.metrics}.${process.pid}.tmp`;
  writeFileSync(tmp, keep.map((r) => `${JSON.stringify(r)}\n`).join(''));
  renameSync(tmp, p.metrics);
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
      out[f.slice(0, -5)] = JSON.parse(readFileSync(join(p.evals, f), 'utf8')) as Record<string, unknown>;
    } catch {
      // skip unreadable results
    }
  }
  return out;
}
