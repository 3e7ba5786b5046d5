// `locus pretrain`: resolve the config, create (or reopen for --resume) the run directory, train.

import { basename, join } from 'node:path';
import { type DatasetSpec, openDataset } from '../data/datasets.js';
import {
  type CheckpointData,
  CheckpointError,
  disposeCheckpoint,
  lastGoodLine,
  listCheckpoints,
  loadCheckpoint,
  resolveCheckpoint,
} from './checkpoint.js';
import {
  type Config,
  ConfigError,
  type ConfigSources,
  configDiff,
  configHash,
  loadConfig,
  resolveDevice,
  trainingPart,
} from './config.js';
import { acquireLock, holdLock, type RunLock, writeLockFile } from './lock.js';
import { type TrainDist, type TrainResult, train } from './loop.js';
import { createProgress } from './progress.js';
import {
  createRun,
  defaultRunDir,
  RunError,
  readRunConfig,
  removeStaleTemps,
  runPaths,
  truncateMetrics,
  writeRunConfig,
} from './run.js';
import { installStopHandlers } from './signals.js';

export interface PretrainOptions {
  sources: ConfigSources;
  out?: string;
  resume?: string;
  dist?: TrainDist | null;
  /** Overrides train.progress (e.g. 'none' for library use). */
  progress?: Config['train']['progress'];
}

export interface PretrainResult extends TrainResult {
  runDir: string;
  config: Config;
  alreadyComplete: boolean;
}

/** Differences in the training math, apart from the run length (optim.steps may change on resume). */
function mathDiff(a: Config, b: Config): string[] {
  const strip = (c: Config) => ({ ...trainingPart(c), optim: { ...c.optim, steps: 0 } });
  return configDiff(strip(a), strip(b));
}

const hasSources = (s: ConfigSources) =>
  s.file !== undefined ||
  s.method !== undefined ||
  s.steps !== undefined ||
  s.seed !== undefined ||
  (s.sets?.length ?? 0) > 0;

/** Opens the dataset once, so that a missing folder or file, or fewer samples than one batch, fails
 * before a run directory exists (or before a resume touches it). */
async function checkData(c: Config, world: number): Promise<void> {
  const ds = c.data.dataset as DatasetSpec;
  // skipBadImages=false: decode every image now, so that a bad one stops the run before its directory exists
  const strict = (ds.kind === 'folder' || ds.kind === 'segfolder') && ds.skipBadImages === false;
  let n: number;
  try {
    n = (await openDataset(strict ? { ...ds, verify: 'full' } : ds)).length;
  } catch (e) {
    throw new ConfigError(`data.dataset (${c.data.dataset.kind}): ${(e as Error).message.split('\n')[0]}`);
  }
  if (n < c.optim.batchSize * c.optim.accumulate * world)
    throw new ConfigError(
      `data.dataset has ${n} samples, fewer than one step (optim.batchSize ${c.optim.batchSize} × optim.accumulate ${c.optim.accumulate} × ${world} processes)`,
    );
}

const log = (m: string) => process.stderr.write(`${m}\n`);

/** The saved config with the options given on top; refused when they change the training math. */
function resumeConfig(o: PretrainOptions, saved: Config, dir: string, fromStep: number, isMain: boolean): Config {
  if (!hasSources(o.sources)) return saved;
  // Options apply on top of the saved config. Repeating the original ones is fine, and so is a new
  // --steps (the schedules are then recomputed for the new length); anything else that changes the
  // training math would break exactness.
  const given = loadConfig(o.sources, saved);
  const diff = mathDiff(given, saved);
  if (diff.length > 0)
    throw new RunError(
      `--resume continues the run exactly with its saved config; these options differ from it: ${diff.slice(0, 4).join('; ')}`,
    );
  if (given.optim.steps !== saved.optim.steps && given.optim.steps > fromStep) {
    if (fromStep > 0)
      log(
        `locus: optim.steps ${saved.optim.steps} → ${given.optim.steps}: the lr/wd/momentum schedules are recomputed for the new length from step ${fromStep} on`,
      );
    if (isMain) writeRunConfig(dir, given);
  }
  return given; // logging/checkpoint/eval settings and the length may differ
}

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const isMain = o.dist?.isMain ?? true;
  const world = o.dist?.worldSize ?? 1;
  const held: { lock: RunLock | null } = { lock: null }; // the run's lock, released however this ends
  try {
    return await pretrainLocked(o, isMain, world, (l) => {
      held.lock = l;
    });
  } finally {
    held.lock?.release();
  }
}

async function pretrainLocked(
  o: PretrainOptions,
  isMain: boolean,
  world: number,
  held: (l: RunLock) => void,
): Promise<PretrainResult> {
  let config: Config;
  let resume: CheckpointData | null = null;
  let dir: string;
  if (o.resume) {
    dir = o.resume;
    const p = runPaths(dir);
    const saved = readRunConfig(dir);
    if (isMain) {
      held(acquireLock(p.lock, `run directory ${p.dir}`));
      const removed = removeStaleTemps(dir);
      if (removed.length > 0)
        log(
          `locus: removed ${removed.length} temp file(s) of killed writes: ${removed.map((f) => basename(f)).join(', ')}`,
        );
    }
    if (listCheckpoints(dir).length === 0) {
      // new or never checkpointed (killed, stopped or failed before its first checkpoint): start it again
      config = resumeConfig(o, loadConfig({}, saved), dir, 0, isMain);
      if (isMain) log(`locus: ${p.dir} has no checkpoint yet: starting it from step 0 with its saved config.json`);
      await checkData(config, world);
      if (isMain) truncateMetrics(p, 0);
    } else {
      let file: string;
      try {
        file = resolveCheckpoint(dir);
      } catch (e) {
        throw new RunError(`cannot resume ${dir}: ${(e as Error).message}`);
      }
      resume = loadCheckpoint(file);
      if (configHash(resume.config) !== resume.info.configHash || mathDiff(resume.config, saved).length > 0) {
        disposeCheckpoint(resume);
        throw new RunError(`cannot resume ${dir}: ${file} does not belong to this run's config.json`);
      }
      config = resumeConfig(o, resume.config, dir, resume.info.step, isMain);
      if (resume.info.step >= config.optim.steps) {
        const r: PretrainResult = {
          runDir: p.dir,
          config,
          alreadyComplete: true,
          step: resume.info.step,
          totalSteps: config.optim.steps,
          finalCheckpoint: resume.path,
          stopped: false,
          lastLoss: resume.info.loss,
          seconds: 0,
          skippedImages: 0,
        };
        disposeCheckpoint(resume);
        return r;
      }
      await checkData(config, world);
      if (isMain) truncateMetrics(p, resume.info.step);
    }
  } else {
    config = loadConfig(o.sources);
    await checkData(config, world);
    resolveDevice(config); // a refused device fails before the run directory exists
    dir = o.out ?? defaultRunDir(config.method);
    if (isMain) {
      const p = createRun(dir, config, (tmp) => writeLockFile(join(tmp, 'lock')));
      held(holdLock(p.lock));
    }
  }
  const paths = runPaths(dir);
  const stop = installStopHandlers();
  const progress = createProgress(isMain ? (o.progress ?? config.train.progress) : 'none', config.train.printEvery);
  try {
    const result = await train({ config, run: paths, resume, progress, stop, dist: o.dist });
    return { ...result, runDir: paths.dir, config, alreadyComplete: false };
  } catch (e) {
    // an I/O error while training names its file; add the run's last good checkpoint and the next command
    if (e instanceof RunError && /^cannot /.test(e.message))
      throw new RunError(
        `${e.message}; ${lastGoodLine(listCheckpoints(paths.dir).at(-1)?.path ?? null)}; continue with: locus pretrain --resume ${dir}`,
      );
    if (e instanceof CheckpointError && /^cannot write/.test(e.message))
      throw new CheckpointError(`${e.message}; continue with: locus pretrain --resume ${dir}`);
    throw e;
  } finally {
    stop.dispose();
    if (resume) disposeCheckpoint(resume);
  }
}
