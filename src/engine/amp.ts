// Mixed precision: autocast regions around a forward pass, and a dynamic loss scaler for float16.
//
// `autocast(precision, device, fn)` runs fn with libtorch's autocast on (addon/amp.cc): matmul-like ops
// run in bfloat16/float16, the rest as autocast's lists say; parameters stay float32 (master weights), so
// the optimizer and its state are float32 too. `GradScaler` follows torch.cuda.amp.GradScaler: the loss is
// multiplied by `scale` before backward, the gradients are divided by it before clipping and the step; a
// step whose gradients hold an inf or NaN is skipped and the scale multiplied by backoffFactor (0.5); after
// growthInterval clean steps in a row the scale is multiplied by growthFactor (2).
import { native } from './native.js';
import { scalar } from './ops.js';
import type { Tensor } from './tensor.js';

export const PRECISIONS = ['fp32', 'bf16', 'fp16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** The autocast dtype of a precision (null for fp32). */
export function precisionDtype(p: Precision): 'bfloat16' | 'float16' | null {
  return p === 'bf16' ? 'bfloat16' : p === 'fp16' ? 'float16' : null;
}

/** Runs fn with autocast at `precision` on the device type of `device` ('cpu', 'cuda', 'cuda:N'); fp32: plain. */
export function autocast<T>(precision: Precision, device: string, fn: () => T): T {
  const dtype = precisionDtype(precision);
  if (dtype === null) return fn();
  const dev = device.startsWith('cuda') ? 'cuda' : 'cpu';
  const [prevOn, prevDtype] = native.autocastEnter(dev, dtype) as [boolean, string];
  try {
    return fn();
  } finally {
    native.autocastExit(dev, prevOn, prevDtype);
  }
}

/** Whether autocast is on now for the device type of `device`. */
export function autocastEnabled(device = 'cpu'): boolean {
  return native.autocastEnabled(device.startsWith('cuda') ? 'cuda' : 'cpu');
}

/**
 * Whether this libtorch can run `precision`'s matmuls on `device` (libtorch 1.13's CPU has no float16
 * matmul: "addmm_impl_cpu_ not implemented for 'Half'"). Probed once per (precision, device).
 */
const probed = new Map<string, string | null>();
export function precisionUnsupported(precision: Precision, device: string): string | null {
  const dtype = precisionDtype(precision);
  if (dtype === null) return null;
  const key = `${precision}@${device}`;
  if (!probed.has(key)) {
    let why: string | null = null;
    const a = native.ones([2, 2], dtype, device);
    try {
      native.free(native.matmul(a, a));
    } catch (e) {
      why = `libtorch ${native.info().torchVersion} has no ${dtype} matmul on ${device} (${(e as Error).message.split('\n')[0]})`;
    } finally {
      native.free(a);
    }
    probed.set(key, why);
  }
  return probed.get(key) ?? null;
}

/** Divides every gradient by the scale (multiplies by invScale); true when any holds an inf or NaN. */
export function unscaleGrads(params: Tensor[], invScale: number): boolean {
  return native.unscaleGrads(
    params.map((p) => p.handle),
    invScale,
  );
}

export interface GradScalerOptions {
  initScale?: number; // 2^16
  growthFactor?: number; // 2
  backoffFactor?: number; // 0.5
  growthInterval?: number; // 2000
}

/** torch.cuda.amp.GradScaler's dynamic loss scaling (see the file comment). */
export class GradScaler {
  scale: number;
  /** Clean steps in a row since the last growth or backoff. */
  growthTracker = 0;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  constructor(o: GradScalerOptions = {}) {
    this.scale = o.initScale ?? 2 ** 16;
    this.growthFactor = o.growthFactor ?? 2;
    this.backoffFactor = o.backoffFactor ?? 0.5;
    this.growthInterval = o.growthInterval ?? 2000;
    if (!(this.scale > 0) || !(this.growthFactor > 1) || !(this.backoffFactor > 0 && this.backoffFactor < 1))
      throw new Error('GradScaler: initScale must be > 0, growthFactor > 1, 0 < backoffFactor < 1');
  }
  /** loss · scale (a new tensor), to call backward on. */
  scaleLoss(loss: Tensor): Tensor {
    return loss.mul(this.scale);
  }
  /** Unscales the gradients in place; true when the step must be skipped (an inf or NaN among them). */
  unscale(params: Tensor[]): boolean {
    return unscaleGrads(params, 1 / this.scale);
  }
  /** After the (possibly skipped) step: backoff on inf/NaN, growth after growthInterval clean steps. */
  update(foundInf: boolean): void {
    if (foundInf) {
      this.scale *= this.backoffFactor;
      this.growthTracker = 0;
    } else if (++this.growthTracker === this.growthInterval) {
      this.scale *= this.growthFactor;
      this.growthTracker = 0;
    }
  }
  /** The state as float64 tensors, for checkpoints (exact resume). */
  stateTensors(): Map<string, Tensor> {
    return new Map([
      ['scaler.scale', scalar(this.scale, { dtype: 'float64' })],
      ['scaler.growth_tracker', scalar(this.growthTracker, { dtype: 'float64' })],
    ]);
  }
  loadState(state: Map<string, Tensor>): void {
    const s = state.get('scaler.scale');
    const g = state.get('scaler.growth_tracker');
    if (!s || !g) throw new Error('checkpoint has no loss-scaler state (scaler.scale, scaler.growth_tracker)');
    this.scale = s.item();
    this.growthTracker = g.item();
  }
}
