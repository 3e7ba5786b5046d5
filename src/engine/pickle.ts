// PyTorch `.pth`/`.pt` files (torch.save's zip format) read without Python, like
// `torch.load(weights_only=True)`: the pickle is interpreted by a restricted reader that rebuilds tensors
// (torch._utils._rebuild_tensor_v2 / _rebuild_parameter over the storages in the zip's data/ entries) and
// plain containers (dict, OrderedDict, list, tuple, set, primitives) only. It never constructs or calls
// anything else:
// - an object of another class built the data-only way (NEWOBJ + BUILD, e.g. the argparse.Namespace
//   under `args` in DINO's checkpoint.pth) becomes an opaque placeholder (`Opaque`) so the tensors beside
//   it still load;
// - a tensor of a foreign type (a torch.Tensor subclass, or any other global's result) becomes an Opaque
//   naming that global; whoever needs it as a tensor refuses it in one line;
// - a call of any other global through REDUCE (what os.system via __reduce__ compiles to) refuses the
//   whole file before anything else is read; nothing is ever called.
// The archive around the pickle (zip, storages under data/) is read by torch_archive.ts.
import type { StDtype } from './safetensors.js';

/** Python 2 module names that protocol-2 pickles carry (pickle's fix_imports). */
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

/** A global (module.name) the pickle referred to; never resolved to anything callable. */
export class PyGlobal {
  readonly module: string;
  constructor(
    module: string,
    readonly name: string,
  ) {
    this.module = PY2_MODULES[module] ?? module;
  }
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A placeholder for an object the reader does not rebuild (its class named, its state kept as data). */
export class Opaque {
  state: unknown = undefined;
  constructor(
    readonly global: string,
    readonly why: string,
  ) {}
}

/** A storage of the archive: data/<key>, `numel` elements of `dtype`. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: StDtype,
    readonly numel: number,
  ) {}
}

/** A tensor view of a storage (not read until asked for). */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
  get dtype(): StDtype {
    return this.storage.dtype;
  }
}

export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PickleError';
  }
}

const STORAGE_DTYPES: Record<string, StDtype> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const REBUILD_TENSOR = new Set(['torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor']);
const REBUILD_PARAM = new Set(['torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state']);
const PLAIN_TENSOR_TYPES = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter']);
/** Globals whose REDUCE only describes data (numpy scalars/arrays, devices): kept as placeholders, never called. */
const DATA_ONLY = new Set([
  'numpy.core.multiarray.scalar',
  'numpy._core.multiarray.scalar',
  'numpy.dtype',
  'numpy.core.multiarray._reconstruct',
  'numpy._core.multiarray._reconstruct',
  'torch.device',
  'copyreg._reconstructor',
  'argparse.Namespace',
]);

// ---------------------------------------------------------------- the unpickler

/**
 * Interprets a pickle (protocols 0–5) with the rules above. Returns the loaded value: Map for dicts,
 * arrays for lists and tuples, number (bigint past 2^53), string, Uint8Array for bytes, boolean, null,
 * TensorRef, StorageRef, Opaque, PyGlobal.
 */
export function unpickle(buf: Uint8Array, source = '<pickle>'): unknown {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let pos = 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const fail = (msg: string): never => {
    throw new PickleError(`${source}: ${msg}`);
  };
  const need = (n: number) => {
    if (pos + n > buf.byteLength) fail('pickle is truncated');
  };
  const u8 = () => {
    need(1);
    return buf[pos++] as number;
  };
  const u16 = () => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = dv.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('length too large');
    return Number(v);
  };
  const bytes = (n: number) => {
    need(n);
    const b = buf.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const utf8 = (n: number) => new TextDecoder().decode(bytes(n));
  const line = () => {
    const end = buf.indexOf(0x0a, pos);
    if (end < 0) fail('pickle is truncated (no newline)');
    const s = new TextDecoder('latin1').decode(buf.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = () => {
    if (stack.length === 0) fail('stack underflow');
    return stack.pop();
  };
  const top = () => {
    if (stack.length === 0) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('MARK missing');
    return stack.splice(m as number);
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i] as number);
    if ((b[b.length - 1] as number) & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const setItem = (d: unknown, k: unknown, v: unknown) => {
    if (d instanceof Map) d.set(k, v);
    else if (!(d instanceof Opaque)) fail(`SETITEM on a ${typeName(d)}`);
  };
  const append = (l: unknown, v: unknown) => {
    if (Array.isArray(l)) l.push(v);
    else if (l instanceof Set) l.add(v);
    else if (!(l instanceof Opaque)) fail(`APPEND on a ${typeName(l)}`);
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length && marks[marks.length - 1] === stack.length) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(longFrom(bytes(u8())));
        break;
      case 0x8b: // LONG4
        stack.push(longFrom(bytes(u32())));
        break;
      case 0x49: {
        // INT (text): also the protocol-0 booleans I01/I00
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : Number.parseInt(s, 10));
        break;
      }
      case 0x4c: // LONG (text)
        stack.push(Number.parseInt(line().replace(/L$/, ''), 10));
        break;
      case 0x47: {
        // BINFLOAT (big-endian double)
        need(8);
        stack.push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x46: // FLOAT (text)
        stack.push(Number.parseFloat(line()));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(u8()));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(u64()));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text; ASCII is enough for keys)
        stack.push(line());
        break;
      case 0x54: // BINSTRING
        stack.push(new TextDecoder('latin1').decode(bytes(i32())));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder('latin1').decode(bytes(u8())));
        break;
      case 0x53: {
        // STRING (quoted text)
        const s = line();
        stack.push(s.slice(1, -1));
        break;
      }
      case 0x42: // BINBYTES
        stack.push(new Uint8Array(bytes(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(new Uint8Array(bytes(u8())));
        break;
      case 0x8e: // BINBYTES8
        stack.push(new Uint8Array(bytes(u64())));
        break;
      case 0x96: // BYTEARRAY8
        stack.push(new Uint8Array(bytes(u64())));
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        const d = new Map();
        for (let i = 0; i + 1 < items.length; i += 2) d.set(items[i], items[i + 1]);
        stack.push(d);
        break;
      }
      case 0x6c: // LIST
      case 0x74: // TUPLE
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        stack.push([pop(), b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        stack.push([pop(), b, c]);
        break;
      }
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        const d = top();
        for (let i = 0; i + 1 < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        append(top(), v);
        break;
      }
      case 0x65: // APPENDS
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const l = top();
        for (const v of items) append(l, v);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: // PUT
        memo.set(Number.parseInt(line(), 10), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET
        const i = op === 0x68 ? u8() : op === 0x6a ? u32() : Number.parseInt(line(), 10);
        if (!memo.has(i)) fail(`memo ${i} missing`);
        stack.push(memo.get(i));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        stack.push(new PyGlobal(module, line()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(new PyGlobal(module as string, name as string));
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistent(pop(), fail));
        break;
      case 0x50: // PERSID (text ids are not what torch writes)
        fail('text persistent ids are not supported');
        break;
      case 0x52: {
        // REDUCE: callable(*args) — only the rebuild functions and containers, never a call
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, Array.isArray(args) ? args : [], fail));
        break;
      }
      case 0x81: // NEWOBJ: cls.__new__(cls, *args) → a placeholder
      case 0x92: {
        // NEWOBJ_EX
        if (op === 0x92) pop();
        pop();
        const cls = pop();
        stack.push(newObject(cls));
        break;
      }
      case 0x62: {
        // BUILD: obj.__setstate__(state) → state kept as data on placeholders, ignored on dicts (attributes)
        const state = pop();
        const obj = top();
        if (obj instanceof Opaque) obj.state = state;
        break;
      }
      case 0x69: {
        // INST (protocol 0 object)
        const module = line();
        const name = line();
        popMark();
        stack.push(newObject(new PyGlobal(module, name)));
        break;
      }
      case 0x6f: {
        // OBJ
        const items = popMark();
        stack.push(newObject(items[0]));
        break;
      }
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        fail('pickle extension registry codes are not supported');
        break;
      default:
        fail(`unknown pickle opcode 0x${op.toString(16)} at byte ${pos - 1}`);
    }
  }
}

function typeName(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof Map) return 'dict';
  if (Array.isArray(v)) return 'list/tuple';
  if (v instanceof Opaque) return v.global;
  if (v instanceof PyGlobal) return v.qualified;
  return typeof v;
}

function newObject(cls: unknown): unknown {
  if (cls instanceof PyGlobal) {
    if (cls.qualified === 'collections.OrderedDict' || cls.qualified === 'builtins.dict') return new Map();
    return new Opaque(cls.qualified, 'an object of a class this reader does not rebuild');
  }
  return new Opaque(typeName(cls), 'an object of an unknown class');
}

function persistent(pid: unknown, fail: (m: string) => never): unknown {
  // ('storage', torch.<X>Storage, key, location, numel)
  if (!Array.isArray(pid) || pid[0] !== 'storage') return fail(`unsupported persistent id ${typeName(pid)}`);
  const [, type, key, , numel] = pid;
  if (!(type instanceof PyGlobal) || type.module !== 'torch') return fail(`unsupported storage type ${typeName(type)}`);
  const dtype = STORAGE_DTYPES[type.name];
  if (!dtype) return new Opaque(type.qualified, 'a storage type this reader does not read');
  if (typeof key !== 'string' || typeof numel !== 'number') return fail('malformed storage id');
  return new StorageRef(key, dtype, numel);
}

function rebuildTensor(args: unknown[], fail: (m: string) => never): unknown {
  const [storage, offset, size, stride] = args;
  if (storage instanceof Opaque) return storage;
  if (!(storage instanceof StorageRef)) return fail(`_rebuild_tensor_v2 got a ${typeName(storage)} as its storage`);
  const ints = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'number');
  if (typeof offset !== 'number' || !ints(size) || !ints(stride)) return fail('malformed _rebuild_tensor_v2 arguments');
  return new TensorRef(storage, offset, size as number[], stride as number[]);
}

function reduce(fn: unknown, args: unknown[], fail: (m: string) => never): unknown {
  if (!(fn instanceof PyGlobal)) {
    if (fn instanceof Opaque) return new Opaque(fn.global, 'the result of calling a placeholder');
    return fail(`REDUCE of a ${typeName(fn)}`);
  }
  const q = fn.qualified;
  if (REBUILD_TENSOR.has(q)) return rebuildTensor(args, fail);
  if (REBUILD_PARAM.has(q)) {
    const t = args[0];
    return t instanceof TensorRef || t instanceof Opaque ? t : fail(`${q} got a ${typeName(t)}`);
  }
  if (q === 'torch._tensor._rebuild_from_type_v2' || q === 'torch._tensor._rebuild_from_type') {
    // (func, new_type, args, state): a plain Tensor/Parameter is rebuilt; a subclass only its own code could build
    const [func, type, inner] = args;
    const typeQ = type instanceof PyGlobal ? type.qualified : typeName(type);
    if (!PLAIN_TENSOR_TYPES.has(typeQ)) return new Opaque(typeQ, 'a tensor of a foreign type');
    return reduce(func, Array.isArray(inner) ? inner : [], fail);
  }
  if (q === 'collections.OrderedDict' || q === 'builtins.dict') {
    const d = new Map();
    const items = args[0];
    if (Array.isArray(items)) for (const kv of items) if (Array.isArray(kv)) d.set(kv[0], kv[1]);
    return d;
  }
  if (q === 'builtins.set' || q === 'builtins.frozenset') return new Set(Array.isArray(args[0]) ? args[0] : []);
  if (q === 'builtins.list' || q === 'builtins.tuple') return Array.isArray(args[0]) ? [...args[0]] : [];
  if (q === 'torch.Size') return Array.isArray(args[0]) ? [...args[0]] : [];
  if (q === '_codecs.encode' && typeof args[0] === 'string')
    return Uint8Array.from(args[0] as string, (c) => c.charCodeAt(0) & 0xff); // protocol-2 bytes (latin1)
  if (q === 'builtins.bytearray' || q === 'builtins.bytes')
    return args[0] instanceof Uint8Array ? args[0] : new Uint8Array();
  if (DATA_ONLY.has(q)) return new Opaque(q, 'a value of a type this reader does not rebuild');
  return fail(
    `refused: the pickle calls ${q}(…) when loaded; Locus's reader rebuilds tensors and plain containers only and runs nothing (re-save the weights as a plain state dict or safetensors)`,
  );
}
