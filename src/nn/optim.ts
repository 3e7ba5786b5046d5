// Optimizers over parameter groups; the per-tensor math runs in one native call per group.
import { adamwStep, gradNorms, keep, scaleGrads, sgdStep, type Tensor, zeroGrads, zeros } from '../engine/index.js';

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
}

export class AdamW extends Optimizer {
  readonly expAvg: Tensor[][];
  readonly expAvgSq: Tensor[][];
  constructor(
    groups: ParamGroup[],
    readonly o: { beta1?: number; beta2?: number; eps?: number } = {},
  ) {
    super(groups);
    this.expAvg = groups.map((g) => g.params.map((p) => keep(zeros(p.shape, { dtype: p.dtype, device: p.device }))));
    this.expAvgSq = groups.map((g) => g.params.map((p) => keep(zeros(p.shape, { dtype: p.dtype, device: p.device }))));
  }
  step(): void {
    this.step_++;
    this.groups.forEach((g, i) => {
      adamwStep(g.params, this.expAvg[i], this.expAvgSq[i], {
        lr: g.lr,
        beta1: this.o.beta1 ?? 0.9,
        beta2: this.o.beta2 ?? 0.999,
        eps: this.o.eps ?? 1e-8,
        weightDecay: g.weightDecay,
        step: this.step_,
      });
    });
  }
  stateTensors(): Map<string, Tensor> {
    const m = new Map<string, Tensor>();
    for (const [i, g] of this.groups.entries())
      for (const j of g.params.keys()) {
        m.set(`${i}.${j}.exp_avg`, this.expAvg[i][j]);
        m.set(`${i}.${j}.exp_avg_sq`, this.expAvgSq[i][j]);
      }
    return m;
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
