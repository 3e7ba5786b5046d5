// safetensors reader/writer at the byte level (no engine dependency).
// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON header (padded with spaces),
// then the raw little-endian data buffer that the header's data_offsets index into.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';

export type StDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export type StEntry = { dtype: StDtype; shape: number[]; data: Uint8Array };

export interface StFile {
  entries: Record<string, StEntry>;
  metadata: Record<string, string>;
}

/** Bytes per element of each dtype. */
export const ST_DTYPE_SIZE: Readonly<Record<StDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const METADATA_KEY = '__metadata__';
// Same ceiling as the reference implementation: a larger header is almost surely garbage.
const MAX_HEADER_BYTES = 100_000_000;

if (endianness() !== 'LE') throw new Error('safetensors: only little-endian hosts are supported');

function isDtype(x: unknown): x is StDtype {
  return typeof x === 'string' && Object.hasOwn(ST_DTYPE_SIZE, x);
}

function isIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkEntry(name: string, e: StEntry): void {
  const where = `safetensors: tensor '${name}'`;
  if (name === METADATA_KEY) throw new Error(`safetensors: '${METADATA_KEY}' is reserved and cannot name a tensor`);
  if (!isDtype(e.dtype)) throw new Error(`${where}: unknown dtype ${JSON.stringify(e.dtype)}`);
  if (!Array.isArray(e.shape) || !e.shape.every(isIndex)) {
    throw new Error(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(e.shape)}`);
  }
  const want = numel(e.shape) * ST_DTYPE_SIZE[e.dtype];
  if (!(e.data instanceof Uint8Array) || e.data.byteLength !== want) {
    throw new Error(
      `${where}: ${e.dtype} [${e.shape.join(', ')}] needs ${want} bytes, data has ${e.data?.byteLength ?? 'none'}`,
    );
  }
}

/** Encodes tensors (laid out in sorted-name order, so output is deterministic) and optional string metadata. */
export function encodeSafetensors(entries: Record<string, StEntry>, metadata?: Record<string, string>): Buffer {
  const names = Object.keys(entries).sort();
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    const md: Record<string, string> = {};
    for (const k of Object.keys(metadata).sort()) {
      const v = metadata[k];
      if (typeof v !== 'string') throw new Error(`safetensors: metadata '${k}' must be a string, got ${typeof v}`);
      md[k] = v;
    }
    header[METADATA_KEY] = md;
  }
  let offset = 0;
  for (const name of names) {
    const e = entries[name] as StEntry;
    checkEntry(name, e);
    const end = offset + e.data.byteLength;
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerLen = Math.ceil(json.byteLength / 8) * 8;
  const out = Buffer.alloc(8 + headerLen + offset);
  out.writeBigUInt64LE(BigInt(headerLen), 0);
  json.copy(out, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const name of names) {
    const d = (entries[name] as StEntry).data;
    out.set(d, pos);
    pos += d.byteLength;
  }
  return out;
}

/** Decodes and strictly validates a safetensors buffer; every error names `source`. Tensor data is copied. */
export function decodeSafetensors(buf: Uint8Array, source = '<buffer>'): StFile {
  const fail = (msg: string): never => {
    throw new Error(`safetensors ${source}: ${msg}`);
  };
  if (buf.byteLength < 8) {
    fail(`file is truncated: ${buf.byteLength} bytes, shorter than the 8-byte header length prefix`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = view.getBigUint64(0, true);
  const avail = buf.byteLength - 8;
  if (n64 === 0n) fail('bad header length 0 (not a safetensors file?)');
  if (n64 > BigInt(avail)) {
    const hint = n64 > BigInt(MAX_HEADER_BYTES) ? 'not a safetensors file, or corrupt' : 'file is truncated';
    fail(`bad header length ${n64}: exceeds the ${avail} bytes that follow the prefix (${hint})`);
  }
  const n = Number(n64);
  if (n > MAX_HEADER_BYTES) fail(`bad header length ${n}: over the ${MAX_HEADER_BYTES}-byte limit`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n));
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');

  const metadata: Record<string, string> = {};
  const spans: Array<{ name: string; begin: number; end: number; dtype: StDtype; shape: number[] }> = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (typeof info !== 'object' || info === null || Array.isArray(info)) fail(`'${METADATA_KEY}' is not an object`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`metadata '${k}' is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const t = `tensor '${name}'`;
    if (typeof info !== 'object' || info === null) return fail(`${t}: entry is not an object`);
    const { dtype, shape, data_offsets: offs } = info as Record<string, unknown>;
    if (!isDtype(dtype)) return fail(`${t}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || !shape.every(isIndex)) {
      return fail(`${t}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isIndex) || offs[0] > offs[1]) {
      return fail(`${t}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const want = numel(shape) * ST_DTYPE_SIZE[dtype];
    if (end - begin !== want) {
      fail(
        `${t}: size mismatch: ${dtype} [${shape.join(', ')}] needs ${want} bytes, data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    spans.push({ name, begin, end, dtype, shape: shape as number[] });
  }

  const dataStart = 8 + n;
  const dataLen = buf.byteLength - dataStart;
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const needed = spans.reduce((m, s) => Math.max(m, s.end), 0);
  if (needed > dataLen) {
    const last = spans.find((s) => s.end === needed);
    fail(
      `file is truncated: tensor '${last?.name}' ends at data byte ${needed}, but the data region has only ${dataLen} bytes`,
    );
  }
  let cursor = 0;
  for (const s of spans) {
    if (s.begin < cursor)
      fail(`tensor '${s.name}': data_offsets [${s.begin}, ${s.end}] overlap the previous tensor (ends at ${cursor})`);
    if (s.begin > cursor) fail(`data region not fully covered: bytes [${cursor}, ${s.begin}) belong to no tensor`);
    cursor = s.end;
  }
  if (cursor !== dataLen)
    fail(`data region not fully covered: ${dataLen - cursor} trailing bytes after the last tensor`);

  const entries: Record<string, StEntry> = {};
  for (const s of spans) {
    // A copy (Buffer#slice would be a view): callers get their own aligned ArrayBuffer.
    entries[s.name] = {
      dtype: s.dtype,
      shape: s.shape,
      data: new Uint8Array(buf.subarray(dataStart + s.begin, dataStart + s.end)),
    };
  }
  return { entries, metadata };
}

function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Writes atomically: a temp file in the same directory, fsync, rename over `path`. */
export async function writeSafetensorsFile(
  path: string,
  entries: Record<string, StEntry>,
  metadata?: Record<string, string>,
): Promise<void> {
  const bytes = encodeSafetensors(entries, metadata);
  const tmp = tempPath(path);
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export function writeSafetensorsFileSync(
  path: string,
  entries: Record<string, StEntry>,
  metadata?: Record<string, string>,
): void {
  const bytes = encodeSafetensors(entries, metadata);
  const tmp = tempPath(path);
  try {
    const fd = openSync(tmp, 'wx');
    try {
      let off = 0;
      while (off < bytes.byteLength) off += writeSync(fd, bytes, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export async function readSafetensorsFile(path: string): Promise<StFile> {
  return decodeSafetensors(await readFile(path), path);
}

export function readSafetensorsFileSync(path: string): StFile {
  return decodeSafetensors(readFileSync(path), path);
}

/** The __metadata__ of a safetensors file from its header alone (no tensor data read, nothing validated past it). */
export function readSafetensorsMetadataSync(path: string): Record<string, string> {
  const fd = openSync(path, 'r');
  try {
    const len = Buffer.alloc(8);
    readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    if (n <= 0 || n > MAX_HEADER_BYTES) throw new Error(`safetensors ${path}: bad header length ${n}`);
    const h = Buffer.alloc(n);
    readSync(fd, h, 0, n, 8);
    return (JSON.parse(h.toString('utf8'))[METADATA_KEY] ?? {}) as Record<string, string>;
  } finally {
    closeSync(fd);
  }
}

type Typed =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array
  | Uint16Array;

/** Builds an entry from a typed array (bytes copied). F16/BF16 take their raw bits as a Uint16Array. */
export function stEntryFrom(dtype: StDtype, shape: number[], values: Typed): StEntry {
  const data = new Uint8Array(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  const e: StEntry = { dtype, shape: [...shape], data };
  checkEntry('<new>', e);
  return e;
}

/** A typed-array view of an entry's data (F16/BF16: raw bits as Uint16Array; BOOL: Uint8Array of 0/1). */
export function stTypedArray(e: StEntry): Typed {
  const { buffer, byteOffset, byteLength } = e.data;
  const size = ST_DTYPE_SIZE[e.dtype];
  // Typed arrays need aligned offsets; copy when the view is misaligned.
  const aligned = byteOffset % size === 0;
  const buf = aligned ? buffer : new Uint8Array(e.data).buffer;
  const off = aligned ? byteOffset : 0;
  const len = byteLength / size;
  switch (e.dtype) {
    case 'F64':
      return new Float64Array(buf, off, len);
    case 'F32':
      return new Float32Array(buf, off, len);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buf, off, len);
    case 'I64':
      return new BigInt64Array(buf, off, len);
    case 'I32':
      return new Int32Array(buf, off, len);
    case 'I16':
      return new Int16Array(buf, off, len);
    case 'I8':
      return new Int8Array(buf, off, len);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf, off, len);
  }
}
