// The BYOL machinery SCRL and BYOL share (kakaobrain/scrl models/heads.py, trainer/base.py): torch-default
// linear init, BatchNorm1d with running statistics, the TwoLayerLinearHead used as projector and predictor,
// the regression loss ℓ(x, y) = 2 − 2·cos(x, y), its symmetric form over two views' rows, and the EMA
// target update. SCRL applies them to RoI-aligned boxes (scrl.ts), BYOL to the pooled image (byol.ts).
import { batchNorm, normalize, ones, type Tensor, zeros } from '../engine/index.js';
import { Linear, Module, torchDefault_ } from '../nn/index.js';
import { updateTeacher } from './common.js';

/** nn.Linear's default init (kaiming-uniform a=√5 ⇒ U(±1/√in) for weight and bias), as the reference heads use. */
export function torchLinear(inF: number, outF: number, bias = true): Linear {
  const l = new Linear(inF, outF, { bias });
  torchDefault_(l.weight, l.bias);
  return l;
}

/** BatchNorm1d with running statistics as buffers (momentum 0.1, eps 1e-5, torch's defaults). */
export class BatchNorm1d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  constructor(
    readonly dim: number,
    readonly momentum = 0.1,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.param('weight', ones([dim]));
    this.bias = this.param('bias', zeros([dim]));
    this.runningMean = this.buffer('running_mean', zeros([dim]));
    this.runningVar = this.buffer('running_var', ones([dim]));
  }
  forward(x: Tensor): Tensor {
    return batchNorm(x, {
      weight: this.weight,
      bias: this.bias,
      runningMean: this.runningMean,
      runningVar: this.runningVar,
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

/** Children named like nn.Sequential entries (net.0, net.1, net.3). */
export class Seq extends Module {
  add<M extends Module>(name: string, m: M): M {
    return this.child(name, m);
  }
}

/** SCRL's TwoLayerLinearHead: Linear → BatchNorm1d → ReLU → Linear (no bias). State names net.0/net.1/net.3. */
export class TwoLayerHead extends Module {
  readonly fc1: Linear;
  readonly bn: BatchNorm1d;
  readonly fc2: Linear;
  constructor(inDim: number, hiddenDim: number, outDim: number) {
    super();
    const net = this.child('net', new Seq());
    this.fc1 = net.add('0', torchLinear(inDim, hiddenDim));
    this.bn = net.add('1', new BatchNorm1d(hiddenDim));
    this.fc2 = net.add('3', torchLinear(hiddenDim, outDim, false));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.bn.forward(this.fc1.forward(x)).relu());
  }
}

/** ℓ(x, y) = 2 − 2·cos(x, y) per row (F.normalize along dim 1, as _regression_loss). */
export function regressionLoss(x: Tensor, y: Tensor): Tensor {
  return normalize(x, 1).mul(normalize(y, 1)).sum(1).mul(-2).add(2);
}

/**
 * The symmetric BYOL/SCRL criterion: rows are [view-1 items; view-2 items] (matched one to one: images for
 * BYOL, boxes for SCRL); mean over items of ℓ(p1, t2) + ℓ(p2, t1).
 */
export function symmetricRegression(pOnline: Tensor, pTarget: Tensor): Tensor {
  const [p1, p2] = pOnline.chunk(2, 0) as [Tensor, Tensor];
  const [t1, t2] = pTarget.chunk(2, 0) as [Tensor, Tensor];
  return regressionLoss(p1, t2).add(regressionLoss(p2, t1)).mean();
}

/** target ← m·target + (1−m)·online over the parameters both have (encoder, projector; the predictor is online only). */
export function updateTarget(target: Module, online: Module, m: number): void {
  updateTeacher(target, online, m);
}

/**
 * The optimiser defaults of the online/target methods (SCRL and its image-level baseline BYOL), from SCRL's
 * 200-epoch config (methods.md §4): LARS base lr 0.45 per 256, cosine to 0, wd 1e-6, no clipping; the EMA is
 * the runtime's budget-aware momentum (optim.teacherMomentum null: 0.970 at 300 steps; the reference's 0.97
 * is `--set optim.teacherMomentum=0.97`). One table, so that SCRL and BYOL are compared under one recipe.
 */
export const BOOTSTRAP_OPTIM_DEFAULTS: Readonly<Record<string, number>> = {
  lr: 0.45,
  minLr: 0,
  weightDecay: 1e-6,
  weightDecayEnd: 1e-6,
  clip: 0,
};
