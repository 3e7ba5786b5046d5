// The one small interface every pretraining method implements (nanoGPT-style: few abstractions).
//
// The training loop owns data, optimizer, schedules, checkpoints and distribution; a method owns its
// networks and says (1) which views it needs, (2) its loss for a batch, (3) what happens after the
// optimizer step (EMA teacher, centres). Everything a method must save lives in its modules' state dicts.

import type { TensorBatch } from '../data/collate.js';
import type { ViewRecipe } from '../data/views.js';
import type { Tensor } from '../engine/index.js';
import type { Module, VisionTransformer } from '../nn/index.js';

/** Where training stands and the scheduled values for this step (all per-step, DINO-style). */
export interface StepInfo {
  step: number; // 0-based global step
  totalSteps: number;
  epoch: number; // "epochs" are data passes; per-epoch rules (teacher temperature, frozen last layer) use it
  stepsPerEpoch: number;
  lr: number;
  weightDecay: number;
  momentum: number; // EMA momentum for this step
}

/** Collective ops the method may need (DINO all-reduces its centre); identity on one process. */
export interface Collectives {
  worldSize: number;
  /** In-place mean over all ranks. */
  allReduceMean(t: Tensor): void;
}

export interface LossOutput {
  loss: Tensor; // scalar, differentiable w.r.t. the student parameters
  /** Scalars to log (loss parts, accuracies, entropies); tensors are read after the step. */
  logs: Record<string, number | Tensor>;
}

export interface Method {
  readonly name: string;
  /** The networks the optimizer trains (backbone + heads), with their state-dict names. */
  readonly student: Module;
  /** Networks that are not trained by gradient (EMA teacher/target, centres); saved in checkpoints. */
  readonly teacher: Module | null;
  /** The backbone to evaluate: the teacher's where the reference evaluates the teacher (DINO). */
  evalBackbone(): VisionTransformer;
  /** The views this method needs, built by the data loader. */
  views(): ViewRecipe;
  /** Forward + loss for one batch. Called inside tidy(); must not keep references to batch tensors. */
  loss(batch: TensorBatch, info: StepInfo, comm?: Collectives): LossOutput;
  /** Called after backward, before the optimizer step (e.g. freezing the last layer in epoch 0). */
  beforeOptimizerStep?(info: StepInfo): void;
  /** Called after the optimizer step, outside the loss scope: EMA updates, centre updates. */
  afterStep(info: StepInfo, comm: Collectives): void;
  /** Parameter-group overrides by name (e.g. LARS exclusions); default: DINO's decay/no-decay split. */
  optimizer?: 'adamw' | 'lars';
  /** Global (LOCA) or per-tensor (DINO) gradient clipping; null: none (SCRL); absent: the runtime's optim.clip. */
  clip?: { mode: 'global' | 'per-tensor'; maxNorm: number } | null;
}

/** What a method is built from: the backbone architecture and the run's shape. */
export interface MethodContext {
  vit: import('../nn/index.js').VitConfig; // student backbone (imgSize = global crop size)
  batchSize: number; // per process
  totalSteps: number;
  seed: number;
}

/**
 * A method's entry in the registry (src/methods/index.ts). Its options live in the config under the
 * method's own key (e.g. `loca.refKeep`), validated by `schema` (zod, with every default stated).
 */
export interface MethodDef<C = unknown> {
  name: string;
  summary: string; // one line for `locus pretrain --help`
  schema: import('zod').ZodType<C>;
  create(options: C, ctx: MethodContext): Method;
  /** Cross-field checks of the options against the model (e.g. crop sizes divisible by the patch): one line naming the field, or null. */
  check?(options: C, model: { imgSize: number; patchSize: number }): string | null;
  /**
   * The method's own optimiser defaults where its reference differs from DINO's (e.g. SCRL's LARS lr 0.45,
   * wd 1e-6): they replace the `optim.*` defaults, and a value given in the config file or `--set` wins.
   */
  optimDefaults?: Readonly<Record<string, number>>;
}
