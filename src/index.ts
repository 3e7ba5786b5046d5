// Locus as a library: the engine, nn, methods, data pipeline, training runtime, evaluation and report.
// (The `locus` command line is src/cli/main.ts; importing this file runs nothing.)

export { type TensorBatch, toTensors } from './data/collate.js';
export { type Dataset, type DatasetSpec, openDataset, type Sample } from './data/datasets.js';
// data
export { type Batch, Loader, type LoaderOptions } from './data/loader.js';
export { gtsaViews, locaViews, multiCrop, plainViews, scrlViews, type ViewRecipe } from './data/views.js';
export * from './engine/index.js';
// evaluation and report
export {
  describeResult,
  EVAL_DEFAULTS,
  EVAL_KINDS,
  loadExportedBackbone,
  loadRunCheckpoint,
  type RunEvalArgs,
  randomBackbone,
  runEval,
} from './eval/index.js';
export { dinoCrossEntropy, makeTeacher, meanEntropy, sinkhorn, updateCentre, updateTeacher } from './methods/common.js';
export { Dino, DinoNet, type DinoOptions, DinoTeacher, dinoDef, dinoSchema } from './methods/dino.js';
export { DinoHead, type DinoHeadConfig, MlpHead, WeightNormLinear } from './methods/heads.js';
// methods
export { getMethod, METHODS, methodNames } from './methods/index.js';
export type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './methods/method.js';
export * from './nn/index.js';
export { type CollectOptions, collectRun } from './report/collect.js';
export { type ReportRun, renderReport } from './report/html.js';
export {
  type CheckpointData,
  CheckpointError,
  type CheckpointInfo,
  disposeCheckpoint,
  listCheckpoints,
  loadCheckpoint,
  resolveCheckpoint,
  saveCheckpoint,
} from './train/checkpoint.js';
// training runtime
export {
  type Config,
  ConfigError,
  configHash,
  loadConfig,
  peakLr,
  readConfigFile,
  resolveConfig,
} from './train/config.js';
export {
  buildMethod,
  buildOptimizer,
  NonFiniteLossError,
  type TrainOptions,
  type TrainResult,
  train,
  vitConfig,
} from './train/loop.js';
export { type PretrainOptions, type PretrainResult, pretrain } from './train/pretrain.js';
export { createRun, type RunPaths, readEvals, readMetrics, runPaths, writeEval } from './train/run.js';
