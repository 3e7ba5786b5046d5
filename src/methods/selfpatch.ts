// SelfPatch (Yun et al., CVPR 2022), following alinlab/SelfPatch main_selfpatch.py (DINOLoss, the
// training step) and selfpatch_vision_transformer.py (SelfPatchHead, Class_Attention,
// LayerScale_Block_CA); spec: shared/research/methods.md §2.
//
// DINO plus a patch loss inside each view. The teacher runs on every crop (globals and locals). For each
// teacher patch i it ranks the 8 cells of i's 3x3 window (wrapping round the grid edges) by the cosine
// similarity of their tokens to i's, keeps the top k (4), and aggregates them with the class-attention
// head: 2 CaiT-style blocks whose query is a learned token and whose keys/values are [query; the k
// neighbours] (LN → attention → residual → MLP(4x) → residual, no layer scale), then a final LN. The
// student's plain patch token i, through the patch head, must match the patch head's distribution of
// that aggregate (centred with its own patch centre, sharpened): cross-entropy averaged over batch and
// patches, then over views. Total = c_loss + 0.1·p_loss. Both centres use momentum 0.9; the CLS centre
// is updated from the teacher CLS of all crops (not only the globals, unlike DINO); the patch centre is
// the mean over every patch of every view. The last layers of both heads are frozen like DINO's.
//
// Deliberate deviations:
// - Backbone mapping. SelfPatch's ViT has no CLS token and no final norm: its image CLS is the
//   class-attention head run over all patch tokens (learned query), and the head's final LN normalises
//   [CLS; patches]. Locus's ViT (shared by every method and by the evaluation, which reads its CLS) has a
//   CLS token and a final norm. Here:
//     * the head sees the ViT's output tokens after its final norm (the reference: raw block outputs);
//       neighbour similarities are cosines of those tokens;
//     * the student's patch tokens for the patch loss are head.norm(ViT patch tokens), as the
//       reference's LN_head(raw patches), so both sides of the patch loss pass through the same LN;
//     * c_loss is DINO's loss on the ViT's CLS (what the evaluation uses) mixed with DINO's loss on the
//       head's CLS (the reference's path): c_loss = (1 − caClsWeight)·CE(ViT CLS) + caClsWeight·CE(head
//       CLS), both against the teacher ViT's CLS distribution; default weight 0.5. The head CLS term is
//       what trains the class-attention blocks and their query token in the reference; without it
//       (caClsWeight = 0) they get no gradient and the teacher aggregates neighbours with their random
//       initial weights forever. caClsWeight = 1 is the reference's loss (but then the
//       ViT's CLS, which the evaluation reads, is not trained by any loss).
// - Neighbours are tables for any grid (data/geometry.ts neighbourTable, 3x3 window in raster order;
//   the reference precomputes 14x14 and 6x6 only, in sorted index order: same sets, only tie-breaking
//   among equal similarities can differ). `wrap: false` (not in the reference) drops the cells outside
//   the grid: they are never preferred by the ranking and, when fewer than k remain (corners have 3),
//   they are masked out of the attention.
// - Scaled sizes (methods.md §8): 32-px globals and 16-px locals (6 of them, DINO's Locus default)
//   with SelfPatch's crop scales (0.25, 1) and (0.05, 0.25); CLS prototypes 1024 (65536), patch
//   prototypes 1024 (4096). The patch head's hidden width is 1024 (2048): it runs on every patch of
//   every crop, student and teacher, and 1024/192 keeps the reference's 2048/384 width ratio (at 2048
//   the patch head alone would cost three times the 4-block ViT per token). The student's stochastic
//   depth is the run's model setting (the reference hard-codes 0.1); the teacher has none.
// - Cost: the teacher aggregates with LN and key/value projections computed once per patch and
//   gathered per window, and the first block's learned query computed once (same values as the
//   reference's per-window computation, checked against it in test/selfpatch.test.ts).
// - Works for a batch of 1 (the reference's `sim_matrix.squeeze()` breaks there).
import { z } from 'zod';
import type { TensorBatch } from '../data/collate.js';
import { neighbourTable } from '../data/geometry.js';
import { type MultiCropRecipe, multiCrop } from '../data/views.js';
import { cat, keep, noGrad, normalize, ones, type Tensor, tensor, tidy, zeros } from '../engine/index.js';
import {
  initPatchEmbed_,
  LayerNorm,
  Linear,
  Mlp,
  Module,
  ModuleList,
  truncNormal_,
  VisionTransformer,
  type VitConfig,
} from '../nn/index.js';
import { dinoCrossEntropy, lastLayerFrozen, meanEntropy, updateCentre, updateTeacher, warmupTemp } from './common.js';
import { dinoSchema } from './dino.js';
import { DinoHead, type DinoHeadConfig } from './heads.js';
import type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './method.js';

const range01 = z
  .tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)])
  .refine((r) => r[0] <= r[1], { message: 'must be [lo, hi] with lo ≤ hi' });

/** `selfpatch.*`: DINO's options (defaults as dino.ts) plus SelfPatch's; SelfPatch's reference values in comments. */
export const selfPatchSchema = dinoSchema
  .extend({
    globalScale: range01.default([0.25, 1]), // SelfPatch (0.25, 1) (DINO 0.4)
    localScale: range01.default([0.05, 0.25]), // SelfPatch (0.05, 0.25) (DINO 0.4)
    patchOutDim: z.number().int().min(2).default(1024), // --out_dim_selfpatch 4096, scaled
    patchHiddenDim: z.number().int().min(1).default(1024), // 2048 (the patch head runs on every patch: see the header)
    kNum: z.number().int().min(1).max(8).default(4), // --k_num 4
    wrap: z.boolean().default(true), // the reference wraps round the grid edges
    patchWeight: z.number().min(0).default(0.1), // c_loss + 0.1·p_loss
    caBlocks: z.number().int().min(1).default(2), // 2 class-attention blocks
    caClsWeight: z.number().min(0).max(1).default(0.5), // Locus mapping, see the header (reference ≙ 1)
    referenceEpochs: z.number().int().min(1).default(300), // main_selfpatch.py --epochs 300: its 1 frozen epoch = 0.33% of steps
  })
  .strict();

export type SelfPatchOptions = z.infer<typeof selfPatchSchema>;

// ---------------------------------------------------------------- class attention (CaiT)

/** CaiT's Class_Attention: only the first token queries; keys/values are all tokens. Names q, k, v, proj. */
export class ClassAttention extends Module {
  readonly q: Linear;
  readonly k: Linear;
  readonly v: Linear;
  readonly proj: Linear;
  readonly scale: number;
  constructor(
    readonly dim: number,
    readonly heads: number,
    qkvBias = true,
  ) {
    super();
    this.q = this.child('q', new Linear(dim, dim, { bias: qkvBias }));
    this.k = this.child('k', new Linear(dim, dim, { bias: qkvBias }));
    this.v = this.child('v', new Linear(dim, dim, { bias: qkvBias }));
    this.proj = this.child('proj', new Linear(dim, dim));
    this.scale = (dim / heads) ** -0.5;
  }
  /** u [M, n, D] (u[:, 0] is the query token); keyMask [M, n] bool, false = ignored → [M, 1, D]. */
  forward(u: Tensor, keyMask?: Tensor): Tensor {
    return this.project(this.q.forward(u.narrow(1, 0, 1)), this.k.forward(u), this.v.forward(u), keyMask);
  }
  /** Attention from projected queries q [M, 1, D] over projected keys k and values v [M, n, D], then proj. */
  project(q: Tensor, k: Tensor, v: Tensor, keyMask?: Tensor): Tensor {
    const [M, n, D] = k.shape;
    const H = this.heads;
    const d = D / H;
    const heads = (t: Tensor, len: number) => t.reshape(t.shape[0], len, H, d).transpose(1, 2);
    // q may be one query [1, 1, D] shared by all M rows (broadcast by matmul)
    let a = heads(q, 1).mul(this.scale).matmul(heads(k, n).transpose(-2, -1)); // [M, H, 1, n]
    if (keyMask) a = a.maskedFill(keyMask.logicalNot().reshape(M, 1, 1, n), Number.NEGATIVE_INFINITY);
    const o = a.softmax(-1).matmul(heads(v, n)).transpose(1, 2).reshape(M, 1, D);
    return this.proj.forward(o);
  }
}

/** LayerScale_Block_CA without layer scale (as SelfPatch builds it): the query token attends to [query; x]. */
export class ClassAttentionBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: ClassAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  constructor(dim: number, heads: number, mlpRatio = 4) {
    super();
    this.norm1 = this.child('norm1', new LayerNorm(dim, 1e-6));
    this.attn = this.child('attn', new ClassAttention(dim, heads));
    this.norm2 = this.child('norm2', new LayerNorm(dim, 1e-6));
    this.mlp = this.child('mlp', new Mlp(dim, Math.round(dim * mlpRatio)));
  }
  /** x [M, n, D] tokens, query [M, 1, D]; keyMask [M, 1 + n] → the new query [M, 1, D]. */
  forward(x: Tensor, query: Tensor, keyMask?: Tensor): Tensor {
    const u = cat([query, x], 1);
    return this.finish(query, this.attn.forward(this.norm1.forward(u), keyMask));
  }
  /**
   * The same block when the tokens' keys and values are given, already projected (k(norm1(x)), v(norm1(x))
   * [M, n, D]): LN and the projections act on each token alone, so the teacher computes them once per
   * patch and gathers them for every window that uses that patch, instead of once per (patch, window).
   * The query may be [1, 1, D], shared by all M rows (the learned token in the first block).
   */
  forwardProjected(keys: Tensor, values: Tensor, query: Tensor, keyMask?: Tensor): Tensor {
    const a = this.attn;
    const [M, , D] = keys.shape;
    const nq = this.norm1.forward(query);
    const k = cat([a.k.forward(nq).expand(M, 1, D), keys], 1);
    const v = cat([a.v.forward(nq).expand(M, 1, D), values], 1);
    return this.finish(query, a.project(a.q.forward(nq), k, v, keyMask));
  }
  private finish(query: Tensor, attended: Tensor): Tensor {
    const y = query.add(attended);
    return y.add(this.mlp.forward(this.norm2.forward(y)));
  }
}

/** SelfPatchHead: learned query token, class-attention blocks, final LN. Names cls_token, cls_blocks.N, norm. */
export class SelfPatchHead extends Module {
  readonly clsToken: Tensor;
  readonly blocks: ModuleList<ClassAttentionBlock>;
  readonly norm: LayerNorm;
  constructor(
    readonly dim: number,
    heads: number,
    depth = 2,
  ) {
    super();
    this.clsToken = this.param('cls_token', truncNormal_(zeros([1, 1, dim])));
    this.blocks = this.child('cls_blocks', new ModuleList<ClassAttentionBlock>());
    for (let i = 0; i < depth; i++) this.blocks.push(new ClassAttentionBlock(dim, heads));
    this.norm = this.child('norm', new LayerNorm(dim, 1e-6));
  }
  /** The query token run over tokens x [M, n, D] (keyMask [M, n], false = ignored) → norm(query) [M, D]. */
  attend(x: Tensor, keyMask?: Tensor): Tensor {
    const M = x.shape[0];
    let q = this.clsToken.expand(M, 1, this.dim);
    const mask = keyMask ? cat([ones([M, 1], { dtype: 'bool', device: keyMask.device }), keyMask], 1) : undefined;
    for (const blk of this.blocks.items) q = blk.forward(x, q, mask);
    return this.norm.forward(q.reshape(M, this.dim));
  }
  /**
   * The teacher's aggregates: patch tokens x [B, N, D] on an h×w grid → norm(agg_i) [B, N, D], where agg_i
   * is the query token run over [query; the k most similar of i's 8 neighbours] (equal to attend() on the
   * gathered tokens; the per-token LN and key/value projections are computed once per patch).
   */
  aggregate(x: Tensor, grid: [number, number], k: number, wrap: boolean): Tensor {
    const [B, N, D] = x.shape;
    const M = B * N;
    const nb = neighbourIndex(grid[0], grid[1], wrap, x.device);
    const sel = topkNeighbours(neighbourSimilarity(x, nb.table), nb, k);
    const valid = sel.valid?.reshape(M, k);
    const mask = valid ? cat([ones([M, 1], { dtype: 'bool', device: valid.device }), valid], 1) : undefined;
    let q = this.clsToken; // [1, 1, D] in the first block, [M, 1, D] after it
    for (const blk of this.blocks.items) {
      const nx = blk.norm1.forward(x);
      const keys = gatherTokens(blk.attn.k.forward(nx), sel.index).reshape(M, k, D);
      const values = gatherTokens(blk.attn.v.forward(nx), sel.index).reshape(M, k, D);
      q = blk.forwardProjected(keys, values, q, mask);
    }
    return this.norm.forward(q.reshape(M, D)).reshape(B, N, D);
  }
}

// ---------------------------------------------------------------- neighbours

export interface NeighbourIndex {
  table: Tensor; // int64 [N, 8]: the 3x3 window's cells in raster order (centre skipped); outside cells → 0
  valid: Tensor | null; // bool [N, 8] when wrap = false (false = outside the grid), else null
}

const tables = new Map<string, NeighbourIndex>();

/** The neighbour table of an h×w grid as tensors (cached; never freed). */
export function neighbourIndex(h: number, w: number, wrap: boolean, device = 'cpu'): NeighbourIndex {
  const key = `${h}x${w}:${wrap}:${device}`;
  let t = tables.get(key);
  if (!t) {
    const raw = neighbourTable(h, w, wrap);
    const idx = new Int32Array(raw.length);
    const ok = new Uint8Array(raw.length);
    raw.forEach((v, i) => {
      idx[i] = Math.max(v, 0);
      ok[i] = v >= 0 ? 1 : 0;
    });
    t = noGrad(() => {
      const i32 = tensor(idx, [h * w, 8]);
      const table = keep(i32.to('int64', device));
      i32.dispose();
      return { table, valid: wrap ? null : keep(tensor(ok, [h * w, 8], { dtype: 'bool', device })) };
    });
    tables.set(key, t);
  }
  return t;
}

/** Cosine similarity of each patch token x [B, N, D] to its 8 neighbours → [B, N, 8]. */
export function neighbourSimilarity(x: Tensor, table: Tensor): Tensor {
  const [B, N, D] = x.shape;
  const xn = normalize(x, -1);
  const nb = xn.indexSelect(1, table.flatten()).reshape(B, N, 8, D);
  return nb.matmul(xn.unsqueeze(-1)).reshape(B, N, 8);
}

/** The k most similar neighbours (sim [B, N, 8]) as patch indices [B, N, k], with their validity. */
export function topkNeighbours(sim: Tensor, nb: NeighbourIndex, k: number): { index: Tensor; valid: Tensor | null } {
  const [B, N] = sim.shape;
  const s = nb.valid ? sim.maskedFill(nb.valid.logicalNot(), Number.NEGATIVE_INFINITY) : sim;
  const [, slot] = s.topk(k, -1);
  const index = nb.table.expand(B, N, 8).gather(2, slot);
  return { index, valid: nb.valid ? nb.valid.expand(B, N, 8).gather(2, slot) : null };
}

/** x [B, N, D] at patch indices [B, N, k] → [B, N, k, D]. */
export function gatherTokens(x: Tensor, index: Tensor): Tensor {
  const [B, N, D] = x.shape;
  const k = index.shape[2];
  return x.gather(1, index.reshape(B, N * k, 1).expand(B, N * k, D)).reshape(B, N, k, D);
}

// ---------------------------------------------------------------- losses

/** Mean over rows of −Σ_K softmax((t − c)/τt)·log_softmax(s/τs); s, t [..., K] (t is detached). */
export function patchCrossEntropy(
  s: Tensor,
  t: Tensor,
  center: Tensor,
  studentTemp: number,
  teacherTemp: number,
): Tensor {
  const q = t.detach().sub(center).div(teacherTemp).softmax(-1);
  return q.mul(s.div(studentTemp).logSoftmax(-1)).sum(-1).mean().neg();
}

export interface SelfPatchTerms {
  studentCls: Tensor[]; // per view [B, K]: c_head(ViT CLS)
  studentHeadCls: Tensor[] | null; // per view [B, K]: c_head(class-attention CLS), or null when its weight is 0
  teacherCls: Tensor[]; // the global views' [B, K]
  studentPatch: Tensor[]; // per view [B·N_v, Kp]: p_head(head.norm(patch tokens))
  teacherPatch: Tensor[]; // per view [B·N_v, Kp]: p_head(aggregates)
  center: Tensor;
  patchCenter: Tensor;
  studentTemp: number;
  teacherTemp: number;
  patchWeight: number;
  caClsWeight: number;
}

/** SelfPatch's objective: c_loss (DINO pairs) + patchWeight · p_loss (per view, then averaged over views). */
export function selfPatchLoss(o: SelfPatchTerms): { loss: Tensor; cLoss: Tensor; pLoss: Tensor } {
  const ce = (s: Tensor[]) => dinoCrossEntropy(s, o.teacherCls, o.center, o.studentTemp, o.teacherTemp);
  let cLoss = ce(o.studentCls);
  if (o.studentHeadCls && o.caClsWeight > 0)
    cLoss = cLoss.mul(1 - o.caClsWeight).add(ce(o.studentHeadCls).mul(o.caClsWeight));
  const terms = o.studentPatch.map((s, v) =>
    patchCrossEntropy(s, o.teacherPatch[v], o.patchCenter, o.studentTemp, o.teacherTemp),
  );
  const pLoss = terms.reduce((a, b) => a.add(b)).div(terms.length);
  return { loss: cLoss.add(pLoss.mul(o.patchWeight)), cLoss, pLoss };
}

// ---------------------------------------------------------------- networks

/** Backbone + heads, named as SelfPatch's MultiCropWrapper: backbone, ca_head, c_head, p_head. */
export class SelfPatchNet extends Module {
  readonly backbone: VisionTransformer;
  readonly caHead: SelfPatchHead;
  readonly cHead: DinoHead;
  readonly pHead: DinoHead;
  constructor(vit: VitConfig, head: DinoHeadConfig, patchHead: DinoHeadConfig, caBlocks: number) {
    super();
    this.backbone = this.child('backbone', new VisionTransformer(vit));
    this.caHead = this.child('ca_head', new SelfPatchHead(vit.dim, vit.heads, caBlocks));
    this.cHead = this.child('c_head', new DinoHead(vit.dim, head));
    this.pHead = this.child('p_head', new DinoHead(vit.dim, patchHead));
  }
  /** The prototype layers DINO's freeze_last_layer cancels (every parameter named last_layer). */
  lastLayers(): Tensor[] {
    return [...this.cHead.lastLayer.parameters(), ...this.pHead.lastLayer.parameters()];
  }
}

/** The EMA teacher (no drop path) with both centres as buffers: center [1, K], patch_center [1, Kp]. */
export class SelfPatchTeacher extends SelfPatchNet {
  readonly center: Tensor;
  readonly patchCenter: Tensor;
  constructor(vit: VitConfig, head: DinoHeadConfig, patchHead: DinoHeadConfig, caBlocks: number) {
    super({ ...vit, dropPathRate: 0 }, head, patchHead, caBlocks);
    this.center = this.buffer('center', zeros([1, head.outDim]));
    this.patchCenter = this.buffer('patch_center', zeros([1, patchHead.outDim]));
  }
}

/** Runs of equal-size views, [start, end): each is one backbone pass (MultiCropWrapper). */
export function sizeGroups(views: Tensor[]): [number, number][] {
  const out: [number, number][] = [];
  let i = 0;
  while (i < views.length) {
    let j = i + 1;
    while (j < views.length && views[j].shape[2] === views[i].shape[2] && views[j].shape[3] === views[i].shape[3]) j++;
    out.push([i, j]);
    i = j;
  }
  return out;
}

const catViews = (views: Tensor[]): Tensor => (views.length === 1 ? views[0] : cat(views, 0));

// ---------------------------------------------------------------- the method

export class SelfPatch implements Method {
  readonly name = 'selfpatch';
  readonly student: SelfPatchNet;
  readonly teacher: SelfPatchTeacher;
  private pending: { cls: Tensor; patchMean: Tensor } | null = null;

  constructor(
    readonly opts: SelfPatchOptions,
    readonly ctx: MethodContext,
  ) {
    const head: DinoHeadConfig = {
      outDim: opts.outDim,
      hiddenDim: opts.hiddenDim,
      bottleneckDim: opts.bottleneckDim,
      nlayers: opts.nlayers,
      normLastLayer: opts.normLastLayer,
    };
    const patchHead: DinoHeadConfig = { ...head, outDim: opts.patchOutDim, hiddenDim: opts.patchHiddenDim };
    this.student = new SelfPatchNet(ctx.vit, head, patchHead, opts.caBlocks);
    initPatchEmbed_(this.student.backbone.patchEmbed.proj, opts.patchInit); // SelfPatch: PyTorch's default
    this.teacher = new SelfPatchTeacher(ctx.vit, head, patchHead, opts.caBlocks);
    for (const part of ['backbone', 'caHead', 'cHead', 'pHead'] as const)
      this.teacher[part].loadStateDict(this.student[part].stateDict());
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

  loss(batch: TensorBatch, info: StepInfo): LossOutput {
    const o = this.opts;
    const tt = warmupTemp(o, info, o.warmupTeacherTemp, o.teacherTemp);
    const views = batch.views;
    const B = views[0].shape[0];
    const groups = sizeGroups(views);
    const perView = (t: Tensor, rowsPerView: number[]) => t.split(rowsPerView, 0);
    const patchRows: number[] = [];
    const useHeadCls = o.caClsWeight > 0;

    // Teacher on every crop: CLS distributions and the neighbour aggregates' patch distributions.
    const teacher = noGrad(() => {
      const cls: Tensor[] = [];
      const aggs: Tensor[] = [];
      for (const [s, e] of groups) {
        const out = this.teacher.backbone.forward(catViews(views.slice(s, e)));
        cls.push(out.cls);
        const agg = this.teacher.caHead.aggregate(out.patches, out.grid, o.kNum, o.wrap);
        aggs.push(agg.reshape(-1, agg.shape[2]));
        for (let v = s; v < e; v++) patchRows.push(B * out.patches.shape[1]);
      }
      const clsLogits = this.teacher.cHead.forward(catViews(cls));
      const patchLogits = this.teacher.pHead.forward(catViews(aggs));
      return { cls: clsLogits, patch: patchLogits };
    });

    // Student on every crop: ViT CLS, the head's CLS, head-normed patch tokens.
    const sCls: Tensor[] = [];
    const sHeadCls: Tensor[] = [];
    const sPatch: Tensor[] = [];
    for (const [s, e] of groups) {
      const out = this.student.backbone.forward(catViews(views.slice(s, e)));
      sCls.push(out.cls);
      if (useHeadCls) sHeadCls.push(this.student.caHead.attend(out.patches));
      sPatch.push(this.student.caHead.norm.forward(out.patches).reshape(-1, out.patches.shape[2]));
    }
    const V = views.length;
    const clsLogits = this.student.cHead.forward(catViews([...sCls, ...sHeadCls])).split(B, 0);
    const patchLogits = this.student.pHead.forward(catViews(sPatch));

    const tCls = teacher.cls.split(B, 0);
    const center = this.teacher.center;
    const patchCenter = this.teacher.patchCenter;
    const { loss, cLoss, pLoss } = selfPatchLoss({
      studentCls: clsLogits.slice(0, V),
      studentHeadCls: useHeadCls ? clsLogits.slice(V) : null,
      teacherCls: tCls.slice(0, 2),
      studentPatch: perView(patchLogits, patchRows),
      teacherPatch: perView(teacher.patch, patchRows),
      center,
      patchCenter,
      studentTemp: o.studentTemp,
      teacherTemp: tt,
      patchWeight: o.patchWeight,
      caClsWeight: o.caClsWeight,
    });

    const logs = noGrad(() => {
      this.disposePending();
      this.pending = { cls: keep(teacher.cls.clone()), patchMean: keep(teacher.patch.mean(0, true)) };
      const q = cat(tCls.slice(0, 2), 0).sub(center).div(tt).softmax(-1);
      const qp = teacher.patch.sub(patchCenter).div(tt).softmax(-1);
      return {
        c_loss: cLoss.detach(),
        p_loss: pLoss.detach(),
        teacher_entropy: meanEntropy(q),
        teacher_batch_entropy: meanEntropy(q.mean(0, true)),
        teacher_patch_entropy: meanEntropy(qp),
        teacher_patch_batch_entropy: meanEntropy(qp.mean(0, true)),
        teacher_temp: tt,
      };
    });
    return { loss, logs };
  }

  private disposePending(): void {
    if (this.pending) {
      this.pending.cls.dispose();
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
    for (const p of this.student.lastLayers()) p.grad = null;
  }

  afterStep(info: StepInfo, comm: Collectives): void {
    updateTeacher(this.teacher, this.student, info.momentum);
    const p = this.pending;
    this.pending = null;
    if (!p) return;
    const reduce = (x: Tensor) => comm.allReduceMean(x);
    tidy(() => {
      updateCentre(this.teacher.center, [p.cls], this.opts.centerMomentum, reduce);
      updateCentre(this.teacher.patchCenter, [p.patchMean], this.opts.centerMomentum, reduce);
    });
    p.cls.dispose();
    p.patchMean.dispose();
  }
}

export const selfPatchDef: MethodDef<SelfPatchOptions> = {
  name: 'selfpatch',
  summary: 'SelfPatch: DINO + a patch loss matching each patch to its top-k neighbours aggregated by the teacher',
  schema: selfPatchSchema as unknown as z.ZodType<SelfPatchOptions>,
  create: (o, ctx) => new SelfPatch(o, ctx),
  check: (o, m) =>
    o.localCount > 0 && o.localSize % m.patchSize !== 0
      ? `selfpatch.localSize ${o.localSize} is not divisible by model.patchSize ${m.patchSize}`
      : null,
};
