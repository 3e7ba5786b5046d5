// BYOL (Grill et al. NeurIPS 2020), the image-level counterpart SCRL's paper compares against, following the
// BYOL code path of kakaobrain/scrl (SCRL disabled: the same online/target/predictor machinery on the globally
// pooled feature; shared with scrl.ts through bootstrap.ts): online = encoder → projector → predictor, target =
// encoder → projector updated by EMA, L = mean_images[ ℓ(pred(proj(z1_online)), proj(z2_target)) +
// ℓ(pred(proj(z2_online)), proj(z1_target)) ], ℓ(x, y) = 2 − 2·cos(x, y).
//
// What follows the references: projector and predictor Linear(·, 4096) → BatchNorm1d → ReLU → Linear(4096, 256,
// no bias) with torch's default init, BN in training mode on the batch of both views; the target starts as a
// COPY of the online network (BYOL; SCRL's own path uses from_online=False, BYOL's does not) and is updated
// after the optimizer step with m = 1 − (1−m_base)(cos(π t/T)+1)/2 (the runtime's momentum schedule from
// optim.teacherMomentum: budget-aware by default, 0.970 at 300 steps; SCRL's 200-epoch config's 0.97 is one
// `--set` away; the BYOL paper uses 0.996 at 1000 epochs); LARS (SGD momentum 0.9, trust 0.001, biases and 1-D parameters excluded), base lr 0.45 × batch/256
// with warm-up and cosine to 0, weight decay 1e-6 (SCRL's config; the BYOL paper 1.5e-6); no clipping.
// Views: two BYOL views (the multicrop recipe with no locals: RandomResizedCrop scale (0.08, 1), bicubic, flip
// 0.5, colour jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, Gaussian blur p (1.0, 0.1), solarise p (0, 0.2)).
//
// Deliberate deviations:
// - Backbone: a ViT instead of ResNet-50; the "global pool" is the mean of the patch tokens after the final norm
//   (`pool: 'mean'`, the counterpart of SCRL's RoI pooling over the whole grid), or the CLS token (`pool: 'cls'`).
// - Blur: the DINO/BYOL Gaussian blur (σ ∈ (0.1, 2) px at 224, scaled to the view), not SCRL's ResizeBlur.
// - The online linear evaluator (a monitor) is left out, as in scrl.ts.
import { z } from 'zod';
import type { TensorBatch } from '../data/collate.js';
import { type MultiCropRecipe, multiCrop } from '../data/views.js';
import { cat, noGrad, normalize, type Tensor } from '../engine/index.js';
import { Module, VisionTransformer, type VitConfig } from '../nn/index.js';
import { BOOTSTRAP_OPTIM_DEFAULTS, symmetricRegression, TwoLayerHead, updateTarget } from './bootstrap.js';
import type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './method.js';

const range01 = z
  .tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)])
  .refine((r) => r[0] <= r[1], { message: 'must be [lo, hi] with lo ≤ hi' });

export const byolSchema = z
  .object({
    hiddenDim: z.number().int().min(1).default(4096), // BYOL 4096
    outDim: z.number().int().min(1).default(256), // BYOL 256
    scale: range01.default([0.08, 1]), // BYOL RandomResizedCrop (0.08, 1)
    pool: z.enum(['mean', 'cls']).default('mean'),
  })
  .strict();

export type ByolOptions = z.infer<typeof byolSchema>;

/** Encoder + projector (the target); names encoder.*, projector.* as scrl.ts. */
export class ByolNet extends Module {
  readonly encoder: VisionTransformer;
  readonly projector: TwoLayerHead;
  constructor(
    vit: VitConfig,
    readonly opts: ByolOptions,
  ) {
    super();
    this.encoder = this.child('encoder', new VisionTransformer(vit));
    this.projector = this.child('projector', new TwoLayerHead(vit.dim, opts.hiddenDim, opts.outDim));
  }
  pooled(x: Tensor): Tensor {
    const out = this.encoder.forward(x);
    return this.opts.pool === 'cls' ? out.cls : out.patches.mean(1);
  }
  project(x: Tensor): Tensor {
    return this.projector.forward(this.pooled(x));
  }
}

export class ByolOnline extends ByolNet {
  readonly predictor: TwoLayerHead;
  constructor(vit: VitConfig, opts: ByolOptions) {
    super(vit, opts);
    this.predictor = this.child('predictor', new TwoLayerHead(opts.outDim, opts.hiddenDim, opts.outDim));
  }
}

export class Byol implements Method {
  readonly name = 'byol';
  readonly student: ByolOnline;
  readonly teacher: ByolNet;
  readonly optimizer = 'lars' as const;
  readonly clip = null;

  constructor(
    readonly opts: ByolOptions,
    readonly ctx: MethodContext,
  ) {
    this.student = new ByolOnline(ctx.vit, opts);
    this.teacher = new ByolNet({ ...ctx.vit, dropPathRate: 0 }, opts);
    // BYOL: the target starts as a copy of the online encoder and projector.
    this.teacher.loadStateDict(
      new Map([...this.student.stateDict()].filter(([k]) => !k.startsWith('predictor.'))),
      true,
    );
    this.teacher.requiresGrad_(false);
  }

  /** BYOL (and SCRL's code) evaluate the online encoder. */
  evalBackbone(): VisionTransformer {
    return this.student.encoder;
  }

  views(): MultiCropRecipe {
    return multiCrop({
      globalCount: 2,
      globalSize: this.ctx.vit.imgSize,
      globalScale: this.opts.scale,
      localCount: 0,
    });
  }

  loss(batch: TensorBatch, _info: StepInfo): LossOutput {
    const [v1, v2] = batch.views as [Tensor, Tensor];
    const x = cat([v1, v2], 0);
    const pTarget = noGrad(() => this.teacher.project(x));
    const pOnline = this.student.predictor.forward(this.student.project(x));
    const loss = symmetricRegression(pOnline, pTarget);
    const targetStd = noGrad(() => normalize(pTarget, 1).std(0).mean().mul(Math.sqrt(this.opts.outDim)));
    return { loss, logs: { byol_loss: loss.detach(), target_std: targetStd } };
  }

  afterStep(info: StepInfo, _comm: Collectives): void {
    updateTarget(this.teacher, this.student, info.momentum);
  }
}

export const byolDef: MethodDef<ByolOptions> = {
  name: 'byol',
  summary: 'BYOL: online/EMA-target regression of the pooled image feature of two views (SCRL’s image-level baseline)',
  schema: byolSchema as unknown as z.ZodType<ByolOptions>,
  create: (o, ctx) => new Byol(o, ctx),
  optimDefaults: BOOTSTRAP_OPTIM_DEFAULTS, // the same recipe as SCRL's
};
