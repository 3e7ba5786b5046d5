// Scopes and grad mode: deterministic freeing of intermediates (tidy / keep / dispose) and noGrad.
//
// Memory rule (DESIGN.md): a step's intermediates must be freed as soon as they are dead, not when V8
// gets round to collecting them. `tidy(fn)` frees every tensor created inside fn except what it
// returns; `dispose()` frees one; a finaliser in the addon is the safety net for anything missed.
import { native } from './native.js';
import { Tensor } from './tensor.js';

// ---- scopes
const scopes: Set<Tensor>[] = [];

/** Adds a new tensor to the innermost open scope (called by the Tensor constructor). */
export function track(t: Tensor): void {
  if (scopes.length > 0) scopes[scopes.length - 1].add(t);
}

function collect(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 6 || value === null || typeof value !== 'object') return;
  if (value instanceof Tensor) out.add(value);
  else if (Array.isArray(value)) for (const v of value) collect(v, out, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collect(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype)
    for (const v of Object.values(value)) collect(v, out, depth + 1);
}

// Native bytes are reported to V8 only for tensors that may be left to the GC: tensors made inside a scope
// are freed when it ends, and are reported only if they leave the outermost scope or are kept.
function enterScope(scope: Set<Tensor>): void {
  if (scopes.length === 0) native.setScoped(true);
  scopes.push(scope);
}
function leaveScope(): void {
  scopes.pop();
  if (scopes.length === 0) native.setScoped(false);
}

/**
 * Runs fn and frees every tensor created inside it, except the tensors in its result (found in
 * arrays, Maps and plain objects), which move to the enclosing scope. fn must be synchronous.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  enterScope(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    leaveScope();
    for (const t of scope) t.dispose();
    throw e;
  }
  leaveScope();
  const keepSet = new Set<Tensor>();
  collect(result, keepSet);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (!keepSet.has(t)) t.dispose();
    else if (parent) parent.add(t);
    else if (!t.disposed) native.reportExternal(t.handle);
  }
  return result;
}

/** Removes t from every open scope so that only an explicit dispose() (or GC) frees it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  if (!t.disposed) native.reportExternal(t.handle);
  return t;
}

/** Frees every tensor found in value (arrays, Maps, plain objects). */
export function dispose(value: unknown): void {
  const s = new Set<Tensor>();
  collect(value, s);
  for (const t of s) t.dispose();
}

/** Runs fn with autograd recording off. */
export function noGrad<T>(fn: () => T): T {
  const prev = native.isGradEnabled() as boolean;
  native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Number of live native tensor handles (for leak tests). */
export function liveTensors(): number {
  return native.liveTensors();
}

/** Whether autograd records operations now (false inside noGrad). */
export function isGradEnabled(): boolean {
  return native.isGradEnabled() as boolean;
}
