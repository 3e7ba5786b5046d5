// Module: parameters, buffers and children with PyTorch-style dotted state-dict names.
import { type DType, keep, noGrad, type Tensor } from '../engine/index.js';

export class Module {
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  /** Registers a trainable tensor (kept out of tidy scopes, requires grad). */
  protected param(name: string, t: Tensor): Tensor {
    keep(t);
    if (!t.requiresGrad) t.requiresGrad_(true);
    this.#params.get(name)?.dispose();
    this.#params.set(name, t);
    return t;
  }
  /** Registers persistent state that is not trained (running stats, centres, fixed weights). */
  protected buffer(name: string, t: Tensor): Tensor {
    keep(t);
    this.#buffers.get(name)?.dispose();
    this.#buffers.set(name, t);
    return t;
  }
  protected child<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  children(): [string, Module][] {
    return [...this.#children];
  }
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, p] of this.#params) out.push([prefix + n, p]);
    for (const [n, c] of this.#children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }
  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, b] of this.#buffers) out.push([prefix + n, b]);
    for (const [n, c] of this.#children) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }
  numParameters(): number {
    return this.parameters().reduce((a, p) => a + p.numel, 0);
  }

  /** Parameters and buffers by dotted name (live tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }
  /**
   * Copies values into this module's tensors. Missing or unexpected keys and shape mismatches throw
   * one error listing them (strict), so a checkpoint of another architecture is never half-loaded.
   */
  loadStateDict(state: Map<string, Tensor>, strict = true): void {
    const own = this.stateDict();
    const problems: string[] = [];
    for (const [k, t] of own) {
      const src = state.get(k);
      if (!src) {
        if (strict) problems.push(`missing ${k}`);
      } else if (src.shape.join() !== t.shape.join()) {
        problems.push(`${k}: checkpoint has [${src.shape}], model has [${t.shape}]`);
      }
    }
    if (strict) for (const k of state.keys()) if (!own.has(k)) problems.push(`unexpected ${k}`);
    if (problems.length > 0)
      throw new Error(
        `state dict does not match the model (${problems.length} problems): ${problems.slice(0, 8).join('; ')}`,
      );
    noGrad(() => {
      for (const [k, t] of own) {
        const src = state.get(k);
        if (src) t.copy_(src);
      }
    });
  }

  train(on = true): this {
    this.training = on;
    for (const [, c] of this.#children) c.train(on);
    return this;
  }
  eval(): this {
    return this.train(false);
  }
  requiresGrad_(on: boolean): this {
    for (const p of this.parameters()) p.requiresGrad_(on);
    return this;
  }
  /**
   * Converts every parameter and buffer in place to dtype (and/or device): the tensors keep their identity,
   * so fields, optimizers built afterwards and state dicts see the new data. Gradients are dropped.
   */
  to(dtype?: DType, device?: string): this {
    noGrad(() => {
      for (const [, t] of this.stateDict()) {
        const c = t.to(dtype, device);
        t.grad = null;
        t.setData_(c);
        c.dispose();
      }
    });
    return this;
  }
  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const [, t] of this.stateDict()) t.dispose();
  }
}

/** Children named 0, 1, 2, … (like torch.nn.ModuleList / Sequential). */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[] = [];
  constructor(items: M[] = []) {
    super();
    for (const m of items) this.push(m);
  }
  push(m: M): M {
    this.child(String(this.items.length), m);
    this.items.push(m);
    return m;
  }
  get length(): number {
    return this.items.length;
  }
}
