// SCRL (Roh et al. CVPR 2021), following kakaobrain/scrl (methods.md §4): BYOL machinery (online encoder +
// projector + predictor against an EMA target encoder + projector), but the loss is only on boxes sampled in
// the intersection of the two views, RoI-aligned from each view's feature map and matched one to one:
// L = mean_boxes[ ℓ(pred(proj(roi1_online)), proj(roi2_target)) + ℓ(pred(proj(roi2_online)), proj(roi1_target)) ],
// ℓ(x, y) = 2 − 2·cos(x, y) (trainer/base.py _regression_loss, _criterion). No image-level term.
//
// What follows the reference: boxes (views.ts scrlViews → geometry.ts sampleScrlBoxes: count 10, min size
// 32/224 of the view side, IoU < 0.5 with 50 tries, grid-based, no jitter; flip handled there); RoIAlign
// output 1×1, adaptive sampling, aligned=False (models/backbone.py, config detectron_aligned False);
// projector/predictor Linear → BatchNorm1d → ReLU → Linear(no bias) with torch's default init (heads.py);
// BN in training mode in both networks, its batch being all boxes of both views (backbone.py sees the two
// views concatenated); the target starts from ITS OWN random init, not a copy of the online network
// (trainer.py `_initialize_target_network(from_online=False)`), and is updated by EMA after the optimizer
// step with m = 1 − (1−m_base)(cos(π t/T)+1)/2 (base.py; the runtime's momentum schedule, m_base 0.97 in the
// 200-epoch config). Optimiser: LARS (SGD momentum 0.9, trust 0.001), lr base × batch/256 with linear
// warm-up then cosine to 0, weight decay 1e-6 (the runtime applies them; `optimizer: 'lars'`); no clipping.
//
// Deliberate deviations:
// - Backbone: a ViT instead of ResNet-50. RoIAlign runs on the patch-token grid (tokens after the final
//   norm → [B, D, h, w]) with spatial_scale 1/patch (methods.md §4 "ViT adaptation"); the pooled width is D.
// - Sizes at 32-px views (methods.md §8): min box side 32/224 of the view (≈ 4.6 px, 1.1 patches).
//   Projector widths keep the reference's 4096 hidden / 256 out (options).
// - LARS exclusions: the reference excludes parameters whose *name* contains 'bn' or 'bias', which misses
//   the projector BN's gain (`net.1.weight`); we exclude every bias and 1-D parameter (BN and LayerNorm
//   gains) from LARS adaptation and weight decay, the intent stated in its comment. Its CustomLARS also
//   multiplies excluded groups' gradients by lr before SGD multiplies by lr again (an lr² step); not copied.
// - The online linear evaluator (a stop-gradient monitor on pooled features) is left out: the runtime has
//   its own probes.
// - Kept although it is a reference quirk: aligned=False reads map cell i as sitting at coordinate i, not
//   i + 0.5, so each view pools the content half a patch right/down of its box *in its own frame*; across
//   a flipped pair the matched boxes pool content one patch apart in x (test/scrl.test.ts shows it).
//   Option `aligned: true` removes the shift.
// - Images without boxes contribute nothing (ragged boxes); a batch with no box at all returns a zero loss
//   (graph-connected, zero gradients) and logs `scrl_skipped: 1` instead of a NaN.
import { z } from 'zod';
import type { TensorBatch } from '../data/collate.js';
import { type ScrlRecipe, scrlViews } from '../data/views.js';
import { cat, noGrad, normalize, type Tensor } from '../engine/index.js';
import { Module, VisionTransformer, type VitConfig } from '../nn/index.js';
import { BOOTSTRAP_OPTIM_DEFAULTS, symmetricRegression, TwoLayerHead, updateTarget } from './bootstrap.js';
import type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './method.js';
import { boxRows, roiAlign } from './roi.js';

const range01 = z
  .tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)])
  .refine((r) => r[0] <= r[1], { message: 'must be [lo, hi] with lo ≤ hi' });

/** SCRL's options. Each default is the reference's (config/scrl_200ep.yaml) unless its comment says why. */
export const scrlSchema = z
  .object({
    hiddenDim: z.number().int().min(1).default(4096), // proj_head.hidden_size 4096
    outDim: z.number().int().min(1).default(256), // proj_head.output_size 256
    scale: range01.default([0.2, 1]), // augment.crop_scale (0.2, 1): widened from BYOL's 0.08 for overlap
    boxCount: z.number().int().min(1).default(10), // num_patches_per_image 10
    boxMinSize: z
      .number()
      .gt(0)
      .lt(1)
      .default(32 / 224), // min_size 32 px at 224, as a fraction of the view side
    iouThreshold: z.number().gt(0).max(1).default(0.5), // iou_threshold 0.5
    boxTries: z.number().int().min(1).default(50), // 50 tries per box (box_generator.py)
    gridBased: z.boolean().default(true), // grid_based_box_gen True
    boxJitter: z.union([z.literal(false), z.number().gt(0).lt(1)]).default(false), // box_jittering False (ratio 0.1 when on)
    roiSize: z.number().int().min(1).default(1), // pool_size 1
    samplingRatio: z.number().int().default(-1), // sampling_ratio −1 (adaptive)
    aligned: z.boolean().default(false), // detectron_aligned False
    // the optimiser: 'lars' = the reference's (with optimDefaults' lr 0.45·batch/256, wd 1e-6); 'adamw' = DINO's
    // runtime AdamW (give optim.lr/weightDecay for it, e.g. DINO's 5e-4 and 0.04 → 0.4)
    optimizer: z.enum(['lars', 'adamw']).default('lars'),
    maxPairTries: z.number().int().min(1).default(20), // crop pairs drawn until one has boxes, then a clear Error
  })
  .strict();

export type ScrlOptions = z.infer<typeof scrlSchema>;

/** Patch tokens [B, N, D] of an h×w grid → a feature map [B, D, h, w]. */
export function tokensToMap(patches: Tensor, grid: [number, number]): Tensor {
  const [B, , D] = patches.shape as [number, number, number];
  return patches.transpose(1, 2).reshape(B, D, grid[0], grid[1]);
}

/** Encoder + projector (the target network; the online one adds a predictor). Names encoder.*, projector.*. */
export class ScrlNet extends Module {
  readonly encoder: VisionTransformer;
  readonly projector: TwoLayerHead;
  constructor(
    vit: VitConfig,
    readonly opts: ScrlOptions,
  ) {
    super();
    this.encoder = this.child('encoder', new VisionTransformer(vit));
    this.projector = this.child(
      'projector',
      new TwoLayerHead(vit.dim * opts.roiSize ** 2, opts.hiddenDim, opts.outDim),
    );
  }
  /** RoI features of the boxes ([K, 5] rows, view pixels) on the patch grid of x → [K, D]. */
  boxFeatures(x: Tensor, boxes: Float64Array): Tensor {
    const out = this.encoder.forward(x);
    const map = tokensToMap(out.patches, out.grid);
    const o = this.opts;
    const pooled = roiAlign(map, boxes, {
      outputSize: o.roiSize,
      spatialScale: 1 / this.encoder.cfg.patchSize,
      samplingRatio: o.samplingRatio,
      aligned: o.aligned,
    });
    return pooled.flatten(1); // [K, D·roi²] (the reference squeezes its 1×1 output)
  }
  project(x: Tensor, boxes: Float64Array): Tensor {
    return this.projector.forward(this.boxFeatures(x, boxes));
  }
}

export class ScrlOnline extends ScrlNet {
  readonly predictor: TwoLayerHead;
  constructor(vit: VitConfig, opts: ScrlOptions) {
    super(vit, opts);
    this.predictor = this.child('predictor', new TwoLayerHead(opts.outDim, opts.hiddenDim, opts.outDim));
  }
}

/**
 * SCRL's _criterion: rows are [view-1 boxes; view-2 boxes] (matched one to one);
 * mean over boxes of ℓ(p1, t2) + ℓ(p2, t1) (the same symmetric regression as BYOL's, over boxes).
 */
export const scrlLoss = symmetricRegression;

/** Box rows of both views for the concatenated batch [view 1; view 2]: view-2 batch indices shifted by B. */
export function pairBoxes(boxes1: Tensor | Float64Array, boxes2: Tensor | Float64Array, B: number): Float64Array {
  const a = boxes1 instanceof Float64Array ? boxes1 : boxRows(boxes1);
  const b = boxes2 instanceof Float64Array ? boxes2 : boxRows(boxes2);
  if (a.length !== b.length) throw new Error(`scrl: view 1 has ${a.length / 5} boxes but view 2 has ${b.length / 5}`);
  const out = new Float64Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  for (let r = a.length / 5; r < out.length / 5; r++) out[5 * r] = (out[5 * r] as number) + B;
  return out;
}

export class Scrl implements Method {
  readonly name = 'scrl';
  readonly student: ScrlOnline;
  readonly teacher: ScrlNet;
  readonly optimizer: 'lars' | 'adamw';
  readonly clip = null;

  constructor(
    readonly opts: ScrlOptions,
    readonly ctx: MethodContext,
  ) {
    this.optimizer = opts.optimizer;
    this.student = new ScrlOnline(ctx.vit, opts);
    // from_online=False: the target keeps its own random initialisation; it is trained only by EMA.
    this.teacher = new ScrlNet({ ...ctx.vit, dropPathRate: 0 }, opts);
    this.teacher.requiresGrad_(false);
  }

  /** The reference evaluates the online network. */
  evalBackbone(): VisionTransformer {
    return this.student.encoder;
  }

  views(): ScrlRecipe {
    const o = this.opts;
    return scrlViews({
      size: this.ctx.vit.imgSize,
      scale: o.scale,
      maxPairTries: o.maxPairTries,
      boxes: {
        count: o.boxCount,
        minSize: o.boxMinSize,
        iouThreshold: o.iouThreshold,
        maxTries: o.boxTries,
        gridBased: o.gridBased,
        jitter: o.boxJitter,
      },
    });
  }

  loss(batch: TensorBatch, _info: StepInfo): LossOutput {
    const [v1, v2] = batch.views as [Tensor, Tensor];
    const B = v1.shape[0] as number;
    const b1 = batch.extras.scrl_boxes1;
    const b2 = batch.extras.scrl_boxes2;
    if (!b1 || !b2) throw new Error('scrl: the batch has no scrl_boxes1/scrl_boxes2 extras (use the scrl view recipe)');
    const boxes = pairBoxes(b1, b2, B);
    const K = boxes.length / 10;
    if (K === 0) {
      // No box anywhere in the batch: nothing to match. A zero that reaches a parameter keeps backward valid.
      const zero = this.student.predictor.fc2.weight.sum().mul(0);
      return { loss: zero, logs: { scrl_loss: 0, boxes_per_image: 0, scrl_skipped: 1 } };
    }
    const x = cat([v1, v2], 0);
    const pTarget = noGrad(() => this.teacher.project(x, boxes));
    const pOnline = this.student.predictor.forward(this.student.project(x, boxes));
    const loss = scrlLoss(pOnline, pTarget);
    // Collapse indicator: per-dimension std of the normalised target projections over boxes, × √outDim (≈ 1 when spread, 0 when collapsed).
    const targetStd = noGrad(() => normalize(pTarget, 1).std(0).mean().mul(Math.sqrt(this.opts.outDim)));
    return { loss, logs: { scrl_loss: loss.detach(), boxes_per_image: K / B, target_std: targetStd, scrl_skipped: 0 } };
  }

  afterStep(info: StepInfo, _comm: Collectives): void {
    updateTarget(this.teacher, this.student, info.momentum);
  }
}

export const scrlDef: MethodDef<ScrlOptions> = {
  name: 'scrl',
  summary:
    'SCRL: BYOL-style online/EMA-target regression on RoI-aligned matched boxes of two views (no image-level term)',
  schema: scrlSchema as unknown as z.ZodType<ScrlOptions>,
  create: (o, ctx) => new Scrl(o, ctx),
  // With DINO's AdamW-sized defaults the loss stays flat (bench/RESULTS.md).
  optimDefaults: BOOTSTRAP_OPTIM_DEFAULTS,
};
