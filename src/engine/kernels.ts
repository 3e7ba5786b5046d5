// Multi-tensor kernels over parameter lists, run as one native call per list (optimizers, EMA, clipping,
// gradient buckets). The math follows torch.optim's single-tensor implementations.
import { native } from './native.js';
import { Tensor } from './tensor.js';

const hs = (ts: Tensor[]) => ts.map((t) => t.handle);

export function adamwStep(
  params: Tensor[],
  expAvg: Tensor[],
  expAvgSq: Tensor[],
  o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number },
): void {
  native.adamw(hs(params), hs(expAvg), hs(expAvgSq), o.lr, o.beta1, o.beta2, o.eps, o.weightDecay, o.step);
}
/** SGD with momentum and weight decay; trustCoef > 0 turns it into LARS (step scaled by tc·‖w‖/‖g+wd·w‖). */
export function sgdStep(
  params: Tensor[],
  momentumBufs: Tensor[],
  o: { lr: number; momentum: number; weightDecay: number; nesterov?: boolean; trustCoef?: number; larsEps?: number },
): void {
  native.sgd(
    hs(params),
    hs(momentumBufs),
    o.lr,
    o.momentum,
    o.weightDecay,
    o.nesterov ?? false,
    o.trustCoef ?? 0,
    o.larsEps ?? 1e-8,
  );
}
/** teacher ← m·teacher + (1−m)·student, for each pair. */
export function emaUpdate(teacher: Tensor[], student: Tensor[], m: number): void {
  native.ema(hs(teacher), hs(student), m);
}
/** L2 norm of each parameter's gradient (0 where it has none). */
export function gradNorms(params: Tensor[]): Float64Array {
  return native.gradNorms(hs(params));
}
/** Multiplies each gradient by its scale (one number for all, or one per parameter). */
export function scaleGrads(params: Tensor[], scale: number | Float64Array): void {
  native.scaleGrads(hs(params), scale);
}
/** Drops the gradients (like optimizer.zero_grad(set_to_none=True)). */
export function zeroGrads(params: Tensor[]): void {
  native.zeroGrads(hs(params));
}
/** All gradients concatenated into one flat tensor (zeros where a parameter has none). */
export function flattenGrads(params: Tensor[]): Tensor {
  return new Tensor(native.flattenGrads(hs(params)));
}
/** Writes consecutive slices of flat back into the parameters' gradients. */
export function unflattenGrads(params: Tensor[], flat: Tensor): void {
  native.unflattenGrads(hs(params), flat.handle);
}
