// GTSA (geometric transformation sensitive architecture, arXiv 2304.08014), following bok3948/GTSA
// (model_pretrain/gtsa.py, util/gtsa_transforms.py, engine_pretrain.py; methods.md §5). Sensitive, not
// invariant: every view (the teacher's two global crops too) has its own random quarter-turn rotation
// (CCW, data side), and the student must regress the teacher's features *rotated by the angle difference*.
//
// - Student: ViT → patch tokens after the final norm → [B, C, h, w] → conv projector (2 blocks of
//   3×3 conv → channel LayerNorm without affine → GELU, residual when widths match; then a 1×1 conv to
//   out_dim) → conv predictor (3×3 conv → LN → GELU, then 1×1 conv; no residual). Convs N(0, 0.02), bias 0.
// - Teacher: EMA copy (initialised from the student) of the encoder (no drop path) + projector, run on the
//   2 global crops only; its maps are detached.
// - Pairs (teacher global i, student view v ≠ i): 2 × 9 = 18 with 2 global + 8 local views. Per pair:
//   crop loss: RoIAlign(aligned=True, adaptive sampling) of the teacher map with box gc[i, v] and of the
//   student map with box all[v, i] (boxes in each view's rotated pixel frame, spatial scale 1/patch),
//   output roiOut[global|local]; the teacher's RoI map is rotated by (angle_v − angle_i) CCW (exact rot90;
//   kornia's rotate in the reference); loss mean(−cos over channels).
//   Patch correspondence (VICRegL-style) on the full maps: each student location's best-cosine teacher
//   location, the best numMatches of them, −cos; the same from teacher to student; ½ of the sum.
//   Both are averaged over the pairs.
// - Rotation head on the mean-pooled student backbone patch tokens of every view:
//   Linear(D, 768) → LN → GELU → Linear(768, 768) → LN → GELU → Linear(768, 128) → LN → Linear(128, 4)
//   (torch's default Linear init, LN eps 1e-5), cross-entropy against the view's quarter turns, averaged
//   over views; `rot_acc` (all views) and `rot_acc_global` (the 2 global views) are logged.
// - Total = crop + λ_pc·pc + 0.5·rot, λ_pc = 0.5 after the warm-up and 0 during it (engine_pretrain.py).
// - Optimiser: AdamW with DINO's parameter groups, the DINO-style lr/wd/EMA schedules of the runtime
//   (reference: blr 5e-4 × batch/256, cosine to 1e-6 after warm-up, wd 0.04→0.4, EMA 0.996→1), gradient
//   clipping per tensor at 3.0 (the runtime's default optim.clip).
//
// Deliberate deviations:
// - Sizes (methods.md §8): 32-px global / 16-px local views with patch 4 (8×8 and 4×4 grids); RoI output
//   6 on the 8-grid and 3 on the 4-grid (reference 10 on 14, 4 on 6: 0.7 of the grid); numMatches 32 / 8
//   (50 % of the student tokens, reference 98 / 18). The reference picks the RoI size and match count by
//   "more than 100 patches"; we pick them by whether the student view is a global or a local crop (the
//   same split in the reference configuration).
// - Head widths follow the model: projector width = D (reference 384 = ViT-S's D), out/predictor width
//   = 2·D (768); options override them. The rotation head's input is D, not the hard-coded 384 (which only
//   works for ViT-S); its hidden widths stay 768 and 128.
// - EMA timing: the reference updates the teacher inside forward, *before* the teacher pass, with this
//   step's m; we update it after the optimizer step (afterStep) with this step's m. The teacher weights
//   used at every step are the same sequence up to a one-step shift of the momentum schedule.
// - The pc-loss warm-up is a fraction of the run's steps (`pcWarmup`, default 0.1 = the reference's 10 of
//   100 epochs; it switches on at epoch 11 there, `warmup_epochs < epoch`); during it the pc loss is still
//   computed and logged (as the reference does) but without gradient.
// - Student drop path comes from the model config (the reference hard-codes 0.1 for ViT-S).
// - The reference relabels angles in place inside rot_predict; we read the data's quarter turns directly.
// - Evaluation backbone: the student's encoder (base_encoder; the reference ships no extraction script, and
//   its MoCo-v3 naming keeps base_encoder for transfer).
//
// Rotation prediction on the default data (measured; not a deviation, nothing here changes it): `rot_acc` stays at
// chance (0.25, rot_loss → ln 4) in the default 300-step run on Fashion-MNIST scenes. Not a bug and not collapse:
// the views, labels and their view-major order are right (they are checked in test/gtsa.test.ts, and on images with
// a vertical luminance ramp rot_acc passes 0.9 in 30 steps); `feat_std` (the global views' pooled tokens, the
// head's input) stays ≈ 0.7–0.9 and `teacher_std` ≈ 0.8 (1 = spread out, 0 = collapsed). The scenes carry no
// orientation cue but the items' own shapes (backgrounds are isotropic: random gradient direction, random stripe
// angle; items sit anywhere), so the head needs a translation-invariant shape recogniser, which a from-scratch ViT
// does not acquire in a few hundred steps. Rotation prediction *alone* (no crop/pc loss; depth 2) stays at chance
// on the scenes at the default lr (100 steps), at 8x the default lr on the global views only (330 steps), with the
// global crops zoomed in 2.5x (globalScale 0.1–0.4, 300 steps), and with a position-aware readout (flattened tokens)
// or a 3×3 conv before the pooling; the same probe on single centred Fashion-MNIST items at the default lr reaches
// 0.63 (globals) / 0.51 (locals) in 300 steps. So no weighting, lr, view or head change inside GTSA makes it rise
// in the default run; what would is an orientation cue in the data, or a far longer run.
//
// Cost: on the default config (ViT dim 192, depth 4, batch 64) a step takes about 1.7× DINO's (measured, 2
// threads): the conv projector and predictor run at every location of all 10 views, about as many MACs as
// the 4-block encoder (at the reference's depth 12 they are about a third of it), plus 18 RoI/matching pairs.
import { z } from 'zod';
import type { TensorBatch } from '../data/collate.js';
import { type GtsaRecipe, gtsaViews } from '../data/views.js';
import { cat, crossEntropy, layerNorm, noGrad, type Tensor, tensor } from '../engine/index.js';
import {
  Conv2d,
  initPatchEmbed_,
  LayerNorm,
  type Linear,
  Module,
  PATCH_INITS,
  VisionTransformer,
  type VitConfig,
} from '../nn/index.js';
import { torchLinear } from './bootstrap.js';
import { updateTeacher } from './common.js';
import type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './method.js';
import { roiAlign } from './roi.js';
import { tokensToMap } from './scrl.js';

const range01 = z
  .tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)])
  .refine((r) => r[0] <= r[1], { message: 'must be [lo, hi] with lo ≤ hi' });
const posInt = z.number().int().min(1);

/** GTSA's options. Each default is the reference's (main_pretrain.py) unless its comment says why. */
export const gtsaSchema = z
  .object({
    projectorDim: posInt.nullable().default(null), // --projector_dim 384 (= D of ViT-S); null: the model's D
    outDim: posInt.nullable().default(null), // --out_dim 768; null: 2·D
    predictorDim: posInt.nullable().default(null), // --predictor_dim 768; null: 2·D
    roiOut: z.tuple([posInt, posInt]).default([6, 3]), // --roi_out_size 10 4 at 14/6 grids → 0.7 of our 8/4 grids
    numMatches: z.tuple([posInt, posInt]).default([32, 8]), // --num_matches (98, 18): 50 % of the student tokens
    pcWeight: z.number().min(0).default(0.5), // --pc_loss_coef 0.5
    rotWeight: z.number().min(0).default(0.5), // --rot_pre_coef 0.5
    cropWeight: z.number().min(0).default(1), // the crop loss's weight (reference 1); 0 with pcWeight 0 = rotation only
    pcWarmup: z.number().min(0).max(1).default(0.1), // pc loss off for this fraction of steps (10 of 100 epochs)
    rotHidden: posInt.default(768), // rot_predictor hidden width 768
    rotBottleneck: posInt.default(128), // rot_predictor 128
    globalScale: range01.default([0.3, 1]), // --min/max_scale_crops 0.3 1.0; global side = model.imgSize
    localCount: z.number().int().min(0).default(8), // --num-crops 2 8
    localSize: posInt.default(16), // --size-crops 96 at 224 → 16 at 32 (a multiple of the patch)
    localScale: range01.default([0.1, 0.3]), // 0.1 0.3
    minIntersection: z.number().gt(0).lt(1).default(0.01), // min_intersection 0.01 of the image (×2 between globals)
    patchInit: z.enum(PATCH_INITS).default('torch'), // the patch conv at PyTorch's default init (as DINO's ViT); timm's 0.02 = 'trunc-normal'
  })
  .strict();

export type GtsaOptions = z.infer<typeof gtsaSchema>;

/** LayerNorm over the channels of [B, C, h, w], no affine (the reference's TransposeLast → LN → TransposeLast). */
export function channelLayerNorm(x: Tensor, eps = 1e-5): Tensor {
  const C = x.shape[1] as number;
  return layerNorm(x.permute(0, 2, 3, 1), [C], null, null, eps).permute(0, 3, 1, 2);
}

/** nn.Sequential-like container: children named '0', '1', … */
class Seq extends Module {
  add<M extends Module>(name: string, m: M): M {
    return this.child(name, m);
  }
}

/** 3×3 conv (padding 1) → channel LN → GELU; the conv is child '0' as in the reference's block Sequential. */
class ConvBlock extends Module {
  readonly conv: Conv2d;
  constructor(inCh: number, outCh: number) {
    super();
    this.conv = this.child('0', new Conv2d(inCh, outCh, 3, { padding: 1, initStd: 0.02 }));
  }
  forward(x: Tensor): Tensor {
    return channelLayerNorm(this.conv.forward(x)).gelu();
  }
}

/** The reference's Projector (2 blocks with residuals where widths match, then 1×1 conv) or Predictor (1 block, no residual). */
export class ConvHead extends Module {
  readonly blocks: ConvBlock[] = [];
  readonly proj: Conv2d;
  constructor(
    inDim: number,
    width: number,
    outDim: number,
    layers: number,
    readonly residual: boolean,
  ) {
    super();
    const seq = this.child('blocks', new Seq());
    for (let i = 0; i < layers; i++)
      this.blocks.push(seq.add(String(i), new ConvBlock(i === 0 ? inDim : width, width)));
    this.proj = this.child('proj', new Conv2d(width, outDim, 1, { initStd: 0.02 }));
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const b of this.blocks) {
      const y = b.forward(h);
      h = this.residual && y.shape[1] === h.shape[1] ? y.add(h) : y;
    }
    return this.proj.forward(h);
  }
}

/** The rotation head (rot_predictor; Sequential indices 0, 1, 3, 4, 6, 7, 8 hold parameters). */
export class RotationHead extends Module {
  readonly layers: (Linear | LayerNorm | 'gelu')[] = [];
  constructor(inDim: number, hidden: number, bottleneck: number) {
    super();
    const seq = this.child('net', new Seq());
    const spec: (Linear | LayerNorm | 'gelu')[] = [
      torchLinear(inDim, hidden),
      new LayerNorm(hidden, 1e-5),
      'gelu',
      torchLinear(hidden, hidden),
      new LayerNorm(hidden, 1e-5),
      'gelu',
      torchLinear(hidden, bottleneck),
      new LayerNorm(bottleneck, 1e-5),
      torchLinear(bottleneck, 4),
    ];
    spec.forEach((m, i) => {
      if (m !== 'gelu') seq.add(String(i), m);
      this.layers.push(m);
    });
  }
  forward(x: Tensor): Tensor {
    let h = x;
    for (const m of this.layers) h = m === 'gelu' ? h.gelu() : m.forward(h);
    return h;
  }
}

/** Encoder + projector: the teacher, and the part of the student it mirrors (names encoder.*, projector.*). */
export class GtsaNet extends Module {
  readonly encoder: VisionTransformer;
  readonly projector: ConvHead;
  constructor(vit: VitConfig, dims: { projector: number; out: number }) {
    super();
    this.encoder = this.child('encoder', new VisionTransformer(vit));
    this.projector = this.child('projector', new ConvHead(vit.dim, dims.projector, dims.out, 2, true));
  }
  /**
   * Views of equal size share one encoder pass. Returns per view the backbone patch tokens [B, N, D] and
   * the feature map after the projector (and `post`, e.g. the predictor) [B, C, h, w].
   */
  encode(views: Tensor[], post?: (m: Tensor) => Tensor): { tokens: Tensor[]; maps: Tensor[] } {
    const B = views[0]?.shape[0] as number;
    const tokens: Tensor[] = [];
    const maps: Tensor[] = [];
    let i = 0;
    while (i < views.length) {
      let j = i + 1;
      while (j < views.length && views[j]?.shape[2] === views[i]?.shape[2]) j++;
      const x = j - i === 1 ? (views[i] as Tensor) : cat(views.slice(i, j), 0);
      const out = this.encoder.forward(x);
      let m = this.projector.forward(tokensToMap(out.patches, out.grid));
      if (post) m = post(m);
      tokens.push(...out.patches.split(B, 0));
      maps.push(...m.split(B, 0));
      i = j;
    }
    return { tokens, maps };
  }
}

export class GtsaStudent extends GtsaNet {
  readonly predictor: ConvHead;
  readonly rotHead: RotationHead;
  constructor(
    vit: VitConfig,
    dims: { projector: number; out: number; predictor: number },
    rot: { hidden: number; bottleneck: number },
  ) {
    super(vit, dims);
    this.predictor = this.child('predictor', new ConvHead(dims.out, dims.predictor, dims.out, 1, false));
    this.rotHead = this.child('rot_head', new RotationHead(vit.dim, rot.hidden, rot.bottleneck));
  }
}

/**
 * Rotates each sample of x [B, C, P, P] by its own k·90° counter-clockwise (rot90 over dims (2, 3): the
 * data side's image rotation, (x, y) → (y, S − x) for one turn). Exact (a permutation of cells).
 */
export function rotateQuarter(x: Tensor, ks: ArrayLike<number>): Tensor {
  const B = x.shape[0] as number;
  const k = Array.from(ks, (v) => ((v % 4) + 4) % 4);
  if (k.length !== B) throw new Error(`rotateQuarter: ${k.length} turns for a batch of ${B}`);
  if (k.every((v) => v === k[0])) return k[0] === 0 ? x : x.rot90(k[0] as number, [2, 3]);
  const parts: Tensor[] = [];
  const order: number[] = [];
  for (let q = 0; q < 4; q++) {
    const idx = k.flatMap((v, b) => (v === q ? [b] : []));
    if (idx.length === 0) continue;
    const sel = x.indexSelect(0, tensor(Int32Array.from(idx), [idx.length], { device: x.device }).to('int64'));
    parts.push(q === 0 ? sel : sel.rot90(q, [2, 3]));
    order.push(...idx);
  }
  const inv = new Int32Array(B);
  order.forEach((b, j) => {
    inv[b] = j;
  });
  return cat(parts, 0).indexSelect(0, tensor(inv, [B], { device: x.device }).to('int64'));
}

/** max(‖x‖₂, eps) over dim 1 (keepdim), as F.normalize's denominator; sqrt(max(Σx², eps²)) keeps the gradient finite at 0. */
function channelNorm(x: Tensor, eps = 1e-12): Tensor {
  return x
    .square()
    .sum(1, true)
    .clampMin(eps * eps)
    .sqrt();
}

/** The reference's cosine_loss on maps: −cos over channels (dim 1) per location → [B, h, w] (F.normalize, eps 1e-12). */
export function negCosineMap(a: Tensor, b: Tensor): Tensor {
  return a
    .mul(b)
    .sum(1, true)
    .div(channelNorm(a).mul(channelNorm(b)))
    .squeeze(1)
    .neg();
}

/**
 * The patch correspondence loss of one pair (neirest_neighbores_on_l2 + cosine_loss, both directions) from the
 * cosine similarities sim [B, Ns, Nt] of student to teacher locations: each student location's best teacher
 * match, the k best of those per sample, mean of −cos; the same from the teacher side; ½ of the sum.
 */
export function matchLoss(sim: Tensor, k: number): Tensor {
  const [, ns, nt] = sim.shape as [number, number, number];
  if (k > Math.min(ns, nt)) throw new Error(`gtsa: numMatches ${k} exceeds the ${Math.min(ns, nt)} locations of a map`);
  const [st] = sim.amax(2).topk(k, 1, true, false) as [Tensor, Tensor];
  const [ts] = sim.amax(1).topk(k, 1, true, false) as [Tensor, Tensor];
  return st.mean().add(ts.mean()).mul(-0.5);
}

export interface GtsaLossInputs {
  teacher: Tensor[]; // G global maps [B, C, h, w] (detached)
  student: Tensor[]; // V maps [B, C, h_v, w_v], globals first
  gc: ArrayLike<number>; // [B, G, V, 4]: global i ∩ view v in global i's rotated pixel frame
  all: ArrayLike<number>; // [B, V, G, 4]: view v ∩ global i in view v's rotated pixel frame
  rotation: ArrayLike<number>; // [B, V] quarter turns CCW
  patch: number; // pixels per map cell (spatial scale 1/patch)
  roiOut: [number, number]; // RoI output side for global / local student views
  numMatches: [number, number]; // matches kept for global / local student views
  /** false: the pc loss is computed for the log only, without a graph (its warm-up). */
  pcGrad?: boolean;
}

/** Crop (RoI + rotation) and patch-correspondence losses, each averaged over the (i, v ≠ i) pairs. */
export function gtsaPairLosses(o: GtsaLossInputs): { crop: Tensor; pc: Tensor; pairs: number } {
  const G = o.teacher.length;
  const V = o.student.length;
  const B = o.teacher[0]?.shape[0] as number;
  let crop: Tensor | null = null;
  let pc: Tensor | null = null;
  let pairs = 0;
  const boxes = (src: ArrayLike<number>, at: (b: number) => number): Float64Array => {
    const r = new Float64Array(B * 5);
    for (let b = 0; b < B; b++) {
      r[5 * b] = b;
      for (let c = 0; c < 4; c++) r[5 * b + 1 + c] = src[at(b) + c] as number;
    }
    return r;
  };
  // Unit channel vectors, once per map: teacher [B, C, Nt], student [B, Ns, C]; one bmm per pair gives both directions.
  const unit = (x: Tensor) => x.div(channelNorm(x)).flatten(2);
  const pcGrad = o.pcGrad ?? true;
  const teaUnit = noGrad(() => o.teacher.map(unit));
  const stuUnit = pcGrad
    ? o.student.map((x) => unit(x).transpose(1, 2))
    : noGrad(() => o.student.map((x) => unit(x).transpose(1, 2)));
  for (let i = 0; i < G; i++) {
    const T = o.teacher[i] as Tensor;
    for (let v = 0; v < V; v++) {
      if (v === i) continue;
      const S = o.student[v] as Tensor;
      const local = v >= G ? 1 : 0;
      const roi = {
        outputSize: o.roiOut[local] as number,
        spatialScale: 1 / o.patch,
        samplingRatio: -1,
        aligned: true,
      };
      const tAl = roiAlign(
        T,
        boxes(o.gc, (b) => ((b * G + i) * V + v) * 4),
        roi,
      );
      const sAl = roiAlign(
        S,
        boxes(o.all, (b) => ((b * V + v) * G + i) * 4),
        roi,
      );
      const turns = Array.from(
        { length: B },
        (_, b) => (o.rotation[b * V + v] as number) - (o.rotation[b * V + i] as number),
      );
      const c = negCosineMap(sAl, rotateQuarter(tAl, turns)).mean();
      crop = crop ? crop.add(c) : c;
      const m = o.numMatches[local] as number;
      const pcPair = () => matchLoss((stuUnit[v] as Tensor).bmm(teaUnit[i] as Tensor), m);
      const p = pcGrad ? pcPair() : noGrad(pcPair);
      pc = pc ? pc.add(p) : p;
      pairs++;
    }
  }
  if (!crop || !pc) throw new Error('gtsa: needs at least one global and one other view');
  return { crop: crop.div(pairs), pc: pc.div(pairs), pairs };
}

/**
 * Collapse indicator: the per-channel std of the L2-normalised feature vectors at all locations of a map
 * [B, C, h, w], averaged over channels and scaled by √C: about 1 for spread-out features, 0 when collapsed.
 */
export function unitStd(x: Tensor): Tensor {
  const C = x.shape[1] as number;
  const v = x.permute(0, 2, 3, 1).reshape(-1, C);
  return v
    .div(v.norm(2, 1, true).clampMin(1e-12))
    .std(0)
    .mean()
    .mul(Math.sqrt(C));
}

/** Cross-field checks against the model: one line naming the field, or null. */
export function checkGtsaOptions(o: GtsaOptions, model: { imgSize: number; patchSize: number }): string | null {
  const p = model.patchSize;
  if (o.localCount > 0 && o.localSize % p !== 0)
    return `gtsa.localSize ${o.localSize} is not a multiple of model.patchSize ${p}`;
  const g = model.imgSize / p;
  const l = o.localSize / p;
  if (o.numMatches[0] > g * g)
    return `gtsa.numMatches[0] ${o.numMatches[0]} exceeds the ${g * g} tokens of a global view (model.imgSize ${model.imgSize} / model.patchSize ${p}): lower gtsa.numMatches[0] or raise model.imgSize`;
  if (o.localCount > 0 && o.numMatches[1] > l * l)
    return `gtsa.numMatches[1] ${o.numMatches[1]} exceeds the ${l * l} tokens of a local view (gtsa.localSize ${o.localSize} / model.patchSize ${p}): raise gtsa.localSize or lower gtsa.numMatches[1]`;
  return null;
}

export class Gtsa implements Method {
  readonly name = 'gtsa';
  readonly student: GtsaStudent;
  readonly teacher: GtsaNet;
  readonly optimizer = 'adamw' as const; // clipping: the runtime's default, per tensor at optim.clip = 3.0 (--clip_grad 3.0)
  readonly dims: { projector: number; out: number; predictor: number };

  constructor(
    readonly opts: GtsaOptions,
    readonly ctx: MethodContext,
  ) {
    const problem = checkGtsaOptions(opts, ctx.vit);
    if (problem) throw new Error(problem);
    const D = ctx.vit.dim;
    this.dims = { projector: opts.projectorDim ?? D, out: opts.outDim ?? 2 * D, predictor: opts.predictorDim ?? 2 * D };
    this.student = new GtsaStudent(ctx.vit, this.dims, { hidden: opts.rotHidden, bottleneck: opts.rotBottleneck });
    initPatchEmbed_(this.student.encoder.patchEmbed.proj, opts.patchInit);
    // momentum_encoder (drop path 0) + momentum_projector, initialised from the student, no gradients.
    this.teacher = new GtsaNet({ ...ctx.vit, dropPathRate: 0 }, this.dims);
    this.teacher.encoder.loadStateDict(this.student.encoder.stateDict());
    this.teacher.projector.loadStateDict(this.student.projector.stateDict());
    this.teacher.requiresGrad_(false);
  }

  /** The student's encoder (base_encoder; the reference, MoCo-v3 style, fine-tunes from it). */
  evalBackbone(): VisionTransformer {
    return this.student.encoder;
  }

  views(): GtsaRecipe {
    const o = this.opts;
    return gtsaViews({
      globalCount: 2,
      globalSize: this.ctx.vit.imgSize,
      globalScale: o.globalScale,
      localCount: o.localCount,
      localSize: o.localSize,
      localScale: o.localScale,
      minIntersection: o.minIntersection,
    });
  }

  /** λ_pc at this step: 0 during the warm-up fraction of the run. */
  pcCoef(info: StepInfo): number {
    return info.step < this.opts.pcWarmup * info.totalSteps ? 0 : this.opts.pcWeight;
  }

  loss(batch: TensorBatch, info: StepInfo): LossOutput {
    const ex = batch.extras;
    if (!ex.gtsa_gc || !ex.gtsa_all || !ex.view_rotation)
      throw new Error('gtsa: the batch lacks gtsa_gc/gtsa_all/view_rotation extras (use the gtsa view recipe)');
    const views = batch.views;
    const G = 2;
    const V = views.length;
    const B = views[0]?.shape[0] as number;
    const rotation = ex.view_rotation.toNumbers(); // [B, V]
    const teacher = noGrad(() => this.teacher.encode(views.slice(0, G)).maps);
    const st = this.student.encode(views, (m) => this.student.predictor.forward(m));
    const pcCoef = this.pcCoef(info);
    const inputs: GtsaLossInputs = {
      teacher,
      student: st.maps,
      gc: ex.gtsa_gc.toFloat32(),
      all: ex.gtsa_all.toFloat32(),
      rotation,
      patch: this.ctx.vit.patchSize,
      roiOut: this.opts.roiOut,
      numMatches: this.opts.numMatches,
      pcGrad: pcCoef > 0,
    };
    const { crop, pc } = gtsaPairLosses(inputs);
    // Rotation prediction on the mean-pooled backbone tokens of every view (view-major rows).
    const pooled = cat(
      st.tokens.map((t) => t.mean(1)),
      0,
    );
    const logits = this.student.rotHead.forward(pooled);
    const labels = new Int32Array(V * B);
    for (let v = 0; v < V; v++) for (let b = 0; b < B; b++) labels[v * B + b] = rotation[b * V + v] as number;
    const target = tensor(labels, [V * B], { device: logits.device }).to('int64');
    const rot = crossEntropy(logits, target);
    let loss = rot.mul(this.opts.rotWeight);
    if (this.opts.cropWeight > 0) loss = loss.add(crop.mul(this.opts.cropWeight));
    if (pcCoef > 0) loss = loss.add(pc.mul(pcCoef));
    // Accuracy over all views, and over the global views alone (local crops carry far less orientation cue).
    const hits = noGrad(() => logits.argmax(1).eq(target).to('float32'));
    const rotAcc = hits.mean();
    const rotAccGlobal = hits.narrow(0, 0, G * B).mean();
    // Collapse indicator of the rotation head's input: the global views' pooled tokens as [2B, D, 1, 1] rows.
    const featStd = noGrad(() => unitStd(pooled.narrow(0, 0, G * B).reshape(G * B, -1, 1, 1)));
    return {
      loss,
      logs: {
        teacher_std: noGrad(() => unitStd(teacher[0] as Tensor)),
        feat_std: featStd,
        crop_loss: crop.detach(),
        pc_loss: pc.detach(),
        rot_loss: rot.detach(),
        rot_acc: rotAcc,
        rot_acc_global: rotAccGlobal,
        pc_coef: pcCoef,
      },
    };
  }

  afterStep(info: StepInfo, _comm: Collectives): void {
    updateTeacher(this.teacher, this.student, info.momentum);
  }
}

export const gtsaDef: MethodDef<GtsaOptions> = {
  name: 'gtsa',
  summary:
    'GTSA: rotation-sensitive dense regression of rotated, RoI-aligned EMA-teacher maps, patch matching and rotation prediction',
  schema: gtsaSchema as unknown as z.ZodType<GtsaOptions>,
  create: (o, ctx) => new Gtsa(o, ctx),
  check: checkGtsaOptions,
};
