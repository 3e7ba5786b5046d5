// Running the comparison: pretraining a method through the CLI (reusing a finished run), and evaluating a
// checkpoint (or a random init) with every probe, on one or both of its networks.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { relative } from 'node:path';
import { describeResult, runEval } from '../../src/eval/index.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';
import { readMetrics } from '../../src/train/run.js';
import { type Args, MINI_EVAL, PROBES, ROOT } from './args.js';

export const log = (s: string) => process.stderr.write(`[compare] ${s}\n`);

export interface RunRecord {
  method: string;
  seed: number;
  dir: string;
  ok: boolean;
  error?: string;
  /** The network evaluated ('teacher'/'student'; null for random init); `reference`: the one the method's reference evaluates. */
  network?: string | null;
  reference?: boolean;
  pretrainS?: number;
  stepS?: number; // median seconds per step (after 3 warm-up steps)
  evals: Record<string, Record<string, unknown>>; // by probe name
  evalS: Record<string, number>;
}

export function finished(dir: string, steps: number): boolean {
  return listCheckpoints(dir).some((c) => c.step === steps);
}

export function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function stepSeconds(dir: string): number {
  const rows = readMetrics(dir).filter((r) => typeof r.step_s === 'number');
  return median(rows.slice(Math.min(3, Math.max(0, rows.length - 1))).map((r) => r.step_s as number));
}

export function pretrain(
  a: Args,
  method: string,
  seed: number,
  dir: string,
): { ok: boolean; error?: string; seconds: number } {
  if (!a.fresh && finished(dir, a.steps)) {
    log(`${method} seed ${seed}: reusing ${relative(process.cwd(), dir)}`);
    return { ok: true, seconds: Number.NaN };
  }
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  const args = ['bin/locus.js', 'pretrain', '--method', method, '--steps', String(a.steps), '--seed', String(seed)];
  args.push('--out', dir);
  for (const s of a.sets) args.push('--set', s);
  args.push('--set', 'train.progress="plain"', '--set', `train.printEvery=${Math.max(1, Math.round(a.steps / 10))}`);
  log(`${method} seed ${seed}: node ${args.join(' ')}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 2, 'pipe'],
    env: { ...process.env, MALLOC_ARENA_MAX: '1' },
  });
  const seconds = (performance.now() - t0) / 1000;
  const err = r.stderr?.toString() ?? '';
  process.stderr.write(err);
  if (r.status !== 0 || !finished(dir, a.steps)) {
    const line = err.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${r.status}`;
    return { ok: false, error: line.slice(0, 300), seconds };
  }
  return { ok: true, seconds };
}

/** Every asked probe on one backbone; a failing probe is recorded as {error} and the others still run. */
export async function evaluate(
  a: Args,
  checkpoint: string,
  seed: number,
  extra: { randomConfig?: Record<string, unknown>; backbone?: string } = {},
): Promise<{ evals: Record<string, Record<string, unknown>>; evalS: Record<string, number> }> {
  const evals: Record<string, Record<string, unknown>> = {};
  const evalS: Record<string, number> = {};
  for (const probe of PROBES.filter((p) => a.evals.includes(p.name))) {
    const t0 = performance.now();
    try {
      evals[probe.name] = await runEval(probe.kind, {
        checkpoint,
        randomConfig: extra.randomConfig,
        backbone: extra.backbone,
        options: {
          seed,
          progress: false,
          ...probe.options,
          ...(a.mini ? MINI_EVAL[probe.name] : {}),
          // a probe variant (e.g. knn on scene items) must not replace <run>/evals/<kind>.json of the default probe
          ...(Object.keys(probe.options).length > 0 ? { outDir: null } : {}),
        },
      });
    } catch (e) {
      evals[probe.name] = { error: (e as Error).message.split('\n')[0] };
      log(`  ${probe.name} failed: ${(e as Error).message.split('\n')[0]}`);
    }
    evalS[probe.name] = (performance.now() - t0) / 1000;
    log(
      `  ${probe.name}: ${describeResult(probe.kind, evals[probe.name] as Record<string, unknown>)} (${evalS[probe.name]?.toFixed(1)} s)`,
    );
  }
  return { evals, evalS };
}

/** A record's probe results in one line each (the stdout summary). */
export function summary(name: string, r: Record<string, unknown>): string {
  const probe = PROBES.find((p) => p.name === name);
  return describeResult(probe?.kind ?? name, r);
}
