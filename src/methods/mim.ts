// Masked-patch prediction, iBOT-style (Zhou et al. 2022), following bytedance/ibot main_ibot.py
// (iBOTLoss, train_one_epoch), models/head.py (iBOTHead), models/vision_transformer.py (masked_embed)
// and loader.py (block masks, see masking.ts). Two methods:
//   - `mim`: the masked-patch loss alone (iBOT without its [CLS] loss);
//   - `dino+mim`: DINO's image loss + the masked-patch loss, both weighted 1 (iBOT's lambda1 = lambda2 = 1),
//     the CL+MIM combination of the part-aware study (methods.md §6).
// Per step: each global crop of each sample gets a block mask (masked with probability 0.5, ratio
// U(0.1, 0.5), iBOT's README ViT-S setting `--pred_ratio 0 0.3 --pred_ratio_var 0 0.2`); the student
// encodes the global crops with the learned `masked_embed` at the masked patches (and, for dino+mim, the
// local crops unmasked); the EMA teacher encodes the unmasked global crops. Both heads share one MLP
// for CLS and patch tokens (iBOTHead; `--shared_head true` in the README run: also one prototype layer).
// Patch loss of a view: per sample, the mean over its masked patches of
// −Σ softmax((t − c2)/τt2)·log_softmax(s/τs), where t is the teacher's patch token at the same position
// of the same view; samples with no mask count 0 in the batch mean (iBOT's clamp(min=1)); then the
// mean over the 2 global views. CLS loss (dino+mim) = DINO's, with the student's masked global crops.
// Centres: CLS from the teacher's global CLS (DINO), patch centre c2 from the mean of the teacher's
// patch distributions over every patch of the global crops; both momentum 0.9. Teacher temperatures:
// CLS as DINO's option, patch 0.04 → 0.07 over the same warm-up (iBOT). Last layers frozen as DINO.
//
// Deliberate deviations:
// - Sizes and views as dino.ts (32-px globals, 16-px locals, 6 of them for dino+mim; `mim` uses the two
//   global crops only, as iBOT's code default local_crops_number = 0); prototypes 1024 (iBOT 8192).
// - With `sharedHead: false` the teacher gets its own patch prototype layer (last_layer2, EMA of the
//   student's); iBOT's code default gives the teacher none and reuses its CLS prototypes for patches.
// - The student head only runs on the masked patch tokens (the others carry no loss): same loss and
//   gradients, less compute. The teacher head runs on all patches (the patch centre needs them).
// - Masks are drawn in the method from seeded streams keyed by (seed, step, dataset index, view), so a
//   resumed run draws the same ones; iBOT draws them in the data loader with Python's `random`.
// - The teacher ViT has no `masked_embed` (iBOT's teacher has none either; its EMA runs over the common
//   parameters), so the evaluation backbone has the plain architecture.
import { z } from 'zod';
import type { TensorBatch } from '../data/collate.js';
import { type MultiCropRecipe, multiCrop } from '../data/views.js';
import { cat, keep, noGrad, type Tensor, tensor, tidy, zeros } from '../engine/index.js';
import { initPatchEmbed_, Module, VisionTransformer, type VitConfig } from '../nn/index.js';
import { dinoCrossEntropy, lastLayerFrozen, meanEntropy, updateCentre, updateTeacher, warmupTemp } from './common.js';
import { dinoSchema } from './dino.js';
import { DinoHead, type DinoHeadConfig, WeightNormLinear } from './heads.js';
import { IBOT_MASK_DEFAULTS, type MaskOptions, maskBatch } from './masking.js';
import type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './method.js';

const ratioRange = z
  .tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)])
  .refine((r) => r[0] <= r[1], { message: 'must be [lo, hi] with 0 < lo ≤ hi ≤ 1' });
const aspectRange = z
  .tuple([z.number().gt(0), z.number().gt(0)])
  .refine((r) => r[0] <= r[1], { message: 'must be [lo, hi] with 0 < lo ≤ hi' });

/** The masked-patch options (iBOT's values in comments). */
const mimFields = {
  maskProb: z.number().min(0).max(1).default(IBOT_MASK_DEFAULTS.prob), // README: pred_ratio (0, 0.3) → half the views unmasked
  maskRatio: ratioRange.default(IBOT_MASK_DEFAULTS.ratio), // README: 0.3 ± 0.2
  maskAspect: aspectRange.default(IBOT_MASK_DEFAULTS.aspect), // pred_aspect_ratio (0.3, 1/0.3)
  warmupTeacherPatchTemp: z.number().gt(0).default(0.04), // --warmup_teacher_patch_temp 0.04
  teacherPatchTemp: z.number().gt(0).default(0.07), // --teacher_patch_temp 0.07
  patchCenterMomentum: z.number().min(0).max(1).default(0.9), // center_momentum2 0.9
  // --warmup_teacher_temp_epochs 30 of --epochs 100 (main_ibot.py): both temperatures warm up over the first 30% of
  // the steps (epochRules 'run', dino.ts); the CLS one stays flat while warmupTeacherTemp = teacherTemp
  warmupTeacherTempEpochs: z.number().int().min(0).default(30),
  referenceEpochs: z.number().int().min(1).default(100), // main_ibot.py --epochs 100
  patchWeight: z.number().min(0).default(1), // --lambda2 1
  sharedHead: z.boolean().default(true), // README ViT-S: --shared_head true
  patchOutDim: z.number().int().min(2).nullable().default(null), // --patch_out_dim; only without sharedHead (null → outDim)
};

/** `dino+mim.*`: DINO's options (dino.ts defaults) + the masked-patch ones. */
export const dinoMimSchema = dinoSchema.extend({ ...mimFields, clsWeight: z.number().min(0).default(1) }).strict(); // --lambda1 1

/** `mim.*`: the masked-patch loss alone: no local crops. */
export const mimSchema = dinoSchema
  .omit({ localCount: true, localSize: true, localScale: true })
  .extend(mimFields)
  .strict();

export type DinoMimOptions = z.infer<typeof dinoMimSchema>;
export type MimOptions = z.infer<typeof mimSchema>;
type AnyMimOptions = MimOptions &
  Partial<Pick<DinoMimOptions, 'clsWeight' | 'localCount' | 'localSize' | 'localScale'>>;

// ---------------------------------------------------------------- head and networks

/** iBOTHead: DINOHead's MLP shared by CLS and patch tokens; patches use last_layer2 unless shared. */
export class IbotHead extends DinoHead {
  readonly lastLayer2: WeightNormLinear | null;
  constructor(inDim: number, cfg: DinoHeadConfig, patchOutDim: number | null) {
    super(inDim, cfg);
    this.lastLayer2 =
      patchOutDim === null
        ? null
        : this.child('last_layer2', new WeightNormLinear(cfg.bottleneckDim, patchOutDim, cfg.normLastLayer));
  }
  /** CLS rows [R, D] and patch rows [M, D] through one MLP pass → [CLS logits [R, K], patch logits [M, Kp]]. */
  both(cls: Tensor | null, patches: Tensor): [Tensor | null, Tensor] {
    if (!cls) return [null, (this.lastLayer2 ?? this.lastLayer).forward(this.embed(patches))];
    const R = cls.shape[0];
    const h = this.embed(cat([cls, patches], 0));
    if (!this.lastLayer2) {
      const [a, b] = this.lastLayer.forward(h).split([R, patches.shape[0]], 0);
      return [a, b];
    }
    const [hc, hp] = h.split([R, patches.shape[0]], 0);
    return [this.lastLayer.forward(hc), this.lastLayer2.forward(hp)];
  }
}

/** Student: a ViT with the mask token + iBOTHead. Names backbone.*, head.*. */
export class MimNet extends Module {
  readonly backbone: VisionTransformer;
  readonly head: IbotHead;
  constructor(vit: VitConfig, head: DinoHeadConfig, patchOutDim: number | null) {
    super();
    this.backbone = this.child('backbone', new VisionTransformer(vit));
    this.head = this.child('head', new IbotHead(vit.dim, head, patchOutDim));
  }
  lastLayers(): Tensor[] {
    return [...this.head.lastLayer.parameters(), ...(this.head.lastLayer2?.parameters() ?? [])];
  }
}

/** EMA teacher: no mask token, no drop path; centres `center` [1, K] (with a CLS loss) and `center2` [1, Kp]. */
export class MimTeacher extends MimNet {
  readonly center: Tensor | null;
  readonly center2: Tensor;
  constructor(vit: VitConfig, head: DinoHeadConfig, patchOutDim: number | null, withCls: boolean) {
    super({ ...vit, dropPathRate: 0, maskToken: false }, head, patchOutDim);
    this.center = withCls ? this.buffer('center', zeros([1, head.outDim])) : null;
    this.center2 = this.buffer('center2', zeros([1, patchOutDim ?? head.outDim]));
  }
}

// ---------------------------------------------------------------- loss

/**
 * The masked rows of a [S, N] mask (S samples = views × batch, row-major) as indices into S·N, with
 * weights 1/(S·max(count_s, 1)): Σ weight·CE over the rows is the mean over samples of each sample's
 * mean over its masked patches (0 for a sample without any), i.e. iBOT's loss averaged over views.
 */
export function maskedRowWeights(mask: Uint8Array, S: number, N: number): { rows: Int32Array; weights: Float32Array } {
  const rows: number[] = [];
  const weights: number[] = [];
  for (let s = 0; s < S; s++) {
    let c = 0;
    for (let n = 0; n < N; n++) c += mask[s * N + n];
    for (let n = 0; n < N; n++) {
      if (!mask[s * N + n]) continue;
      rows.push(s * N + n);
      weights.push(1 / (S * Math.max(c, 1)));
    }
  }
  return { rows: Int32Array.from(rows), weights: Float32Array.from(weights) };
}

/** Σ_rows weight·(−Σ_K softmax((t − c2)/τt)·log_softmax(s/τs)); s, t [M, K], weights [M]. */
export function maskedPatchLoss(
  s: Tensor,
  t: Tensor,
  weights: Tensor,
  center2: Tensor,
  studentTemp: number,
  teacherTemp: number,
): Tensor {
  const q = t.detach().sub(center2).div(teacherTemp).softmax(-1);
  return q.mul(s.div(studentTemp).logSoftmax(-1)).sum(-1).mul(weights).sum().neg();
}

// ---------------------------------------------------------------- the method

const MASK_STREAM = 0x6d696d; // 'mim': separates the mask streams from other users of the run seed

export class Mim implements Method {
  readonly student: MimNet;
  readonly teacher: MimTeacher;
  private pending: { cls: Tensor | null; patchMean: Tensor } | null = null;

  constructor(
    readonly name: 'mim' | 'dino+mim',
    readonly opts: AnyMimOptions,
    readonly ctx: MethodContext,
  ) {
    const head: DinoHeadConfig = {
      outDim: opts.outDim,
      hiddenDim: opts.hiddenDim,
      bottleneckDim: opts.bottleneckDim,
      nlayers: opts.nlayers,
      normLastLayer: opts.normLastLayer,
    };
    const patchOutDim = opts.sharedHead ? null : (opts.patchOutDim ?? opts.outDim);
    this.student = new MimNet({ ...ctx.vit, maskToken: true }, head, patchOutDim);
    initPatchEmbed_(this.student.backbone.patchEmbed.proj, opts.patchInit); // iBOT: PyTorch's default
    this.teacher = new MimTeacher(ctx.vit, head, patchOutDim, this.withCls);
    this.teacher.backbone.loadStateDict(this.student.backbone.stateDict(), false); // all but masked_embed
    this.teacher.head.loadStateDict(this.student.head.stateDict());
    this.teacher.requiresGrad_(false);
  }

  get withCls(): boolean {
    return this.name === 'dino+mim';
  }

  evalBackbone(): VisionTransformer {
    return this.teacher.backbone;
  }

  views(): MultiCropRecipe {
    const o = this.opts;
    return multiCrop({
      globalCount: 2,
      globalSize: this.ctx.vit.imgSize,
      globalScale: o.globalScale,
      localCount: this.withCls ? (o.localCount ?? 0) : 0,
      ...(o.localSize !== undefined ? { localSize: o.localSize } : {}),
      ...(o.localScale !== undefined ? { localScale: o.localScale } : {}),
    });
  }

  /** The block masks of this step's global crops: uint8 [2B·N] (view-major, then sample, then patch). */
  masks(batch: TensorBatch, info: StepInfo, h: number, w: number): Uint8Array {
    const o = this.opts;
    const opts: MaskOptions = { prob: o.maskProb, ratio: o.maskRatio, aspect: o.maskAspect };
    const keys: number[][] = [];
    for (let v = 0; v < 2; v++) for (const idx of batch.indices) keys.push([MASK_STREAM, info.step, idx, v]);
    return maskBatch(keys, h, w, opts, this.ctx.seed);
  }

  loss(batch: TensorBatch, info: StepInfo): LossOutput {
    const o = this.opts;
    const views = batch.views;
    const B = views[0].shape[0];
    const p = this.ctx.vit.patchSize;
    const [h, w] = [views[0].shape[2] / p, views[0].shape[3] / p];
    const N = h * w;
    const S = 2 * B;
    const maskData = this.masks(batch, info, h, w);
    const { rows, weights } = maskedRowWeights(maskData, S, N);
    const M = rows.length;
    const device = views[0].device;
    const globals = cat(views.slice(0, 2), 0);
    const tt = warmupTemp(o, info, o.warmupTeacherTemp, o.teacherTemp);
    const tt2 = warmupTemp(o, info, o.warmupTeacherPatchTemp, o.teacherPatchTemp);
    const rowIndex = noGrad(() => {
      const i32 = tensor(rows, [M]);
      const i64 = i32.to('int64', device);
      i32.dispose();
      return i64;
    });

    // Teacher: unmasked global crops, CLS and every patch through the head.
    const teacher = noGrad(() => {
      const out = this.teacher.backbone.forward(globals);
      const [cls, patch] = this.teacher.head.both(this.withCls ? out.cls : null, out.patches.reshape(S * N, -1));
      return { cls, patch };
    });

    // Student: masked global crops (+ unmasked locals for the CLS loss); the head on CLS and masked patches.
    const mask = noGrad(() => tensor(maskData, [S, N], { dtype: 'bool', device }));
    const out = this.student.backbone.forward(globals, { mask });
    const cls: Tensor[] = [out.cls];
    if (this.withCls && views.length > 2) cls.push(this.student.backbone.forward(cat(views.slice(2), 0)).cls);
    const maskedTokens = out.patches.reshape(S * N, -1).indexSelect(0, rowIndex);
    const [sCls, sPatch] = this.student.head.both(this.withCls ? cat(cls, 0) : null, maskedTokens);

    const center2 = this.teacher.center2;
    const mimLoss =
      M > 0
        ? maskedPatchLoss(
            sPatch,
            teacher.patch.indexSelect(0, rowIndex),
            tensor(weights, [M], { device }),
            center2,
            o.studentTemp,
            tt2,
          )
        : out.patches.sum().mul(0); // no masked patch in this batch: a zero that still has a graph
    let loss = mimLoss.mul(o.patchWeight);
    let clsLoss: Tensor | null = null;
    if (this.withCls && sCls && teacher.cls && this.teacher.center) {
      clsLoss = dinoCrossEntropy(sCls.split(B, 0), teacher.cls.split(B, 0), this.teacher.center, o.studentTemp, tt);
      loss = loss.add(clsLoss.mul(o.clsWeight ?? 1));
    }

    const logs = noGrad(() => {
      this.disposePending();
      this.pending = {
        cls: teacher.cls ? keep(teacher.cls.clone()) : null,
        patchMean: keep(teacher.patch.mean(0, true)),
      };
      const qp = teacher.patch.sub(center2).div(tt2).softmax(-1);
      const l: Record<string, number | Tensor> = {
        mim_loss: mimLoss.detach(),
        masked_share: M / (S * N),
        teacher_patch_entropy: meanEntropy(qp),
        teacher_patch_batch_entropy: meanEntropy(qp.mean(0, true)),
        teacher_patch_temp: tt2,
      };
      if (clsLoss && teacher.cls && this.teacher.center) {
        const q = teacher.cls.sub(this.teacher.center).div(tt).softmax(-1);
        l.cls_loss = clsLoss.detach();
        l.teacher_entropy = meanEntropy(q);
        l.teacher_batch_entropy = meanEntropy(q.mean(0, true));
        l.teacher_temp = tt;
      }
      return l;
    });
    return { loss, logs };
  }

  private disposePending(): void {
    if (this.pending) {
      this.pending.cls?.dispose();
      this.pending.patchMean.dispose();
      this.pending = null;
    }
  }

  lastLayerFrozen(info: StepInfo): boolean {
    const o = this.opts;
    return lastLayerFrozen(o, info);
  }

  beforeOptimizerStep(info: StepInfo): void {
    if (!this.lastLayerFrozen(info)) return;
    for (const t of this.student.lastLayers()) t.grad = null;
  }

  afterStep(info: StepInfo, comm: Collectives): void {
    updateTeacher(this.teacher, this.student, info.momentum);
    const p = this.pending;
    this.pending = null;
    if (!p) return;
    const reduce = (x: Tensor) => comm.allReduceMean(x);
    const center = this.teacher.center;
    tidy(() => {
      if (p.cls && center) updateCentre(center, [p.cls], this.opts.centerMomentum, reduce);
      updateCentre(this.teacher.center2, [p.patchMean], this.opts.patchCenterMomentum, reduce);
    });
    p.cls?.dispose();
    p.patchMean.dispose();
  }
}

export const mimDef: MethodDef<MimOptions> = {
  name: 'mim',
  summary: 'Masked-patch prediction (iBOT-style): masked student patches predict the EMA teacher’s patch distributions',
  schema: mimSchema as unknown as z.ZodType<MimOptions>,
  create: (o, ctx) => new Mim('mim', o, ctx),
};

export const dinoMimDef: MethodDef<DinoMimOptions> = {
  name: 'dino+mim',
  summary: 'DINO image loss + iBOT-style masked-patch prediction (CL+MIM)',
  schema: dinoMimSchema as unknown as z.ZodType<DinoMimOptions>,
  create: (o, ctx) => new Mim('dino+mim', o, ctx),
  check: (o, m) =>
    o.localCount > 0 && o.localSize % m.patchSize !== 0
      ? `dino+mim.localSize ${o.localSize} is not divisible by model.patchSize ${m.patchSize}`
      : null,
};
