// DINO (Caron et al. 2021), following facebookresearch/dino main_dino.py: a student ViT + DINOHead on
// all crops, an EMA teacher (no drop path) on the global crops, centring (EMA) and sharpening of the
// teacher, cross-entropy over every (teacher global i, student view v ≠ i) pair.
import { z } from 'zod';
import type { TensorBatch } from '../data/collate.js';
import { type MultiCropRecipe, multiCrop } from '../data/views.js';
import { cat, keep, noGrad, type Tensor, zeros } from '../engine/index.js';
import { initPatchEmbed_, Module, PATCH_INITS, VisionTransformer, type VitConfig } from '../nn/index.js';
import { dinoCrossEntropy, lastLayerFrozen, meanEntropy, updateCentre, updateTeacher, warmupTemp } from './common.js';
import { DinoHead, type DinoHeadConfig } from './heads.js';
import type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './method.js';

const range01 = z
  .tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)])
  .refine((r) => r[0] <= r[1], { message: 'must be [lo, hi] with lo ≤ hi' });

/** DINO's options. Each default is main_dino.py's unless its comment says why it differs. */
export const dinoSchema = z
  .object({
    outDim: z.number().int().min(2).default(1024), // K prototypes; DINO 65536, methods.md §8 suggests 256–1024 at this scale
    hiddenDim: z.number().int().min(1).default(2048), // DINO 2048
    bottleneckDim: z.number().int().min(1).default(256), // DINO 256
    nlayers: z.number().int().min(1).default(3), // DINO 3
    normLastLayer: z.boolean().default(true), // DINO default true (weight_g fixed at 1: cosine prototypes)
    studentTemp: z.number().gt(0).default(0.1), // DINO 0.1
    // DINO 0.04. At 0.04 every short run here collapsed to uniform within ~25 steps (teacher entropy → ln K);
    // 0.02 kept it away (entropy ~3–4 nats of 6.9). DINO #43: the maintainer advises lowering it on custom data.
    teacherTemp: z.number().gt(0).default(0.02),
    warmupTeacherTemp: z.number().gt(0).default(0.02), // DINO 0.04 = teacherTemp (no warm-up); kept equal to teacherTemp
    warmupTeacherTempEpochs: z.number().int().min(0).default(0), // DINO 0 (README "boost": 30 of 300), read per epochRules
    warmupTeacherTempSteps: z.number().int().min(0).nullable().default(null), // if set: per-step warm-up instead
    centerMomentum: z.number().min(0).max(1).default(0.9), // DINO 0.9
    freezeLastLayerEpochs: z.number().int().min(0).default(1), // DINO 1 (of 100), read per epochRules: 1% of the steps
    freezeLastLayerSteps: z.number().int().min(0).nullable().default(null), // if set: this many steps instead
    // How the epoch-stated rules above are read. 'run' (default): at the same fraction of training, step t of T
    // counting as reference epoch ⌊t·referenceEpochs/T⌋ (nn/schedules.ts ruleEpoch), so "1 epoch of 100" freezes the
    // first 1% of steps at any run length. 'data': per pass over the data, DINO's literal rule (`--set
    // dino.epochRules=data`): 1 epoch of the default scenes is 150 steps, half of a 300-step run.
    epochRules: z.enum(['run', 'data']).default('run'),
    referenceEpochs: z.number().int().min(1).default(100), // the reference run's length: DINO --epochs 100
    // the patch-embedding conv: DINO's ViT leaves it at PyTorch's default (U(±1/√fan_in), std 0.083 at 4×4×3);
    // 'trunc-normal' = timm's 0.02 (Locus's ViT default before), 'lecun-normal' = flax's
    patchInit: z.enum(PATCH_INITS).default('torch'),
    globalScale: range01.default([0.4, 1]), // DINO (0.4, 1); global crop side = model.imgSize (DINO 224 → 32)
    localCount: z.number().int().min(0).default(6), // DINO 8; 6 keeps the 2-core step time in budget
    localSize: z.number().int().min(1).default(16), // DINO 96 at 224 → 96/224·32 ≈ 14 → 16 (a multiple of the patch)
    localScale: range01.default([0.05, 0.4]), // DINO (0.05, 0.4)
  })
  .strict();

export type DinoOptions = z.infer<typeof dinoSchema>;

/** MultiCropWrapper: backbone (crops of one resolution batched together) → CLS → head. Names backbone.*, head.*. */
export class DinoNet extends Module {
  readonly backbone: VisionTransformer;
  readonly head: DinoHead;
  constructor(vit: VitConfig, head: DinoHeadConfig) {
    super();
    this.backbone = this.child('backbone', new VisionTransformer(vit));
    this.head = this.child('head', new DinoHead(vit.dim, head));
  }
  /** Head outputs of each view, in order ([B, K] each); views of equal size share one backbone pass. */
  forward(views: Tensor[]): Tensor[] {
    const B = views[0].shape[0];
    const cls: Tensor[] = [];
    let i = 0;
    while (i < views.length) {
      let j = i + 1;
      while (j < views.length && views[j].shape[2] === views[i].shape[2]) j++;
      const x = j - i === 1 ? views[i] : cat(views.slice(i, j), 0);
      cls.push(this.backbone.forward(x).cls);
      i = j;
    }
    return this.head.forward(cls.length === 1 ? cls[0] : cat(cls, 0)).split(B, 0);
  }
}

/** The teacher: the same network, no drop path, no gradients, plus DINO's centre (a buffer, saved with it). */
export class DinoTeacher extends DinoNet {
  readonly center: Tensor;
  constructor(vit: VitConfig, head: DinoHeadConfig) {
    super({ ...vit, dropPathRate: 0 }, head);
    this.center = this.buffer('center', zeros([1, head.outDim]));
  }
}

export class Dino implements Method {
  readonly name = 'dino';
  readonly student: DinoNet;
  readonly teacher: DinoTeacher;
  private pending: Tensor | null = null; // this step's teacher logits, for the centre update after the step

  constructor(
    readonly opts: DinoOptions,
    readonly ctx: MethodContext,
  ) {
    const head: DinoHeadConfig = {
      outDim: opts.outDim,
      hiddenDim: opts.hiddenDim,
      bottleneckDim: opts.bottleneckDim,
      nlayers: opts.nlayers,
      normLastLayer: opts.normLastLayer,
    };
    this.student = new DinoNet(ctx.vit, head);
    initPatchEmbed_(this.student.backbone.patchEmbed.proj, opts.patchInit);
    this.teacher = new DinoTeacher(ctx.vit, head);
    // DINO: the teacher starts as a copy of the student and is never trained by gradient.
    this.teacher.backbone.loadStateDict(this.student.backbone.stateDict());
    this.teacher.head.loadStateDict(this.student.head.stateDict());
    this.teacher.requiresGrad_(false);
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
      localCount: o.localCount,
      localSize: o.localSize,
      localScale: o.localScale,
    });
  }

  /** Teacher temperature at this step: DINO's linspace warm-up (per `epochRules`), or a per-step one if configured. */
  teacherTemp(info: StepInfo): number {
    return warmupTemp(this.opts, info, this.opts.warmupTeacherTemp, this.opts.teacherTemp);
  }

  lastLayerFrozen(info: StepInfo): boolean {
    return lastLayerFrozen(this.opts, info);
  }

  loss(batch: TensorBatch, info: StepInfo): LossOutput {
    const tt = this.teacherTemp(info);
    const teacherOut = noGrad(() => this.teacher.forward(batch.views.slice(0, 2)));
    const studentOut = this.student.forward(batch.views);
    const center = this.teacher.center;
    const loss = dinoCrossEntropy(studentOut, teacherOut, center, this.opts.studentTemp, tt);
    const logs = noGrad(() => {
      const t = cat(teacherOut, 0);
      this.pending?.dispose();
      this.pending = keep(t.clone()); // survives the loss scope; used and freed in afterStep
      const q = t.sub(center).div(tt).softmax(-1);
      const entropy = meanEntropy(q);
      const meanQ = q.mean(0, true);
      // Collapse indicators (DINO §5.3): per-sample teacher entropy → 0 with one-hot collapse; the entropy
      // of the batch-mean distribution → 0 when all samples pick the same prototype; KL(teacher‖student)
      // = loss − teacher entropy → 0 when the student simply copies a collapsed teacher.
      return {
        teacher_entropy: entropy,
        teacher_batch_entropy: meanEntropy(meanQ),
        kl_teacher_student: loss.detach().sub(entropy),
        teacher_temp: tt,
      };
    });
    return { loss, logs };
  }

  /** DINO's cancel_gradients_last_layer: the prototypes get no update while frozen. */
  beforeOptimizerStep(info: StepInfo): void {
    if (!this.lastLayerFrozen(info)) return;
    for (const p of this.student.head.lastLayer.parameters()) p.grad = null;
  }

  afterStep(info: StepInfo, comm: Collectives): void {
    updateTeacher(this.teacher, this.student, info.momentum);
    const t = this.pending;
    this.pending = null;
    if (t) {
      updateCentre(this.teacher.center, [t], this.opts.centerMomentum, (x) => comm.allReduceMean(x));
      t.dispose();
    }
  }
}

export const dinoDef: MethodDef<DinoOptions> = {
  name: 'dino',
  summary: 'DINO baseline: student/EMA-teacher self-distillation with multi-crop, centring and sharpening',
  schema: dinoSchema as unknown as z.ZodType<DinoOptions>,
  create: (o, ctx) => new Dino(o, ctx),
  check: (o, m) =>
    o.localCount > 0 && o.localSize % m.patchSize !== 0
      ? `dino.localSize ${o.localSize} is not divisible by model.patchSize ${m.patchSize}`
      : null,
};
