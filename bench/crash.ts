// Crash soak (issue 15): N trials of a tiny DINO run SIGKILLed and resumed. Half the trials are killed
// at a uniformly random time during training, half the moment a periodic checkpoint's temp file appears
// (mid-write). After each kill: every checkpoint left under a step-* name must pass its SHA-256 check;
// `locus pretrain --resume` must finish the run; no temp file may be left after the resume; the steps
// lost (last step trained before the kill minus the step resumed from) must be ≤ ckptEvery; and the
// final checkpoint's tensors and the 1..S losses must equal an uninterrupted run's, byte for byte.
//
// Usage: node dist/bench/crash.js [--trials 20] [--steps 40] [--ckpt-every 5] [--seed 1] [--set key=value ...]
// Last line: {"trials","resumed","corrupt","temp_left","max_steps_lost","ckpt_every","identical"}.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, type FSWatcher, mkdtempSync, readdirSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readSafetensorsFileSync } from '../src/engine/safetensors.js';
import { checkpointIntact, listCheckpoints } from '../src/train/checkpoint.js';
import { readMetrics } from '../src/train/run.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const BIN = join(ROOT, 'bin/locus.js');
function usage(msg: string): never {
  process.stderr.write(`locus bench crash: ${msg}\n`);
  process.exit(2);
}
let values: { trials: string; steps: string; 'ckpt-every': string; seed: string; set: string[] };
try {
  values = parseArgs({
    options: {
      trials: { type: 'string', default: '20' },
      steps: { type: 'string', default: '40' },
      'ckpt-every': { type: 'string', default: '5' },
      seed: { type: 'string', default: '1' },
      set: { type: 'string', multiple: true, default: [] },
    },
  }).values as typeof values;
} catch (e) {
  usage(
    `${(e as Error).message.split('\n')[0]} (options: --trials N, --steps N, --ckpt-every N, --seed N, --set key=value)`,
  );
}
const trials = Number(values.trials);
const steps = Number(values.steps);
const ckptEvery = Number(values['ckpt-every']);
for (const [k, v] of [
  ['--trials', values.trials],
  ['--steps', values.steps],
  ['--ckpt-every', values['ckpt-every']],
] as const)
  if (!Number.isInteger(Number(v)) || Number(v) < 1) usage(`${k} must be an integer ≥ 1 (got '${v}')`);
if (steps <= ckptEvery)
  usage(`--steps ${steps} must be greater than --ckpt-every ${ckptEvery} (no periodic checkpoint to hit)`);

// A 1-block ViT of width 32 with an 8192-wide DINO head: ~10 MB checkpoints (long enough to be hit mid-write).
const SETS = [
  'model.depth=1',
  'model.dim=32',
  'model.heads=2',
  'dino.outDim=8192',
  'dino.hiddenDim=128',
  'dino.bottleneckDim=64',
  'optim.batchSize=8',
  'data.dataset.length=48',
  'data.dataset.size=32',
  'data.workers=1',
  'train.progress="none"',
  `train.ckptEvery=${ckptEvery}`,
  ...values.set,
];
const ARGS = ['--steps', String(steps), ...SETS.flatMap((s) => ['--set', s])];
const ENV = { ...process.env, LOCUS_THREADS: process.env.LOCUS_THREADS ?? '1', MALLOC_ARENA_MAX: '1' };

let rngState = Number(values.seed) >>> 0 || 1;
const random = () => {
  rngState = (Math.imul(rngState, 1664525) + 1013904223) >>> 0;
  return rngState / 2 ** 32;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TEMP_RE = /\.tmp$/;

function locus(args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, env: ENV, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
}

/** Temp files anywhere in a run directory (checkpoints/, evals/, the directory itself). */
function temps(dir: string): string[] {
  const out: string[] = [];
  for (const d of [dir, join(dir, 'checkpoints'), join(dir, 'evals')])
    if (existsSync(d)) for (const f of readdirSync(d)) if (TEMP_RE.test(f)) out.push(join(d, f));
  return out;
}

/** Tensor bytes of a checkpoint by name (metadata, which holds the save time, is not compared). */
function tensors(file: string): Map<string, Buffer> {
  const f = readSafetensorsFileSync(file);
  return new Map(Object.entries(f.entries).map(([k, e]) => [k, Buffer.from(e.data)]));
}

function sameTensors(a: Map<string, Buffer>, b: Map<string, Buffer>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (!b.get(k)?.equals(v)) return false;
  return true;
}

const lastStep = (dir: string) => readMetrics(dir).at(-1)?.step ?? 0;
const exited = (c: ChildProcess) =>
  new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));

async function started(dir: string, c: ChildProcess): Promise<void> {
  while (lastStep(dir) < 1) {
    if (c.exitCode !== null) throw new Error(`the run exited (${c.exitCode}) before its first step`);
    await sleep(20);
  }
}

/** Kills the run the moment the temp file of the checkpoint at `step` appears (inotify, with polling). */
function killMidWrite(dir: string, c: ChildProcess, step: number): Promise<boolean> {
  const prefix = `.step-${String(step).padStart(6, '0')}.safetensors.`;
  const ck = join(dir, 'checkpoints');
  return new Promise((done) => {
    let w: FSWatcher | null = null;
    let timer: NodeJS.Timeout | null = null;
    const finish = (hit: boolean) => {
      w?.close();
      if (timer) clearInterval(timer);
      done(hit);
    };
    const check = () => {
      if (c.exitCode !== null) return finish(false);
      if (readdirSync(ck).some((f) => f.startsWith(prefix))) {
        c.kill('SIGKILL');
        finish(true);
      }
    };
    w = watch(ck, check);
    timer = setInterval(check, 2);
  });
}

interface Trial {
  kind: 'random' | 'mid-write';
  killedAt: number;
  hitWrite: boolean;
  tempsAfterKill: number;
  corrupt: number;
  resumed: boolean;
  fromStep: number;
  lost: number;
  tempLeft: number;
  identical: boolean;
}

async function main(): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'locus-crash-'));
  try {
    process.stderr.write(`[crash] reference: ${steps} steps uninterrupted (checkpoint every ${ckptEvery})\n`);
    const ref = join(root, 'ref');
    const t0 = Date.now();
    const r = locus(['pretrain', ...ARGS, '--out', ref]);
    if (r.code !== 0) throw new Error(`the reference run failed: ${r.stderr.trim().split('\n').at(-1)}`);
    const refSeconds = (Date.now() - t0) / 1000;
    const refLoss = readMetrics(ref).map((m) => m.loss);
    const refFinal = tensors(listCheckpoints(ref).at(-1)?.path as string);
    const periodic = Array.from({ length: Math.floor((steps - 1) / ckptEvery) }, (_, i) => (i + 1) * ckptEvery);

    const results: Trial[] = [];
    for (let i = 0; i < trials; i++) {
      const kind: Trial['kind'] = i % 2 === 0 || periodic.length === 0 ? 'random' : 'mid-write';
      const dir = join(root, `trial-${i}`);
      const c = spawn(process.execPath, [BIN, 'pretrain', ...ARGS, '--out', dir], {
        cwd: ROOT,
        env: ENV,
        stdio: 'ignore',
      });
      let hitWrite = false;
      if (kind === 'random') {
        await started(dir, c);
        await sleep(random() * refSeconds * 700); // within the first ~70% of the training time
        c.kill('SIGKILL');
      } else {
        await started(dir, c);
        hitWrite = await killMidWrite(dir, c, periodic[Math.floor(random() * periodic.length)] as number);
        if (!hitWrite) c.kill('SIGKILL');
      }
      await exited(c);
      const killedAt = lastStep(dir);
      const tempsAfterKill = temps(dir).length;
      const ckpts = listCheckpoints(dir);
      const corrupt = ckpts.filter((k) => !checkpointIntact(k.path)).length;
      const fromStep = ckpts.filter((k) => checkpointIntact(k.path)).at(-1)?.step ?? 0;
      const res = locus(['pretrain', '--resume', dir]);
      const resumed = res.code === 0;
      const tempLeft = temps(dir).length;
      const final = listCheckpoints(dir).at(-1);
      const identical =
        resumed &&
        final?.step === steps &&
        sameTensors(refFinal, tensors(final.path)) &&
        JSON.stringify(readMetrics(dir).map((m) => m.loss)) === JSON.stringify(refLoss);
      const t: Trial = {
        kind,
        killedAt,
        hitWrite,
        tempsAfterKill,
        corrupt,
        resumed,
        fromStep,
        lost: killedAt - fromStep,
        tempLeft,
        identical,
      };
      results.push(t);
      process.stdout.write(
        `trial ${String(i + 1).padStart(2)} ${kind.padEnd(9)} killed after step ${String(killedAt).padStart(3)}${kind === 'mid-write' ? (hitWrite ? ' (mid-write)' : ' (missed the write)') : ''}: ` +
          `${ckpts.length} checkpoint(s), ${corrupt} corrupt, ${tempsAfterKill} temp file(s) left by the kill; ` +
          `resume ${resumed ? 'ok' : `FAILED (${res.stderr.trim().split('\n').at(-1)})`} from step ${fromStep} (lost ${t.lost}), ` +
          `${tempLeft} temp file(s) after it, final tensors ${identical ? 'identical' : 'DIFFERENT'}\n`,
      );
      rmSync(dir, { recursive: true, force: true });
    }
    const summary = {
      trials,
      resumed: results.filter((t) => t.resumed).length,
      corrupt: results.reduce((s, t) => s + t.corrupt, 0),
      temp_left: results.reduce((s, t) => s + t.tempLeft, 0),
      max_steps_lost: Math.max(0, ...results.map((t) => t.lost)),
      ckpt_every: ckptEvery,
      identical: results.every((t) => t.identical),
    };
    const mid = results.filter((t) => t.kind === 'mid-write');
    process.stdout.write(
      `\n${summary.resumed}/${trials} resumed, ${summary.corrupt} corrupt checkpoint(s), ${summary.temp_left} temp file(s) left after resuming, ` +
        `max ${summary.max_steps_lost} step(s) lost (ckptEvery ${ckptEvery}), final tensors ${summary.identical ? 'identical in every trial' : 'DIFFERENT in some trial'}; ` +
        `${mid.filter((t) => t.hitWrite).length}/${mid.length} mid-write kills landed during a write, leaving ${results.reduce((s, t) => s + t.tempsAfterKill, 0)} temp file(s) for the resumes to remove\n`,
    );
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

await main();
