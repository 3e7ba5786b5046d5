// LOCA: Caron, Houlsby, Schmid 2022, "Location-aware self-supervised transformers" (arXiv 2212.02400).
// Follows google-research/scenic scenic/projects/loca (trainer.py loca_train_step, vit.py ViT4LOCA,
// utils.py sinkhorn, configs/loca_imnet1k_base16.py); spec: shared/research/methods.md §3.
//
// One step: the EMA teacher encodes the *reference* view (all tokens, no gradient); its cluster head
// gives Sinkhorn-normalised patch assignments, and a consecutive run of 20% of its patch tokens is
// kept *after* the encoder as the keys/values for the queries. The student encodes query0 (same size
// as the reference, ~36% of its tokens kept at random *before* the encoder) and the focal queries
// (smaller, all tokens); a cross-attention block over the kept reference tokens, a final LayerNorm and
// a Linear to the reference grid predict, for every query patch, which reference patch covers its
// centre (labels from the data pipeline, −1 outside the reference). Loss = position cross-entropy on
// valid patches + patch cluster cross-entropy against the teacher assignment at the label position
// + me-max (Σ p̄ log p̄). Global-norm gradient clipping at 1; EMA teacher after the AdamW step.
//
// Deliberate deviations, scaled or otherwise (methods.md §8 scaling: 224 → 32 px, patch 16 → 4):
// - Sizes: reference and query0 32 px (8x8 = 64 positions), focal queries 16 px (4x4) with area
//   5–32%. Kept counts are fractions of the grid, rounded: reference 0.2·64 = 12.8 → 13 (scenic's
//   int() floors; at 196 both give 39), query0 70/196·64 = 22.9 → 23.
// - Prototypes: 1024 (reference 4096); head hidden 2048 → `hiddenDim` (default 1024), bottleneck 256.
// - Locus's ViT has a CLS token (DINO layout); LOCA's has none. The CLS token takes part in the
//   encoder's self-attention but is never used here: only patch tokens reach the heads and the
//   cross-attention. Its position embedding is resized bicubically for the focal grid (scenic:
//   bilinear); layers use timm/DINO init (truncated normal 0.02) rather than flax's defaults.
// - Blur: the released config's blur is a no-op (the probability lands in the `height` argument,
//   methods.md §3). `blur: 'intended'` (default) applies the intended DINO probabilities (reference 1,
//   query0 0.1, focal 0.5; at 32 px the σ is tiny anyway); `blur: 'none'` reproduces the release.
// - Random token selections (reference run offset, query0 subset) are drawn once per step and shared
//   by the batch, as scenic does per device; they come from libtorch's generator so that a resumed
//   run that restores it draws the same ones.
// - Only the cluster-loss variant (scenic `apply_cluster_loss=True`, the released config) exists: the
//   teacher is always the EMA network and query tokens always carry position embeddings.
// - Multi-process: Sinkhorn's column sums are global (scenic psum) and p̄ for me-max is the global
//   mean (pmean) when the runtime passes its Collectives as loss()'s third argument; without them each
//   process normalises over its own batch. p̄'s gradient flows through this rank's share only, which
//   after gradient averaging equals the gradient of the global term.
// - The reference forward keeps stochastic depth on (scenic runs it with train=True), unlike Locus's
//   other EMA teachers, which run without drop path.
// - The evaluation backbone is the student's (scenic's `params`; the checkpoint also holds the EMA).
// - Schedules belong to the runtime config (optim.*); the method only sets global-norm clipping at
//   `maxGradNorm` and AdamW. The reference's: lr 1e-3·bs/1024 with 15/100 epochs of warm-up then cosine
//   to 1% of it; weight decay 0.1, constant, on ndim > 1 parameters (Locus's decay/no-decay split is
//   the same); EMA momentum 0.996 → 1 (cosine); dropout 0, stochastic depth 0.1. Locus's defaults are
//   DINO's short-run ones (lr 0.002·bs/256, weight decay 0.04 → 0.4, momentum 0.99 → 1); LOCA's decay
//   is `--set optim.weightDecay=0.1 --set optim.weightDecayEnd=0.1`.
import { z } from 'zod';
import type { TensorBatch } from '../data/collate.js';
import { type LocaRecipe, locaViews } from '../data/views.js';
import { arange, cat, crossEntropy, noGrad, randint, randperm, type Tensor } from '../engine/index.js';
import {
  CrossBlock,
  initPatchEmbed_,
  LayerNorm,
  Linear,
  Module,
  normal_,
  PATCH_INITS,
  VisionTransformer,
  type VitConfig,
} from '../nn/index.js';
import { makeTeacher, updateTeacher } from './common.js';
import { DinoHead } from './heads.js';
import type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './method.js';

const range01 = z
  .tuple([z.number(), z.number()])
  .refine((r) => r[0] > 0 && r[0] <= r[1] && r[1] <= 1, { message: 'must satisfy 0 < lo ≤ hi ≤ 1' });
const fraction = z.number().gt(0).lte(1);

/** `loca.*` options; every default is the scaled reference value (see the header). */
export const locaOptionsSchema = z.strictObject({
  refSize: z.number().int().positive().default(32), // reference view side (224)
  querySize: z.number().int().positive().default(32), // query0 side (224)
  focalSize: z.number().int().positive().default(16), // focal query side (96); < refSize
  focalCount: z.number().int().min(0).default(9), // focal queries (9)
  refScale: range01.default([0.32, 1]), // reference crop area (32–100%)
  queryScale: range01.default([0.32, 1]), // query0 crop area (32–100%)
  focalScale: range01.default([0.05, 0.32]), // focal crop area (5–32%)
  refKeep: fraction.default(0.2), // share of reference tokens kept after the encoder (0.2)
  refSelection: z.enum(['consecutive', 'unstructured', 'first']).default('consecutive'),
  queryKeep: fraction.default(70 / 196), // share of query0 tokens kept before the encoder (70 of 196)
  outDim: z.number().int().positive().default(1024), // prototypes (4096)
  hiddenDim: z.number().int().positive().default(1024), // cluster head hidden width (2048)
  bottleneckDim: z.number().int().positive().default(256), // (256)
  temperature: z.number().positive().default(0.1), // student cluster softmax (0.1)
  sharpening: z.number().positive().default(0.05), // teacher softmax before Sinkhorn (0.05)
  sinkhornIters: z.number().int().positive().default(3), // (3)
  maxGradNorm: z.number().positive().default(1), // global-norm clipping (1)
  blur: z.enum(['intended', 'none']).default('intended'), // see the header
  patchInit: z.enum(PATCH_INITS).default('lecun-normal'), // scenic's ViT embedding conv: flax lecun_normal (std 1/√fan_in)
  posInit: z.enum(['normal', 'trunc-normal']).default('normal'), // scenic: normal(std 1/√D); 'trunc-normal' = timm 0.02
});

export type LocaOptions = z.output<typeof locaOptionsSchema>;

/** Cross-field rules of the options against the model: the first broken one as one line, or null. */
export function checkLocaOptions(o: LocaOptions, model: { patchSize: number }): string | null {
  const p = model.patchSize;
  for (const k of ['refSize', 'querySize', 'focalSize'] as const)
    if (o[k] % p !== 0) return `loca.${k} (${o[k]}) must be a multiple of model.patchSize (${p})`;
  if (o.focalSize >= o.refSize)
    return `loca.focalSize (${o.focalSize}) must be smaller than loca.refSize (${o.refSize})`;
  return null;
}

/** Backbone + LOCA's heads. Names follow scenic's (cross_attention_block, final_norm, position_predictor). */
export class LocaNet extends Module {
  readonly backbone: VisionTransformer;
  readonly cross: CrossBlock;
  readonly finalNorm: LayerNorm;
  readonly positionPredictor: Linear;
  readonly clusterHead: DinoHead;
  constructor(vit: VitConfig, o: LocaOptions, nPositions: number) {
    super();
    this.backbone = this.child('backbone', new VisionTransformer(vit));
    const D = vit.dim;
    this.cross = this.child(
      'cross_attention_block',
      new CrossBlock(D, vit.heads, { mlpRatio: vit.mlpRatio, qkvBias: vit.qkvBias }),
    );
    this.finalNorm = this.child('final_norm', new LayerNorm(D, 1e-6));
    this.positionPredictor = this.child('position_predictor', new Linear(D, nPositions));
    // scenic ProjectionHead: 2 x (Dense, GELU), Dense to the bottleneck, L2-normalise, then a
    // bias-free dense whose kernel columns are re-normalised at every call = DinoHead with a fixed norm.
    this.clusterHead = this.child(
      'projection_head',
      new DinoHead(D, {
        outDim: o.outDim,
        hiddenDim: o.hiddenDim,
        bottleneckDim: o.bottleneckDim,
        nlayers: 3,
        normLastLayer: true,
      }),
    );
  }
  /** Query patch tokens [B, N, D] attend to reference tokens [B, M, D] → position logits [B, N, P]. */
  predictPositions(queries: Tensor, reference: Tensor): Tensor {
    return this.positionPredictor.forward(this.finalNorm.forward(this.cross.forward(queries, reference)));
  }
}

/** Number of tokens kept out of n for a share (rounded, at least 1). */
export function keptCount(n: number, share: number): number {
  return Math.max(1, Math.min(n, Math.round(share * n)));
}

/**
 * scenic token_indexes_not_to_drop: k of n token indices (int64 [k]). 'consecutive': a run starting at
 * a uniform offset in [0, n − k]; 'first': 0..k−1; 'unstructured': a random subset in random order.
 */
export function keptTokenIndices(
  n: number,
  k: number,
  selection: 'consecutive' | 'unstructured' | 'first',
  device?: string,
): Tensor {
  if (!(k >= 1 && k <= n)) throw new Error(`cannot keep ${k} of ${n} tokens`);
  if (selection === 'unstructured') return randperm(n, { device }).narrow(0, 0, k);
  const offset = selection === 'first' ? 0 : randint(0, n - k + 1, [1]).item();
  return arange(offset, offset + k, 1, { device });
}

/**
 * LOCA's utils.sinkhorn on probabilities p [R, K]: `iters` rounds of dividing by the column
 * (prototype) sums over the global batch, then by the row sums (rows end as assignments summing to 1).
 */
export function sinkhorn(p: Tensor, iters: number, comm?: Collectives): Tensor {
  return noGrad(() => {
    let q = p;
    for (let i = 0; i < iters; i++) {
      const col = q.sum(0, true);
      if (comm && comm.worldSize > 1) {
        comm.allReduceMean(col);
        col.mul_(comm.worldSize); // mean → sum over ranks (psum)
      }
      q = q.div(col);
      q = q.div(q.sum(1, true));
    }
    return q;
  });
}

/**
 * The targets of every query patch of each sample, in the order loss() lays the patches out:
 * [B, k0 + F·nf] = query0's kept patches, then focal query 0's patches, focal query 1's, ...
 * labels: reference position or −1; rows: the row b·P + max(label, 0) of the teacher's [B·P, K]
 * assignments each patch takes its cluster target from (any row of its sample when invalid).
 */
export function queryTargets(
  labelsQ0: Tensor,
  labelsFocal: Tensor | null,
  keep0: Tensor,
  nPositions: number,
): { labels: Tensor; rows: Tensor } {
  const B = labelsQ0.shape[0];
  const lab0 = labelsQ0.gather(1, keep0.unsqueeze(0).expand(B, keep0.shape[0]));
  const labels = labelsFocal && labelsFocal.shape[1] > 0 ? cat([lab0, labelsFocal.reshape(B, -1)], 1) : lab0;
  const first = arange(0, B * nPositions, nPositions, { device: labelsQ0.device }).unsqueeze(1);
  return { labels, rows: labels.clampMin(0).add(first) };
}

export interface LocaLossParts {
  total: Tensor;
  pos: Tensor;
  cluster: Tensor;
  memax: Tensor;
  acc: Tensor; // top-1 position accuracy on valid patches
  validFrac: Tensor;
}

/**
 * The three LOCA terms for N query patches.
 * posLogits [N, P]; labels [N] int64 (−1 = outside the reference); rows [N] int64 into teacherLogits;
 * studentLogits [N, K] and teacherLogits [R, K] are cluster-head outputs before any temperature.
 * Both cross-entropies are sums over valid patches divided by their count (+1e-8, scenic's
 * weighted_softmax_cross_entropy); me-max uses every query patch, valid or not.
 */
export function locaLosses(o: {
  posLogits: Tensor;
  labels: Tensor;
  rows: Tensor;
  studentLogits: Tensor;
  teacherLogits: Tensor;
  temperature: number;
  sharpening: number;
  sinkhornIters: number;
  comm?: Collectives;
}): LocaLossParts {
  const valid = o.labels.ne(-1);
  const validF = valid.to(o.posLogits.dtype);
  const nValid = validF.sum();
  const denom = nValid.add(1e-8);
  const pos = crossEntropy(o.posLogits, o.labels, { reduction: 'sum', ignoreIndex: -1 }).div(denom);
  const acc = noGrad(() =>
    o.posLogits.argmax(-1).eq(o.labels).logicalAnd(valid).to(validF.dtype).sum().div(nValid.clampMin(1)),
  );

  const targets = sinkhorn(o.teacherLogits.detach().div(o.sharpening).softmax(-1), o.sinkhornIters, o.comm).indexSelect(
    0,
    o.rows,
  );
  const logq = o.studentLogits.div(o.temperature).logSoftmax(-1);
  const cluster = targets.mul(logq).sum(-1).neg().mul(validF).sum().div(denom);

  let pbar = logq.exp().mean(0);
  if (o.comm && o.comm.worldSize > 1) {
    const global = noGrad(() => pbar.detach().clone());
    o.comm.allReduceMean(global);
    pbar = pbar.add(global.sub(pbar.detach())); // value: global mean; gradient: this rank's share
  }
  const memax = pbar.mul(pbar.log()).sum();
  return { total: pos.add(cluster).add(memax), pos, cluster, memax, acc, validFrac: nValid.div(o.labels.shape[0]) };
}

class Loca implements Method {
  readonly name = 'loca';
  readonly student: LocaNet;
  readonly teacher: LocaNet;
  readonly optimizer = 'adamw' as const;
  readonly clip: { mode: 'global'; maxNorm: number };
  readonly nPositions: number;
  readonly refKept: number;
  readonly q0Tokens: number;
  readonly q0Kept: number;

  constructor(
    readonly o: LocaOptions,
    readonly ctx: MethodContext,
  ) {
    const problem = checkLocaOptions(o, ctx.vit);
    if (problem) throw new Error(problem);
    const p = ctx.vit.patchSize;
    this.nPositions = (o.refSize / p) ** 2;
    this.refKept = keptCount(this.nPositions, o.refKeep);
    this.q0Tokens = (o.querySize / p) ** 2;
    this.q0Kept = keptCount(this.q0Tokens, o.queryKeep);
    this.clip = { mode: 'global', maxNorm: o.maxGradNorm };
    this.student = new LocaNet(ctx.vit, o, this.nPositions);
    initPatchEmbed_(this.student.backbone.patchEmbed.proj, o.patchInit);
    if (o.posInit === 'normal') normal_(this.student.backbone.posEmbed, 1 / Math.sqrt(ctx.vit.dim));
    this.teacher = makeTeacher(() => new LocaNet(ctx.vit, o, this.nPositions), this.student);
  }

  evalBackbone(): VisionTransformer {
    return this.student.backbone;
  }

  views(): LocaRecipe {
    const o = this.o;
    const blur = o.blur === 'none' ? { refBlurP: 0, queryBlurP: 0, focalBlurP: 0 } : {};
    return locaViews({
      patch: this.ctx.vit.patchSize,
      refSize: o.refSize,
      querySize: o.querySize,
      focalSize: o.focalSize,
      focalCount: o.focalCount,
      refScale: o.refScale,
      queryScale: o.queryScale,
      focalScale: o.focalScale,
      ...blur,
    });
  }

  /** comm: the runtime's collectives, for the global Sinkhorn column sums and me-max mean (optional on one process). */
  loss(batch: TensorBatch, _info: StepInfo, comm?: Collectives): LossOutput {
    const { student, teacher, o } = this;
    const [ref, q0, ...focal] = batch.views;
    if (!ref || !q0) throw new Error('loca: the batch needs the reference and query0 views');
    const labelsQ0 = batch.extras.loca_labels_q0;
    const labelsFocal = batch.extras.loca_labels_focal ?? null;
    if (!labelsQ0) throw new Error('loca: the batch has no loca_labels_q0 extra (views must be locaViews)');
    const B = ref.shape[0];
    const dev = ref.device;
    const P = this.nPositions;

    // 1) Reference through the EMA teacher, no gradient; scenic runs it with train=True (stochastic
    //    depth on), so it follows the student's mode. Tokens are dropped after the encoder ('late').
    teacher.train(student.training);
    const { kv, teacherLogits } = noGrad(() => {
      const r = teacher.backbone.forward(ref).patches; // [B, P, D]
      const kept = keptTokenIndices(P, this.refKept, o.refSelection, dev);
      return { kv: r.indexSelect(1, kept), teacherLogits: teacher.clusterHead.forward(r).reshape(B * P, o.outDim) };
    });

    // 2) Queries through the student: query0 with early random dropping, focal queries whole.
    const keep0 = keptTokenIndices(this.q0Tokens, this.q0Kept, 'unstructured', dev);
    let queries = student.backbone.forward(q0, { keep: keep0.unsqueeze(0).expand(B, this.q0Kept) }).patches; // [B, k0, D]
    const D = queries.shape[2];
    if (focal.length > 0) {
      // All focal queries in one pass (row f·B + b), then regrouped per sample: [B, F·nf, D].
      const sf = student.backbone.forward(cat(focal, 0)).patches;
      const nf = sf.shape[1];
      queries = cat([queries, sf.reshape(focal.length, B, nf, D).permute(1, 0, 2, 3).reshape(B, -1, D)], 1);
    }
    // Cross-attention treats query tokens independently (no query-query attention), so one call for
    // all of a sample's query patches against its kept reference tokens equals scenic's per-query
    // calls with the reference tiled F times.
    const posLogits = student.predictPositions(queries, kv).reshape(-1, P);
    const { labels, rows } = queryTargets(labelsQ0, focal.length > 0 ? labelsFocal : null, keep0, P);
    const parts = locaLosses({
      posLogits,
      labels: labels.reshape(-1),
      rows: rows.reshape(-1),
      studentLogits: student.clusterHead.forward(queries).reshape(-1, o.outDim),
      teacherLogits,
      temperature: o.temperature,
      sharpening: o.sharpening,
      sinkhornIters: o.sinkhornIters,
      comm,
    });
    return {
      loss: parts.total,
      logs: {
        loss_pos: parts.pos,
        loss_cluster: parts.cluster,
        memax: parts.memax,
        pos_acc: parts.acc,
        valid_frac: parts.validFrac,
      },
    };
  }

  afterStep(info: StepInfo, _comm: Collectives): void {
    updateTeacher(this.teacher, this.student, info.momentum);
  }
}

export const locaDef: MethodDef<LocaOptions> = {
  name: 'loca',
  summary:
    'LOCA: query patches predict their position in an EMA-teacher reference view, plus a Sinkhorn patch-cluster loss',
  schema: locaOptionsSchema,
  create: (options, ctx) => new Loca(options, ctx),
  check: checkLocaOptions,
  // AdamW weight decay 0.1, constant (methods.md §3); the lr stays the runtime's (short runs need DINO's).
  optimDefaults: { weightDecay: 0.1, weightDecayEnd: 0.1 },
};
