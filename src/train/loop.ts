// The training loop: data → forward/loss (in a tidy scope, so intermediates are freed before backward)
// → backward → clip → method hook → optimizer → EMA/centre updates; schedules per step (DINO's
// cosine_scheduler arrays); metrics, checkpoints, signals and NaN stops.
//
// Exact resume: libtorch's generator is re-seeded from (seed, step) before every step, batches are a pure
// function of (seed, epoch, indices) and the loader restarts mid-epoch; so a resumed run repeats the
// uninterrupted run's arithmetic step for step.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { toTensors } from '../data/collate.js';
import { Loader, type LoaderOptions } from '../data/loader.js';
import { deriveSeed } from '../data/rng.js';
import { SkipLog } from '../data/skiplog.js';
import {
  autocast,
  dispose,
  engineInfo,
  GradScaler,
  getRngState,
  manualSeed,
  precisionUnsupported,
  scalar,
  setNumThreads,
  setRngState,
  type Tensor,
  tidy,
} from '../engine/index.js';
import { getMethod } from '../methods/index.js';
import type { Collectives, Method, StepInfo } from '../methods/method.js';
import {
  AdamW,
  clipGradGlobal,
  clipGradPerTensor,
  cosineSchedule,
  decayGroups,
  type Optimizer,
  SGD,
  teacherRetention,
  type VitConfig,
} from '../nn/index.js';
import {
  CHECKPOINT_FORMAT,
  type CheckpointData,
  type CheckpointInfo,
  pruneCheckpoints,
  saveCheckpoint,
} from './checkpoint.js';
import { type Config, configHash, peakLr, resolveDevice, teacherMomentumBase, warmupSteps } from './config.js';
import { initMethod } from './import.js';
import type { Progress } from './progress.js';
import { appendMetrics, type MetricsRow, type RunPaths } from './run.js';
import { type StopFlag, yieldToEventLoop } from './signals.js';

const STEP_STREAM = 0x53544550; // 'STEP': libtorch seed of step k on rank r = deriveSeed(seed, STEP_STREAM, k, r)

export class NonFiniteLossError extends Error {
  constructor(
    readonly step: number,
    readonly value: number,
    readonly lastCheckpoint: string | null,
  ) {
    super(
      `non-finite loss (${value}) at step ${step}; stopped. Last good checkpoint: ${lastCheckpoint ?? 'none (none written yet)'}` +
        (lastCheckpoint ? ' (left untouched)' : ''),
    );
    this.name = 'NonFiniteLossError';
  }
}

/** Data-parallel hooks (src/train/distributed.ts's Distributed fits); absent = one process. */
export interface TrainDist extends Collectives {
  rank: number;
  /** This process's index on its machine (default: rank): a cuda run uses cuda:<localRank>. */
  localRank?: number;
  isMain: boolean;
  syncGradients(params: Tensor[]): void;
  /** Seconds spent in gradient all-reduce so far (logged per step as allreduce_s). */
  readonly allReduceSeconds?: number;
  broadcastModules(modules: (import('../nn/index.js').Module | null)[]): void;
}

export interface TrainOptions {
  config: Config;
  run: RunPaths;
  resume?: CheckpointData | null;
  progress: Progress;
  stop: StopFlag;
  dist?: TrainDist | null;
}

export interface TrainResult {
  step: number;
  totalSteps: number;
  finalCheckpoint: string;
  stopped: boolean; // by a signal
  lastLoss: number | null;
  seconds: number;
  skippedImages: number; // bad files skipped (listed in <run>/skipped.jsonl)
}

/** The student ViT's config from the run config (imgSize = global crop side). */
export function vitConfig(c: Config): VitConfig {
  const m = c.model;
  return {
    imgSize: m.imgSize,
    patchSize: m.patchSize,
    inChans: 3,
    dim: m.dim,
    depth: m.depth,
    heads: m.heads,
    mlpRatio: m.mlpRatio,
    qkvBias: m.qkvBias,
    dropPathRate: m.dropPath,
    maskToken: false,
  };
}

/** The method with freshly initialised networks (libtorch seeded from the run seed first). */
export function buildMethod(c: Config): Method {
  manualSeed(c.seed);
  return getMethod(c.method).create(c[c.method], {
    vit: vitConfig(c),
    batchSize: c.optim.batchSize,
    totalSteps: c.optim.steps,
    seed: c.seed,
  });
}

/** DINO's parameter groups (weights with decay; biases and 1-D tensors without) and optimizer. */
export function buildOptimizer(method: Method, c: Config): Optimizer {
  const { decay, noDecay } = decayGroups(method.student.namedParameters().filter(([, p]) => p.requiresGrad));
  const groups = [
    { params: decay.map(([, p]) => p), names: decay.map(([n]) => n), lr: 0, weightDecay: 0, wdScale: 1, lars: true },
    {
      params: noDecay.map(([, p]) => p),
      names: noDecay.map(([n]) => n),
      lr: 0,
      weightDecay: 0,
      wdScale: 0,
      lars: false,
    },
  ];
  if (method.optimizer === 'lars') return new SGD(groups, { momentum: 0.9, trustCoef: 0.001 });
  return new AdamW(groups, { beta1: c.optim.beta1, beta2: c.optim.beta2 });
}

/** A Loader whose first epoch after a resume starts at a given batch (batches are pure functions of their indices). */
class ResumableLoader extends Loader {
  private skipEpoch = -1;
  private skip = 0;
  startAt(epoch: number, batch: number): void {
    this.skipEpoch = epoch;
    this.skip = batch;
  }
  override async plan(epoch: number): Promise<number[][]> {
    const p = await super.plan(epoch);
    return epoch === this.skipEpoch ? p.slice(this.skip) : p;
  }
}

const num = (v: number | Tensor): number => (typeof v === 'number' ? v : v.item());

/** The device this process trains on: train.device resolved, and cuda:<local rank> with several processes. */
export function trainDevice(c: Config, dist?: TrainDist | null): string {
  const d = resolveDevice(c);
  if (d === 'cpu' || !dist || dist.worldSize === 1) return d;
  const local = dist.localRank ?? dist.rank;
  const count = engineInfo().cudaDevices;
  if (local >= count)
    throw new Error(`local rank ${local} needs device cuda:${local}, but this machine has ${count} CUDA device(s)`);
  return `cuda:${local}`;
}

/** With several ranks, all stop at the same step if any of them got a signal (else the others would hang). */
function stopAgreed(local: boolean, dist: TrainDist | null, device: string): boolean {
  if (!dist || dist.worldSize === 1) return local;
  const t = scalar(local ? 1 : 0, { device }); // on the run's device: NCCL reduces CUDA tensors only
  dist.allReduceMean(t);
  const any = t.item() > 0;
  t.dispose();
  return any;
}

export async function train(o: TrainOptions): Promise<TrainResult> {
  const c = o.config;
  const dist = o.dist ?? null;
  const world = dist?.worldSize ?? 1;
  const isMain = dist?.isMain ?? true;
  const comm: Collectives = dist ?? { worldSize: 1, allReduceMean: () => {} };
  if (c.train.threads) setNumThreads(c.train.threads);
  const device = trainDevice(c, dist);

  const method = buildMethod(c);
  // pretrain --init: the imported backbone in every ViT of the method before step 0 (a resume overwrites it)
  if (c.model.init && !o.resume) {
    const notes = initMethod(method, c.model.init, c.model.heads);
    if (isMain) process.stderr.write(`locus: ${notes[notes.length - 1]}\n`);
  }
  if (device !== 'cpu') {
    // Parameters and buffers move in place (before the optimizer is built; a resume copies into them).
    method.student.to(undefined, device);
    method.teacher?.to(undefined, device);
  }
  const opt = buildOptimizer(method, c);
  // mixed precision (train.precision) and gradient accumulation (optim.accumulate)
  const precision = c.train.precision;
  const unsupported = precisionUnsupported(precision, device);
  if (unsupported) throw new Error(`train.precision ${precision} cannot run on ${device}: ${unsupported}`);
  const scaler = precision === 'fp16' ? new GradScaler() : null;
  const accumulate = c.optim.accumulate;
  const total = c.optim.steps;
  const lrs = cosineSchedule(peakLr(c, world), c.optim.minLr, total, warmupSteps(c));
  const wds = cosineSchedule(c.optim.weightDecay, c.optim.weightDecayEnd, total);
  const moms = cosineSchedule(teacherMomentumBase(c), c.optim.teacherMomentumEnd, total);
  const retention = teacherRetention(moms); // logged: the teacher's share of its init after each step

  const skips = new SkipLog(isMain ? join(o.run.dir, 'skipped.jsonl') : null, isMain ? undefined : () => {});
  const loaderOpts: LoaderOptions = {
    dataset: c.data.dataset as LoaderOptions['dataset'],
    views: method.views(),
    batchSize: c.optim.batchSize,
    seed: c.seed,
    workers: c.data.workers,
    prefetch: c.data.prefetch ?? undefined,
    rank: dist?.rank ?? 0,
    worldSize: world,
    onSkip: skips.record, // bad images: named on stderr and in <run>/skipped.jsonl
  };
  const loader = new ResumableLoader(loaderOpts);
  const spe = Math.floor((await loader.stepsPerEpoch()) / accumulate); // optimizer steps per epoch
  if (spe === 0) {
    const n = await loader.length(); // read before close (a closed loader cannot say its length)
    await loader.close();
    throw new Error(
      `data.dataset has ${n} samples, fewer than one step (optim.batchSize ${c.optim.batchSize} × optim.accumulate ${accumulate} × ${world} processes)`,
    );
  }

  let step = 0;
  let lastCheckpoint: string | null = null;
  let lastLoss: number | null = null;
  if (o.resume) {
    const r = o.resume;
    method.student.loadStateDict(r.student);
    if (method.teacher) method.teacher.loadStateDict(r.teacher);
    // the fp16 loss scaler's state is saved beside the optimizer's (scaler.scale, scaler.growth_tracker)
    if (scaler) scaler.loadState(r.optim);
    const optimState = new Map([...r.optim].filter(([k]) => !k.startsWith('scaler.')));
    opt.loadState(optimState, r.info.optimizerStep); // AdamW: old checkpoints' step counts migrated (nn/optim.ts)
    const rng = r.rng.get('cpu');
    if (rng) setRngState(rng);
    // stochastic depth and masks drawn on a GPU come from its generator (absent when the run switches device)
    const cudaRng = r.rng.get('cuda');
    if (cudaRng && device.startsWith('cuda')) setRngState(cudaRng, device);
    step = r.info.step;
    lastCheckpoint = r.path;
    lastLoss = r.info.loss;
    if (r.info.stepsPerEpoch !== spe)
      throw new Error(
        `checkpoint has ${r.info.stepsPerEpoch} steps per epoch, the data now gives ${spe}; cannot resume exactly`,
      );
  }
  dist?.broadcastModules([method.student, method.teacher]);

  const hash = configHash(c);
  const params = method.student.parameters().filter((p) => p.requiresGrad);
  const clipMode = method.clip?.mode ?? 'per-tensor';
  const clipNorm = method.clip === null ? 0 : (method.clip?.maxNorm ?? c.optim.clip);
  const nanAt = Number(process.env.LOCUS_TEST_NAN_AT_STEP ?? 0); // test hook: this step's loss becomes NaN
  const signalAt = Number(process.env.LOCUS_TEST_SIGNAL_AT_STEP ?? 0); // test hook: SIGTERM to self after this step

  const save = (): string => {
    const info: CheckpointInfo = {
      format: CHECKPOINT_FORMAT,
      method: c.method,
      step,
      epoch: Math.floor(step / spe),
      stepInEpoch: step % spe,
      stepsPerEpoch: spe,
      optimizerStep: opt.step_,
      configHash: hash,
      seed: c.seed,
      loss: lastLoss,
      savedAt: new Date().toISOString(),
    };
    const rng = new Map([['cpu', getRngState()]]);
    const scalerState = scaler?.stateTensors() ?? null;
    if (device.startsWith('cuda')) rng.set('cuda', getRngState(device));
    try {
      return saveCheckpoint(
        o.run.checkpoints,
        {
          student: method.student.stateDict(),
          teacher: method.teacher?.stateDict() ?? null,
          optim: scalerState ? new Map([...opt.stateTensors(), ...scalerState]) : opt.stateTensors(),
          rng,
        },
        info,
        c,
      );
    } finally {
      for (const t of rng.values()) t.dispose();
      dispose(scalerState);
    }
  };

  const t0 = performance.now();
  let stopped = false;
  let savedAt = -1;
  o.progress.start(total, step);
  try {
    let epoch = Math.floor(step / spe);
    loader.startAt(epoch, (step % spe) * accumulate);
    outer: while (step < total) {
      let tWait = performance.now();
      let cpu0 = process.cpuUsage();
      // micro-batches: `micro` of this step done so far; `seen` of this epoch (a trailing part step is dropped)
      let micro = 0;
      let seen = (step % spe) * accumulate;
      let tStart = tWait;
      let lossSum = 0;
      const logSums: Record<string, number> = {};
      let info: StepInfo | null = null;
      for await (const batch of loader.epoch(epoch)) {
        if (seen++ >= spe * accumulate) break;
        if (micro === 0) {
          tStart = performance.now();
          info = {
            step,
            totalSteps: total,
            epoch,
            stepsPerEpoch: spe,
            lr: lrs[step] as number,
            weightDecay: wds[step] as number,
            momentum: moms[step] as number,
          };
          manualSeed(deriveSeed(c.seed, STEP_STREAM, step, dist?.rank ?? 0)); // ranks draw different drop-path masks
          opt.setSchedule(info.lr, info.weightDecay);
        }
        const stepInfo = info as StepInfo;
        const tb = toTensors(batch, device);
        const out = tidy(() => autocast(precision, device, () => method.loss(tb, stepInfo, comm)));
        dispose(tb.views);
        dispose(tb.extras);
        let microLoss = out.loss.item();
        if (nanAt === step + 1) microLoss = Number.NaN;
        if (!Number.isFinite(microLoss)) {
          dispose(out);
          throw new NonFiniteLossError(step + 1, microLoss, lastCheckpoint);
        }
        // backward of loss/accumulate (times the loss scale for fp16): the gradients add up to the big batch's
        const scaled = tidy(() => {
          let l = accumulate > 1 ? out.loss.div(accumulate) : out.loss;
          if (scaler) l = scaler.scaleLoss(l);
          return l;
        });
        scaled.backward();
        if (scaled !== out.loss) scaled.dispose();
        out.loss.dispose();
        lossSum += microLoss;
        for (const [k, v] of Object.entries(out.logs)) logSums[k] = (logSums[k] ?? 0) + num(v);
        dispose(out.logs);
        if (++micro < accumulate) continue;
        micro = 0;
        const loss = lossSum / accumulate;
        lossSum = 0;
        const reduce0 = dist?.allReduceSeconds ?? 0;
        dist?.syncGradients(params); // once per optimizer step: after the last micro-batch
        const reduceS = (dist?.allReduceSeconds ?? 0) - reduce0;
        // fp16: gradients back to their true scale; an inf/NaN among them skips this step and halves the scale
        const skipStep = scaler ? scaler.unscale(params) : false;
        if (clipNorm > 0 && !skipStep) {
          if (clipMode === 'global') clipGradGlobal(params, clipNorm);
          else clipGradPerTensor(params, clipNorm);
        }
        if (!skipStep) {
          method.beforeOptimizerStep?.(stepInfo);
          opt.step();
        }
        scaler?.update(skipStep);
        opt.zeroGrad();
        tidy(() => method.afterStep(stepInfo, comm));
        const logs: Record<string, number> = {};
        for (const [k, v] of Object.entries(logSums)) logs[k] = v / accumulate;
        for (const k of Object.keys(logSums)) delete logSums[k];
        if (scaler) logs.loss_scale = scaler.scale;
        step++;
        lastLoss = loss;
        const tEnd = performance.now();
        const cpu = process.cpuUsage(cpu0);
        const stepS = (tEnd - tWait) / 1000;
        const imagesPerS = (c.optim.batchSize * accumulate * world) / stepS;
        if (isMain && (step % c.train.logEvery === 0 || step === total)) {
          const row: MetricsRow = {
            step,
            epoch,
            loss,
            lr: stepInfo.lr,
            wd: stepInfo.weightDecay,
            momentum: stepInfo.momentum,
            ...(method.teacher ? { teacher_retention: retention[step - 1] as number } : {}),
            ...logs,
            images_per_s: imagesPerS,
            step_s: stepS,
            data_wait_s: (tStart - tWait) / 1000,
            ...(dist ? { allreduce_s: reduceS } : {}),
            cpu_s: (cpu.user + cpu.system) / 1e6, // this process's CPU time (all threads): robust to other load
            elapsed_s: (tEnd - t0) / 1000,
          };
          appendMetrics(o.run, row);
        }
        o.progress.update(step, { loss, imagesPerS, lr: stepInfo.lr });
        if (isMain && (step % c.train.ckptEvery === 0 || step === total)) {
          lastCheckpoint = save();
          savedAt = step;
          pruneCheckpoints(o.run.checkpoints, c.train.keepCheckpoints, new Set([lastCheckpoint]));
        }
        if (signalAt === step) {
          // the test hook's signal must be seen at this very step: libuv reads it on a later loop turn
          process.kill(process.pid, 'SIGTERM');
          for (let i = 0; i < 1000 && !o.stop.requested; i++) await new Promise((r) => setTimeout(r, 1));
        }
        if (step >= total) break outer;
        await yieldToEventLoop(); // signal handlers run here
        if (stopAgreed(o.stop.requested, dist, device)) {
          stopped = true;
          break outer;
        }
        tWait = performance.now();
        cpu0 = process.cpuUsage();
      }
      epoch++;
    }
    if (isMain && savedAt !== step) {
      lastCheckpoint = save();
      savedAt = step;
    }
  } finally {
    o.progress.stop();
    // The loader's idle workers are unref'd: keep the event loop alive until they have terminated.
    const keepAlive = setInterval(() => {}, 1000);
    await loader.close().finally(() => clearInterval(keepAlive));
  }
  return {
    step,
    totalSteps: total,
    finalCheckpoint: lastCheckpoint as string,
    stopped,
    lastLoss,
    seconds: (performance.now() - t0) / 1000,
    skippedImages: skips.count,
  };
}
