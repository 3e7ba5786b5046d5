// Tensors to and from safetensors files (the format PyTorch's ecosystem reads), over the byte-level
// reader/writer in safetensors.ts. Values are copied bit for bit: no dtype conversion on either side.
import { type Handle, native } from './native.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensorsFileSync,
  type StDtype,
  type StEntry,
  writeSafetensorsFileSync,
} from './safetensors.js';
import { type DType, Tensor } from './tensor.js';

const TO_ST: Readonly<Record<DType, StDtype>> = {
  float32: 'F32',
  float64: 'F64',
  int64: 'I64',
  int32: 'I32',
  uint8: 'U8',
  bool: 'BOOL',
  float16: 'F16',
  bfloat16: 'BF16',
};
const FROM_ST: Partial<Record<StDtype, DType>> = Object.fromEntries(
  Object.entries(TO_ST).map(([k, v]) => [v, k as DType]),
);

/** The safetensors dtype of an engine dtype. */
export function stDtypeOf(dtype: DType): StDtype {
  const st = TO_ST[dtype];
  if (!st) throw new Error(`safetensors: no safetensors dtype for '${dtype}'`);
  return st;
}

/** The engine dtype of a safetensors dtype (I16 and I8 have none). */
export function dtypeOfSt(st: StDtype): DType {
  const dt = FROM_ST[st];
  if (!dt) {
    throw new Error(`safetensors dtype ${st} has no engine dtype (supported: ${Object.keys(FROM_ST).join(', ')})`);
  }
  return dt;
}

/** One tensor's raw bytes (contiguous, on the CPU, detached) as a safetensors entry. */
export function toEntry(t: Tensor): StEntry {
  const buf = native.toBuffer(t.handle) as ArrayBuffer;
  return { dtype: stDtypeOf(t.dtype), shape: [...t.shape], data: new Uint8Array(buf) };
}

/** A new tensor (CPU unless device is given) holding a copy of the entry's bytes. */
export function fromEntry(e: StEntry, device?: string): Tensor {
  return new Tensor(native.fromBuffer(e.data, e.shape, dtypeOfSt(e.dtype), device) as Handle);
}

/** Tensors by name → safetensors entries (bytes copied). */
export function toEntries(tensors: Map<string, Tensor> | Record<string, Tensor>): Record<string, StEntry> {
  const out: Record<string, StEntry> = {};
  const it = tensors instanceof Map ? tensors.entries() : Object.entries(tensors);
  for (const [name, t] of it) {
    try {
      out[name] = toEntry(t);
    } catch (e) {
      throw new Error(`tensor '${name}': ${(e as Error).message}`);
    }
  }
  return out;
}

/** safetensors entries → new tensors by name (in the entries' order). */
export function fromEntries(entries: Record<string, StEntry>, device?: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  try {
    for (const [name, e] of Object.entries(entries)) {
      try {
        out.set(name, fromEntry(e, device));
      } catch (err) {
        throw new Error(`tensor '${name}': ${(err as Error).message}`);
      }
    }
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  }
  return out;
}

/** Serialises tensors (and optional string metadata) to safetensors bytes. */
export function encodeTensors(
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Buffer {
  return encodeSafetensors(toEntries(tensors), metadata);
}

/** Parses safetensors bytes into tensors; errors name `source`. */
export function decodeTensors(buf: Uint8Array, source = '<buffer>', device?: string): Map<string, Tensor> {
  const f = decodeSafetensors(buf, source);
  try {
    return fromEntries(f.entries, device);
  } catch (e) {
    throw new Error(`safetensors ${source}: ${(e as Error).message}`);
  }
}

/** Writes tensors to a safetensors file (atomically: temp file + rename). Errors name the file. */
export function saveTensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  let entries: Record<string, StEntry>;
  try {
    entries = toEntries(tensors);
  } catch (e) {
    throw new Error(`saving ${path}: ${(e as Error).message}`);
  }
  try {
    writeSafetensorsFileSync(path, entries, metadata);
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.includes(path) ? msg : `saving ${path}: ${msg}`);
  }
}

/** Reads a safetensors file into new CPU tensors (or on device). Errors name the file. */
export function loadTensors(path: string, device?: string): Map<string, Tensor> {
  let entries: Record<string, StEntry>;
  try {
    entries = readSafetensorsFileSync(path).entries;
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.includes(path) ? msg : `loading ${path}: ${msg}`);
  }
  try {
    return fromEntries(entries, device);
  } catch (e) {
    throw new Error(`loading ${path}: ${(e as Error).message}`);
  }
}

/** The string metadata (`__metadata__`) of a safetensors file. */
export function loadMetadata(path: string): Record<string, string> {
  return readSafetensorsFileSync(path).metadata;
}
