// `locus pretrain`: resolve the config, create (or reopen for --resume) the run directory, train.
import { type DatasetSpec, openDataset } from '../data/datasets.js';
import { type CheckpointData, disposeCheckpoint, loadCheckpoint, resolveCheckpoint } from './checkpoint.js';
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
import { type TrainDist, type TrainResult, train } from './loop.js';
import { createProgress } from './progress.js';
import {
  createRun,
  defaultRunDir,
  RunError,
  readRunConfig,
  runPaths,
  truncateMetrics,
  writeJsonAtomic,
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

/** Opens the dataset once so that a missing folder or file fails before a run directory exists. */
async function checkData(c: Config): Promise<void> {
  const ds = c.data.dataset as DatasetSpec;
  // skipBadImages=false: decode every image now, so that a bad one stops the run before its directory exists
  const strict = (ds.kind === 'folder' || ds.kind === 'segfolder') && ds.skipBadImages === false;
  try {
    await openDataset(strict ? { ...ds, verify: 'full' } : ds);
  } catch (e) {
    throw new ConfigError(`data.dataset (${c.data.dataset.kind}): ${(e as Error).message.split('\n')[0]}`);
  }
}

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const isMain = o.dist?.isMain ?? true;
  let config: Config;
  let resume: CheckpointData | null = null;
  let dir: string;
  if (o.resume) {
    dir = o.resume;
    const saved = readRunConfig(dir);
    let file: string;
    try {
      file = resolveCheckpoint(dir);
    } catch (e) {
      throw new RunError(`cannot resume ${dir}: ${(e as Error).message}`);
    }
    resume = loadCheckpoint(file);
    config = resume.config;
    if (configHash(config) !== resume.info.configHash || mathDiff(config, saved).length > 0)
      throw new RunError(`cannot resume ${dir}: ${file} does not belong to this run's config.json`);
    if (hasSources(o.sources)) {
      // Options apply on top of the saved config. Repeating the original ones is fine, and so is a new
      // --steps (the schedules are then recomputed for the new length); anything else that changes the
      // training math would break exactness.
      const given = loadConfig(o.sources, config);
      const diff = mathDiff(given, config);
      if (diff.length > 0)
        throw new RunError(
          `--resume continues the run exactly with its saved config; these options differ from it: ${diff.slice(0, 4).join('; ')}`,
        );
      if (given.optim.steps !== config.optim.steps) {
        if (given.optim.steps > resume.info.step)
          process.stderr.write(
            `locus: optim.steps ${config.optim.steps} → ${given.optim.steps}: the lr/wd/momentum schedules are recomputed for the new length from step ${resume.info.step} on\n`,
          );
        if (isMain && given.optim.steps > resume.info.step) writeJsonAtomic(runPaths(dir).config, given);
      }
      config = given; // logging/checkpoint/eval settings and the length may differ
    }
    if (resume.info.step >= config.optim.steps) {
      const r: PretrainResult = {
        runDir: runPaths(dir).dir,
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
    await checkData(config);
    if (isMain) truncateMetrics(runPaths(dir), resume.info.step);
  } else {
    config = loadConfig(o.sources);
    await checkData(config);
    resolveDevice(config); // a refused device fails before the run directory exists
    dir = o.out ?? defaultRunDir(config.method);
    if (isMain) createRun(dir, config);
  }
  const paths = runPaths(dir);
  const stop = installStopHandlers();
  const progress = createProgress(isMain ? (o.progress ?? config.train.progress) : 'none', config.train.printEvery);
  try {
    const result = await train({ config, run: paths, resume, progress, stop, dist: o.dist });
    return { ...result, runDir: paths.dir, config, alreadyComplete: false };
  } finally {
    stop.dispose();
    if (resume) disposeCheckpoint(resume);
  }
}
