// Optimizers over parameter groups; the per-tensor math runs in one native call per group.
import {
  adamwStep,
  gradNorms,
  keep,
  scaleGrads,
  sgdStep,
  type Tensor,
  tensor,
  tidy,
  zeroGrads,
  zeros,
} from '../engine/index.js';

export interface ParamGroup {
  params: Tensor[];
  names?: string[];
  lr: number;
  weightDecay: number;
  /** Multiplier applied to the scheduled weight decay (0 for biases and norms). */
  wdScale?: number;
  /** LARS adaptation on (SCRL excludes biases and norms from it). */
  lars?: boolean;
}

/**
 * Splits named parameters into the two groups DINO uses: weights with weight decay, and biases plus
 * every 1-D parameter (norms, tokens' scales) without (utils.get_params_groups).
 */
export function decayGroups(named: [string, Tensor][]): { decay: [string, Tensor][]; noDecay: [string, Tensor][] } {
  const decay: [string, Tensor][] = [];
  const noDecay: [string, Tensor][] = [];
  for (const [n, p] of named) (n.endsWith('.bias') || p.ndim <= 1 ? noDecay : decay).push([n, p]);
  return { decay, noDecay };
}

export abstract class Optimizer {
  step_ = 0;
  constructor(readonly groups: ParamGroup[]) {}
  abstract step(): void;
  zeroGrad(): void {
    for (const g of this.groups) zeroGrads(g.params);
  }
  /** Sets the learning rate and (scaled) weight decay of every group, e.g. from schedules. */
  setSchedule(lr: number, weightDecay?: number): void {
    for (const g of this.groups) {
      g.lr = lr;
      if (weightDecay !== undefined) g.weightDecay = weightDecay * (g.wdScale ?? 1);
    }
  }
  abstract stateTensors(): Map<string, Tensor>;
  /** Restores stateTensors() from a checkpoint's optimizer tensors (shapes checked) and the global step. */
  loadState(saved: Map<string, Tensor>, step: number): void {
    copyState(this.stateTensors(), saved);
    this.step_ = step;
  }
}

function copyState(live: Map<string, Tensor>, saved: Map<string, Tensor>): void {
  const missing = [...live.keys()].filter((k) => !saved.has(k));
  if (missing.length > 0 || saved.size !== live.size)
    throw new Error(
      `checkpoint optimizer state does not match this model (${missing.length} missing, ${saved.size} saved vs ${live.size})`,
    );
  for (const [k, t] of live) {
    const s = saved.get(k) as Tensor;
    if (s.shape.join() !== t.shape.join())
      throw new Error(`checkpoint optimizer state ${k}: shape [${s.shape}] vs [${t.shape}]`);
    t.copy_(s);
  }
}

function hasGrad(p: Tensor): boolean {
  const g = p.grad;
  if (g === null) return false;
  g.dispose();
  return true;
}

/**
 * AdamW as torch.optim.AdamW: a parameter without a gradient this step is skipped (no decay, no moments),
 * and each parameter's bias correction counts ITS steps, from its first gradient (torch's per-parameter
 * state['step']), not the optimizer's global step: a layer that starts training late (DINO's prototypes
 * after the frozen first steps) gets the same corrected first steps as one trained from step 1.
 * The counts are saved in checkpoints as `<group>.step` (float64 [n]).
 */
export class AdamW extends Optimizer {
  readonly expAvg: Tensor[][];
  readonly expAvgSq: Tensor[][];
  /** Per-parameter step counts (torch's state['step']), by group. */
  readonly stepCounts: Float64Array[];
  constructor(
    groups: ParamGroup[],
    readonly o: { beta1?: number; beta2?: number; eps?: number } = {},
  ) {
    super(groups);
    this.expAvg = groups.map((g) => g.params.map((p) => keep(zeros(p.shape, { dtype: p.dtype, device: p.device }))));
    this.expAvgSq = groups.map((g) => g.params.map((p) => keep(zeros(p.shape, { dtype: p.dtype, device: p.device }))));
    this.stepCounts = groups.map((g) => new Float64Array(g.params.length));
  }
  step(): void {
    this.step_++;
    this.groups.forEach((g, i) => {
      const counts = this.stepCounts[i] as Float64Array;
      // one native call per distinct step count (usually one or two per group)
      const byCount = new Map<number, number[]>();
      g.params.forEach((p, j) => {
        if (!hasGrad(p)) return;
        counts[j] = (counts[j] as number) + 1;
        const c = counts[j] as number;
        const list = byCount.get(c);
        if (list) list.push(j);
        else byCount.set(c, [j]);
      });
      for (const [c, idx] of byCount) {
        const all = idx.length === g.params.length;
        const pick = (ts: Tensor[]) => (all ? ts : idx.map((j) => ts[j] as Tensor));
        adamwStep(pick(g.params), pick(this.expAvg[i] as Tensor[]), pick(this.expAvgSq[i] as Tensor[]), {
          lr: g.lr,
          beta1: this.o.beta1 ?? 0.9,
          beta2: this.o.beta2 ?? 0.999,
          eps: this.o.eps ?? 1e-8,
          weightDecay: g.weightDecay,
          step: c,
        });
      }
    });
  }
  /** Moments of every parameter plus each group's step counts (a fresh float64 tensor, `<group>.step`). */
  stateTensors(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    for (const [i, g] of this.groups.entries()) {
      for (const j of g.params.keys()) {
        m.set(`${i}.${j}.exp_avg`, this.expAvg[i][j]);
        m.set(`${i}.${j}.exp_avg_sq`, this.expAvgSq[i][j]);
      }
      m.set(`${i}.step`, tensor(Float64Array.from(this.stepCounts[i] as Float64Array), [g.params.length]));
    }
    return m;
  }
  /**
   * Checkpoints from before the per-parameter counts (no `<group>.step`): each parameter whose second moment
   * is non-zero is taken to have had a gradient at every step so far (count = the global step), the others
   * none (count 0), the only reading of the old global-step bias correction that keeps trained layers' steps.
   */
  override loadState(saved: Map<string, Tensor>, step: number): void {
    const live = this.stateTensors();
    const counts = this.groups.map((_, i) => saved.get(`${i}.step`));
    const moments = new Map([...live].filter(([k]) => !k.endsWith('.step')));
    const savedMoments = new Map([...saved].filter(([k]) => !/^\d+\.step$/.test(k)));
    for (const [k, t] of live) if (k.endsWith('.step')) t.dispose();
    const savedSteps = [...saved.keys()].filter((k) => /^\d+\.step$/.test(k)).length;
    if (savedSteps !== 0 && (savedSteps !== this.groups.length || counts.some((t) => t === undefined)))
      throw new Error(
        `checkpoint optimizer state does not match this model (${savedSteps} step-count groups saved vs ${this.groups.length})`,
      );
    copyState(moments, savedMoments);
    this.step_ = step;
    this.groups.forEach((g, i) => {
      const dst = this.stepCounts[i] as Float64Array;
      const t = counts[i];
      if (t) {
        if (t.shape.join() !== String(g.params.length))
          throw new Error(`checkpoint optimizer state ${i}.step: shape [${t.shape}] vs [${g.params.length}]`);
        dst.set(tidy(() => t.to('float64', 'cpu').toArray() as Float64Array));
      } else
        g.params.forEach((_, j) => {
          const nonzero = tidy(() => ((this.expAvgSq[i] as Tensor[])[j] as Tensor).abs().sum().item()) > 0;
          dst[j] = nonzero ? step : 0;
        });
    });
  }
}

/** SGD with momentum; with `trustCoef` > 0, groups marked `lars` use LARS (SCRL's torchlars setting). */
export class SGD extends Optimizer {
  readonly bufs: Tensor[][];
  constructor(
    groups: ParamGroup[],
    readonly o: { momentum?: number; nesterov?: boolean; trustCoef?: number; larsEps?: number } = {},
  ) {
    super(groups);
    this.bufs = groups.map((g) => g.params.map((p) => keep(zeros(p.shape, { dtype: p.dtype, device: p.device }))));
  }
  step(): void {
    this.step_++;
    this.groups.forEach((g, i) => {
      sgdStep(g.params, this.bufs[i], {
        lr: g.lr,
        momentum: this.o.momentum ?? 0.9,
        weightDecay: g.weightDecay,
        nesterov: this.o.nesterov,
        trustCoef: g.lars ? (this.o.trustCoef ?? 0.001) : 0,
        larsEps: this.o.larsEps,
      });
    });
  }
  stateTensors(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    for (const [i, g] of this.groups.entries())
      for (const j of g.params.keys()) m.set(`${i}.${j}.momentum`, this.bufs[i][j]);
    return m;
  }
}

/** DINO's clip_gradients: each tensor's gradient is clipped to maxNorm on its own. Returns the norms. */
export function clipGradPerTensor(params: Tensor[], maxNorm: number): Float64Array {
  const norms = gradNorms(params);
  const scales = norms.map((n) => Math.min(1, maxNorm / (n + 1e-6)));
  scaleGrads(params, scales);
  return norms;
}

/** torch.nn.utils.clip_grad_norm_: all gradients scaled together to a global norm ≤ maxNorm. Returns the norm before. */
export function clipGradGlobal(params: Tensor[], maxNorm: number): number {
  const norms = gradNorms(params);
  const total = Math.sqrt(norms.reduce((a, n) => a + n * n, 0));
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) scaleGrads(params, coef);
  return total;
}
