// The tensor API: a thin TypeScript wrapper over libtorch handles, with deterministic freeing.
//
// Memory rule (DESIGN.md): a step's intermediates must be freed as soon as they are dead, not when V8
// gets round to collecting them: scope.ts's `tidy(fn)` frees every tensor created inside fn except what
// it returns; `dispose()` frees one; a finaliser in the addon is the safety net for anything missed.
import { type Handle, native } from './native.js';
import { track } from './scope.js';

export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool' | 'float16' | 'bfloat16';
export type TypedArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
type Operand = Tensor | number;

const h = (x: Operand): Handle | number => (typeof x === 'number' ? x : x.handle);
const w = (handle: Handle): Tensor => new Tensor(handle);

export class Tensor {
  #h: Handle | null;
  #shape: number[] | undefined;

  constructor(handle: Handle) {
    this.#h = handle;
    track(this);
  }

  get handle(): Handle {
    if (this.#h === null) throw new Error('tensor used after dispose()');
    return this.#h;
  }
  get disposed(): boolean {
    return this.#h === null;
  }
  dispose(): void {
    if (this.#h !== null) {
      native.free(this.#h);
      this.#h = null;
    }
  }

  // ---- metadata
  get shape(): number[] {
    this.#shape ??= native.shape(this.handle) as number[];
    return this.#shape;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return native.dtype(this.handle);
  }
  get device(): string {
    return native.device(this.handle);
  }
  size(dim: number): number {
    const s = this.shape;
    return s[dim < 0 ? s.length + dim : dim];
  }

  // ---- read-back
  item(): number {
    return native.item(this.handle);
  }
  toArray(): TypedArray {
    const buf = native.toBuffer(this.handle) as ArrayBuffer;
    switch (this.dtype) {
      case 'float32':
        return new Float32Array(buf);
      case 'float64':
        return new Float64Array(buf);
      case 'int64':
        return new BigInt64Array(buf);
      case 'int32':
        return new Int32Array(buf);
      case 'uint8':
      case 'bool':
        return new Uint8Array(buf);
      default:
        throw new Error(`toArray: no typed array for ${this.dtype}; convert with .to('float32') first`);
    }
  }
  /** Values as float32 (any dtype), copied. */
  toFloat32(): Float32Array {
    if (this.dtype === 'float32') return this.toArray() as Float32Array;
    const t = this.to('float32');
    const a = t.toArray() as Float32Array;
    t.dispose();
    return a;
  }
  /** Values as plain numbers (int64 converted), copied. */
  toNumbers(): number[] {
    const a = this.toArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
  }
  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}])`;
  }

  // ---- conversion
  to(dtype?: DType, device?: string): Tensor {
    return w(native.to(this.handle, dtype, device));
  }
  float(): Tensor {
    return this.to('float32');
  }
  clone(): Tensor {
    return w(native.clone(this.handle));
  }
  /** A second handle on the same tensor (disposing one leaves the other valid). */
  alias(): Tensor {
    return w(native.alias(this.handle));
  }
  /**
   * Replaces this tensor's data by src's (dtype and device may differ; shape is src's), keeping this handle
   * and its requiresGrad flag: PyTorch's `t.data = src`. Used to convert a module's parameters in place.
   */
  setData_(src: Tensor): this {
    native.setData(this.handle, src.handle);
    this.#shape = undefined;
    return this;
  }
  detach(): Tensor {
    return w(native.detach(this.handle));
  }
  contiguous(): Tensor {
    return w(native.contiguous(this.handle));
  }

  // ---- autograd
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.handle, on);
    return this;
  }
  /** The accumulated gradient (a new handle each call), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.handle) as Handle | null;
    return g === null ? null : w(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }
  backward(gradient?: Tensor, retainGraph = false): void {
    native.backward(this.handle, gradient?.handle, retainGraph);
  }

  // ---- elementwise
  add(o: Operand, alpha?: number): Tensor {
    return w(native.add(this.handle, h(o), alpha));
  }
  sub(o: Operand, alpha?: number): Tensor {
    return w(native.sub(this.handle, h(o), alpha));
  }
  /** s − this */
  rsub(s: number): Tensor {
    return w(native.rsub(this.handle, s));
  }
  mul(o: Operand): Tensor {
    return w(native.mul(this.handle, h(o)));
  }
  div(o: Operand): Tensor {
    return w(native.div(this.handle, h(o)));
  }
  pow(o: Operand): Tensor {
    return w(native.pow(this.handle, h(o)));
  }
  remainder(o: Operand): Tensor {
    return w(native.remainder(this.handle, h(o)));
  }
  maximum(o: Tensor): Tensor {
    return w(native.maximum(this.handle, o.handle));
  }
  minimum(o: Tensor): Tensor {
    return w(native.minimum(this.handle, o.handle));
  }
  eq(o: Operand): Tensor {
    return w(native.eq(this.handle, h(o)));
  }
  ne(o: Operand): Tensor {
    return w(native.ne(this.handle, h(o)));
  }
  lt(o: Operand): Tensor {
    return w(native.lt(this.handle, h(o)));
  }
  le(o: Operand): Tensor {
    return w(native.le(this.handle, h(o)));
  }
  gt(o: Operand): Tensor {
    return w(native.gt(this.handle, h(o)));
  }
  ge(o: Operand): Tensor {
    return w(native.ge(this.handle, h(o)));
  }
  logicalAnd(o: Tensor): Tensor {
    return w(native.logicalAnd(this.handle, o.handle));
  }
  logicalOr(o: Tensor): Tensor {
    return w(native.logicalOr(this.handle, o.handle));
  }
  logicalNot(): Tensor {
    return w(native.logicalNot(this.handle));
  }
  clamp(min?: number, max?: number): Tensor {
    return w(native.clamp(this.handle, min, max));
  }
  clampMin(min: number): Tensor {
    return this.clamp(min);
  }
  maskedFill(mask: Tensor, value: Operand): Tensor {
    return w(native.maskedFill(this.handle, mask.handle, h(value)));
  }
  neg(): Tensor {
    return w(native.neg(this.handle));
  }
  exp(): Tensor {
    return w(native.exp(this.handle));
  }
  log(): Tensor {
    return w(native.log(this.handle));
  }
  log1p(): Tensor {
    return w(native.log1p(this.handle));
  }
  sqrt(): Tensor {
    return w(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return w(native.rsqrt(this.handle));
  }
  abs(): Tensor {
    return w(native.abs(this.handle));
  }
  sign(): Tensor {
    return w(native.sign(this.handle));
  }
  sin(): Tensor {
    return w(native.sin(this.handle));
  }
  cos(): Tensor {
    return w(native.cos(this.handle));
  }
  tanh(): Tensor {
    return w(native.tanh(this.handle));
  }
  sigmoid(): Tensor {
    return w(native.sigmoid(this.handle));
  }
  relu(): Tensor {
    return w(native.relu(this.handle));
  }
  silu(): Tensor {
    return w(native.silu(this.handle));
  }
  /** GELU; 'none' is the exact erf form (timm/DINO default). */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return w(native.gelu(this.handle, approximate));
  }
  erf(): Tensor {
    return w(native.erf(this.handle));
  }
  floor(): Tensor {
    return w(native.floor(this.handle));
  }
  ceil(): Tensor {
    return w(native.ceil(this.handle));
  }
  round(): Tensor {
    return w(native.round(this.handle));
  }
  reciprocal(): Tensor {
    return w(native.reciprocal(this.handle));
  }
  square(): Tensor {
    return w(native.square(this.handle));
  }
  isnan(): Tensor {
    return w(native.isnan(this.handle));
  }
  isfinite(): Tensor {
    return w(native.isfinite(this.handle));
  }

  // ---- products
  matmul(o: Tensor): Tensor {
    return w(native.matmul(this.handle, o.handle));
  }
  mm(o: Tensor): Tensor {
    return w(native.mm(this.handle, o.handle));
  }
  bmm(o: Tensor): Tensor {
    return w(native.bmm(this.handle, o.handle));
  }

  // ---- shape
  reshape(...shape: number[]): Tensor {
    return w(native.reshape(this.handle, shape));
  }
  view(...shape: number[]): Tensor {
    return w(native.view(this.handle, shape));
  }
  permute(...dims: number[]): Tensor {
    return w(native.permute(this.handle, dims));
  }
  transpose(d0: number, d1: number): Tensor {
    return w(native.transpose(this.handle, d0, d1));
  }
  get T(): Tensor {
    return this.transpose(-2, -1);
  }
  unsqueeze(dim: number): Tensor {
    return w(native.unsqueeze(this.handle, dim));
  }
  squeeze(dim?: number): Tensor {
    return w(native.squeeze(this.handle, dim));
  }
  flatten(start = 0, end = -1): Tensor {
    return w(native.flatten(this.handle, start, end));
  }
  expand(...shape: number[]): Tensor {
    return w(native.expand(this.handle, shape));
  }
  repeat(...reps: number[]): Tensor {
    return w(native.repeat(this.handle, reps));
  }
  repeatInterleave(repeats: number, dim: number): Tensor {
    return w(native.repeatInterleave(this.handle, repeats, dim));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return w(native.narrow(this.handle, dim, start, length));
  }
  /** Python-style slice along dim: [start, end) with step; undefined bounds mean the ends. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return w(native.slice(this.handle, dim, start, end, step));
  }
  select(dim: number, index: number): Tensor {
    return w(native.select(this.handle, dim, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return w(native.indexSelect(this.handle, dim, index.handle));
  }
  /** Advanced indexing with one index tensor (or null = all) per leading dimension. */
  index(indices: (Tensor | null)[]): Tensor {
    return w(
      native.index(
        this.handle,
        indices.map((t) => t?.handle ?? null),
      ),
    );
  }
  /** Out-of-place index_put: a copy with values put (or accumulated) at the indices. */
  indexPut(indices: (Tensor | null)[], values: Tensor, accumulate = false): Tensor {
    return w(
      native.indexPut(
        this.handle,
        indices.map((t) => t?.handle ?? null),
        values.handle,
        accumulate,
      ),
    );
  }
  gather(dim: number, index: Tensor): Tensor {
    return w(native.gather(this.handle, dim, index.handle));
  }
  scatter(dim: number, index: Tensor, src: Operand): Tensor {
    return w(native.scatter(this.handle, dim, index.handle, h(src)));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return w(native.scatterAdd(this.handle, dim, index.handle, src.handle));
  }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    return (native.split(this.handle, sizeOrSizes, dim) as Handle[]).map(w);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return (native.chunk(this.handle, chunks, dim) as Handle[]).map(w);
  }
  flip(...dims: number[]): Tensor {
    return w(native.flip(this.handle, dims));
  }
  roll(shifts: number[], dims: number[]): Tensor {
    return w(native.roll(this.handle, shifts, dims));
  }
  /** Rotates by k·90° counter-clockwise in the plane of dims (default: the last two, i.e. images). */
  rot90(k: number, dims: [number, number] = [-2, -1]): Tensor {
    return w(native.rot90(this.handle, k, dims));
  }
  tril(diagonal = 0): Tensor {
    return w(native.tril(this.handle, diagonal));
  }
  triu(diagonal = 0): Tensor {
    return w(native.triu(this.handle, diagonal));
  }
  /** Constant padding, torch.nn.functional.pad order: [lastLeft, lastRight, prevLeft, prevRight, ...]. */
  pad(pads: number[], value = 0): Tensor {
    return w(native.pad(this.handle, pads, value));
  }
  oneHot(numClasses: number): Tensor {
    return w(native.oneHot(this.handle, numClasses));
  }
  nonzero(): Tensor {
    return w(native.nonzero(this.handle));
  }

  // ---- reductions (dims undefined = all)
  sum(dims?: number | number[], keepdim = false): Tensor {
    return w(native.sum(this.handle, dims, keepdim));
  }
  mean(dims?: number | number[], keepdim = false): Tensor {
    return w(native.mean(this.handle, dims, keepdim));
  }
  amax(dims: number | number[], keepdim = false): Tensor {
    return w(native.amax(this.handle, dims, keepdim));
  }
  amin(dims: number | number[], keepdim = false): Tensor {
    return w(native.amin(this.handle, dims, keepdim));
  }
  maxAll(): Tensor {
    return w(native.maxAll(this.handle));
  }
  minAll(): Tensor {
    return w(native.minAll(this.handle));
  }
  /** [values, indices] along dim. */
  max(dim: number, keepdim = false): [Tensor, Tensor] {
    const [v, i] = native.max(this.handle, dim, keepdim) as [Handle, Handle];
    return [w(v), w(i)];
  }
  min(dim: number, keepdim = false): [Tensor, Tensor] {
    const [v, i] = native.min(this.handle, dim, keepdim) as [Handle, Handle];
    return [w(v), w(i)];
  }
  argmax(dim: number, keepdim = false): Tensor {
    return w(native.argmax(this.handle, dim, keepdim));
  }
  argmin(dim: number, keepdim = false): Tensor {
    return w(native.argmin(this.handle, dim, keepdim));
  }
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return w(native.logsumexp(this.handle, dims, keepdim));
  }
  norm(p = 2, dims?: number | number[], keepdim = false): Tensor {
    return w(native.norm(this.handle, p, dims, keepdim));
  }
  var(dims?: number | number[], unbiased = true, keepdim = false): Tensor {
    return w(native.var(this.handle, dims, unbiased, keepdim));
  }
  std(dims?: number | number[], unbiased = true, keepdim = false): Tensor {
    return w(native.std(this.handle, dims, unbiased, keepdim));
  }
  prod(): Tensor {
    return w(native.prod(this.handle));
  }
  cumsum(dim: number): Tensor {
    return w(native.cumsum(this.handle, dim));
  }
  all(): Tensor {
    return w(native.all(this.handle));
  }
  any(): Tensor {
    return w(native.any(this.handle));
  }
  /** [values, indices] of the k largest (or smallest) along dim. */
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    const [v, i] = native.topk(this.handle, k, dim, largest, sorted) as [Handle, Handle];
    return [w(v), w(i)];
  }
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    const [v, i] = native.sort(this.handle, dim, descending) as [Handle, Handle];
    return [w(v), w(i)];
  }

  // ---- nn functions
  softmax(dim: number): Tensor {
    return w(native.softmax(this.handle, dim));
  }
  logSoftmax(dim: number): Tensor {
    return w(native.logSoftmax(this.handle, dim));
  }

  // ---- in-place (parameters, buffers, optimizer state); chainable
  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return this;
  }
  zero_(): this {
    native.zero_(this.handle);
    return this;
  }
  fill_(v: number): this {
    native.fill_(this.handle, v);
    return this;
  }
  add_(o: Operand, alpha?: number): this {
    native.add_(this.handle, h(o), alpha);
    return this;
  }
  mul_(o: Operand): this {
    native.mul_(this.handle, h(o));
    return this;
  }
  div_(o: Operand): this {
    native.div_(this.handle, h(o));
    return this;
  }
  clamp_(min?: number, max?: number): this {
    native.clamp_(this.handle, min, max);
    return this;
  }
  uniform_(a = 0, b = 1): this {
    native.uniform_(this.handle, a, b);
    return this;
  }
  normal_(mean = 0, std = 1): this {
    native.normal_(this.handle, mean, std);
    return this;
  }
  erfinv_(): this {
    native.erfinv_(this.handle);
    return this;
  }
  maskedFill_(mask: Tensor, value: number): this {
    native.maskedFill_(this.handle, mask.handle, value);
    return this;
  }
}
