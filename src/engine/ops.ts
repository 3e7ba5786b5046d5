// Tensor creation and the functional ops (several inputs, or nn functions with options).
import { type Handle, native } from './native.js';
import { type DType, Tensor, type TypedArray } from './tensor.js';

const w = (handle: Handle): Tensor => new Tensor(handle);
const hs = (ts: Tensor[]): Handle[] => ts.map((t) => t.handle);
const opt = (t: Tensor | null | undefined): Handle | null => (t ? t.handle : null);

export interface Creation {
  dtype?: DType;
  device?: string;
}

export function zeros(shape: number[], o: Creation = {}): Tensor {
  return w(native.zeros(shape, o.dtype, o.device));
}
export function ones(shape: number[], o: Creation = {}): Tensor {
  return w(native.ones(shape, o.dtype, o.device));
}
export function empty(shape: number[], o: Creation = {}): Tensor {
  return w(native.empty(shape, o.dtype, o.device));
}
export function full(shape: number[], value: number, o: Creation = {}): Tensor {
  return w(native.full(shape, value, o.dtype, o.device));
}
/** [start, end) with step; dtype defaults to int64 like torch.arange on integers. */
export function arange(start: number, end?: number, step = 1, o: Creation = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  return w(native.arange(start, end, step, o.dtype ?? 'int64', o.device));
}
export function linspace(start: number, end: number, steps: number, o: Creation = {}): Tensor {
  return w(native.linspace(start, end, steps, o.dtype, o.device));
}
export function eye(n: number, o: Creation = {}): Tensor {
  return w(native.eye(n, o.dtype, o.device));
}
/** Uniform in [0, 1) from libtorch's global generator (seed with manualSeed). */
export function rand(shape: number[], o: Creation = {}): Tensor {
  return w(native.rand(shape, o.dtype, o.device));
}
export function randn(shape: number[], o: Creation = {}): Tensor {
  return w(native.randn(shape, o.dtype, o.device));
}
export function randint(low: number, high: number, shape: number[], o: Creation = {}): Tensor {
  return w(native.randint(low, high, shape, o.dtype ?? 'int64', o.device));
}
export function randperm(n: number, o: Creation = {}): Tensor {
  return w(native.randperm(n, o.dtype ?? 'int64', o.device));
}

const inferDtype = (a: TypedArray): DType =>
  a instanceof Float32Array
    ? 'float32'
    : a instanceof Float64Array
      ? 'float64'
      : a instanceof Int32Array
        ? 'int32'
        : a instanceof BigInt64Array
          ? 'int64'
          : 'uint8';

/**
 * A tensor holding a copy of data with the given shape. Plain number arrays become float32 unless a
 * dtype is given; typed arrays keep their type (Uint8Array may be read as 'bool').
 */
export function tensor(data: TypedArray | number[], shape?: number[], o: Creation = {}): Tensor {
  let arr: TypedArray;
  if (Array.isArray(data)) {
    const dt = o.dtype ?? 'float32';
    arr =
      dt === 'float64'
        ? Float64Array.from(data)
        : dt === 'int64'
          ? BigInt64Array.from(data, (x) => BigInt(x))
          : dt === 'int32'
            ? Int32Array.from(data)
            : dt === 'uint8' || dt === 'bool'
              ? Uint8Array.from(data)
              : Float32Array.from(data);
  } else arr = data;
  const dtype = o.dtype ?? inferDtype(arr);
  return w(native.fromBuffer(arr, shape ?? [arr.length], dtype, o.device));
}
/** A 0-d tensor. */
export function scalar(v: number, o: Creation = {}): Tensor {
  return full([], v, o);
}

// ---- several inputs
export function cat(ts: Tensor[], dim = 0): Tensor {
  return w(native.cat(hs(ts), dim));
}
export function stack(ts: Tensor[], dim = 0): Tensor {
  return w(native.stack(hs(ts), dim));
}
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  const x = (v: Tensor | number) => (typeof v === 'number' ? v : v.handle);
  return w(native.where(cond.handle, x(a), x(b)));
}
export function einsum(equation: string, ...ts: Tensor[]): Tensor {
  return w(native.einsum(equation, hs(ts)));
}
export function maximum(a: Tensor, b: Tensor): Tensor {
  return a.maximum(b);
}

// ---- nn functions
/** x·Wᵀ + b (weight [out, in]). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return w(native.linear(x.handle, weight.handle, opt(bias)));
}
export function addmm(input: Tensor, a: Tensor, b: Tensor, beta = 1, alpha = 1): Tensor {
  return w(native.addmm(input.handle, a.handle, b.handle, beta, alpha));
}
export function baddbmm(input: Tensor, a: Tensor, b: Tensor, beta = 1, alpha = 1): Tensor {
  return w(native.baddbmm(input.handle, a.handle, b.handle, beta, alpha));
}
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  o: { stride?: number; padding?: number; dilation?: number; groups?: number } = {},
): Tensor {
  const s = o.stride ?? 1;
  const p = o.padding ?? 0;
  const d = o.dilation ?? 1;
  return w(native.conv2d(x.handle, weight.handle, opt(bias), [s, s], [p, p], [d, d], o.groups ?? 1));
}
export function layerNorm(
  x: Tensor,
  shape: number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  return w(native.layerNorm(x.handle, shape, opt(weight), opt(bias), eps));
}
export function batchNorm(
  x: Tensor,
  o: {
    weight?: Tensor | null;
    bias?: Tensor | null;
    runningMean?: Tensor | null;
    runningVar?: Tensor | null;
    training: boolean;
    momentum?: number;
    eps?: number;
  },
): Tensor {
  return w(
    native.batchNorm(
      x.handle,
      opt(o.weight),
      opt(o.bias),
      opt(o.runningMean),
      opt(o.runningVar),
      o.training,
      o.momentum ?? 0.1,
      o.eps ?? 1e-5,
    ),
  );
}
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  return p > 0 && training ? w(native.dropout(x.handle, p, true)) : x.alias();
}
/**
 * Cross-entropy of logits [N, C, ...] against class indices [N, ...] (int64) or class probabilities
 * (float, same shape as logits), like torch.nn.functional.cross_entropy.
 */
export function crossEntropy(
  logits: Tensor,
  target: Tensor,
  o: { weight?: Tensor; reduction?: 'mean' | 'sum' | 'none'; ignoreIndex?: number; labelSmoothing?: number } = {},
): Tensor {
  return w(
    native.crossEntropy(
      logits.handle,
      target.handle,
      opt(o.weight),
      o.reduction ?? 'mean',
      o.ignoreIndex ?? -100,
      o.labelSmoothing ?? 0,
    ),
  );
}
export function mseLoss(a: Tensor, b: Tensor, reduction: 'mean' | 'sum' | 'none' = 'mean'): Tensor {
  return w(native.mseLoss(a.handle, b.handle, reduction));
}
export function cosineSimilarity(a: Tensor, b: Tensor, dim = 1, eps = 1e-8): Tensor {
  return w(native.cosineSimilarity(a.handle, b.handle, dim, eps));
}
/** x / max(‖x‖₂, eps) along dim (torch.nn.functional.normalize). */
export function normalize(x: Tensor, dim = -1, eps = 1e-12): Tensor {
  const n = x.norm(2, dim, true);
  const d = n.clampMin(eps);
  const r = x.div(d);
  n.dispose();
  d.dispose();
  return r;
}
/** Resizes NCHW maps (torch.nn.functional.interpolate). */
export function interpolate(
  x: Tensor,
  size: [number, number],
  mode: 'bilinear' | 'bicubic' | 'nearest' = 'bilinear',
  alignCorners = false,
): Tensor {
  return w(native.interpolate(x.handle, size, mode, alignCorners));
}
/** torch.nn.functional.grid_sample on NCHW input with grid [N, H, W, 2] in [-1, 1] (x, y). */
export function gridSample(
  x: Tensor,
  grid: Tensor,
  o: { mode?: 'bilinear' | 'nearest'; padding?: 'zeros' | 'border'; alignCorners?: boolean } = {},
): Tensor {
  return w(
    native.gridSample(
      x.handle,
      grid.handle,
      o.mode === 'nearest' ? 1 : 0,
      o.padding === 'border' ? 1 : 0,
      o.alignCorners ?? false,
    ),
  );
}
export function avgPool2d(x: Tensor, kernel: number, stride = kernel): Tensor {
  return w(native.avgPool2d(x.handle, [kernel, kernel], [stride, stride]));
}
export function maxPool2d(x: Tensor, kernel: number, stride = kernel): Tensor {
  return w(native.maxPool2d(x.handle, [kernel, kernel], [stride, stride]));
}
export function adaptiveAvgPool2d(x: Tensor, size: [number, number]): Tensor {
  return w(native.adaptiveAvgPool2d(x.handle, size));
}

// ---- randomness and state
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
/** The default random generator's state on `device` ('cpu', or 'cuda' / 'cuda:N' in a CUDA build), a uint8
 * tensor, for exact resume. */
export function getRngState(device = 'cpu'): Tensor {
  return w(native.getRngState(device));
}
export function setRngState(state: Tensor, device = 'cpu'): void {
  native.setRngState(state.handle, device);
}
export function cudaAvailable(): boolean {
  return native.cudaAvailable();
}
/** Waits for the queued CUDA kernels (for timing); a no-op without CUDA. */
export function cudaSynchronize(): void {
  if (native.cudaAvailable()) native.cudaSynchronize();
}

export interface EngineInfo {
  torchVersion: string;
  threads: number;
  cuda: boolean;
  cudaDevices: number;
  blasLibrary: string;
  blasConfig: string;
  parallel: string;
  config: string;
}
export function engineInfo(): EngineInfo {
  return native.info() as EngineInfo;
}
