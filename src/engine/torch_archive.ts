// torch.save's archive (PyTorch ≥ 1.6): a zip with <name>/data.pkl (the pickle, read by pickle.ts),
// <name>/data/<key> (one entry per storage, raw little-endian bytes), <name>/version and maybe byteorder.
// Entries are read on demand from the file (stored or deflated; zip64 sizes and offsets understood).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { PickleError, type TensorRef, unpickle } from './pickle.js';
import { ST_DTYPE_SIZE, type StEntry } from './safetensors.js';

interface ZipEntry {
  name: string;
  method: number;
  compSize: number;
  size: number;
  localOffset: number;
}

/** An open torch.save archive: its pickle and its storages, read on demand. */
export class TorchArchive {
  private readonly fd: number;
  private readonly entries = new Map<string, ZipEntry>();
  readonly prefix: string;
  private cached: { key: string; bytes: Uint8Array } | null = null;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    try {
      this.readDirectory();
      const pkl = [...this.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n) || n === 'data.pkl');
      if (!pkl) throw new PickleError(`${path}: no data.pkl in the archive (not a torch.save file)`);
      this.prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
      const order = this.entries.get(`${this.prefix}byteorder`);
      if (order && new TextDecoder().decode(this.read(order)).trim() !== 'little')
        throw new PickleError(`${path}: big-endian tensors are not supported`);
    } catch (e) {
      closeSync(this.fd);
      throw e;
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  private pread(offset: number, length: number): Buffer {
    const b = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(this.fd, b, got, length - got, offset + got);
      if (n === 0) throw new PickleError(`${this.path}: file is truncated`);
      got += n;
    }
    return b;
  }

  private readDirectory(): void {
    const size = fstatSync(this.fd).size;
    const tailLen = Math.min(size, 22 + 65535 + 20);
    const tail = this.pread(size - tailLen, tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--)
      if (tail.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    if (eocd < 0) throw new PickleError(`${this.path}: not a zip archive (a legacy torch.save file, or corrupt)`);
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    if (eocd >= 20 && tail.readUInt32LE(eocd - 20) === 0x07064b50) {
      const z64 = Number(tail.readBigUInt64LE(eocd - 20 + 8));
      const rec = this.pread(z64, 56);
      if (rec.readUInt32LE(0) === 0x06064b50) {
        count = Number(rec.readBigUInt64LE(32));
        cdSize = Number(rec.readBigUInt64LE(40));
        cdOffset = Number(rec.readBigUInt64LE(48));
      }
    }
    const cd = this.pread(cdOffset, cdSize);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw new PickleError(`${this.path}: corrupt zip central directory`);
      const method = cd.readUInt16LE(p + 10);
      let compSize = cd.readUInt32LE(p + 20);
      let usize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localOffset = cd.readUInt32LE(p + 42);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // zip64 extended information: the fields that are 0xFFFFFFFF, in order
      let e = p + 46 + nameLen;
      const eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          if (usize === 0xffffffff) {
            usize = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
          if (compSize === 0xffffffff) {
            compSize = Number(cd.readBigUInt64LE(q));
            q += 8;
          }
          if (localOffset === 0xffffffff) localOffset = Number(cd.readBigUInt64LE(q));
        }
        e += 4 + len;
      }
      this.entries.set(name, { name, method, compSize, size: usize, localOffset });
      p = eEnd + commentLen;
    }
  }

  private read(e: ZipEntry): Uint8Array {
    const lh = this.pread(e.localOffset, 30);
    if (lh.readUInt32LE(0) !== 0x04034b50) throw new PickleError(`${this.path}: corrupt zip entry ${e.name}`);
    const start = e.localOffset + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    const raw = this.pread(start, e.compSize);
    if (e.method === 0) return raw;
    if (e.method === 8) return inflateRawSync(raw);
    throw new PickleError(`${this.path}: zip entry ${e.name} uses compression method ${e.method}`);
  }

  /** The archive's object: the unpickled data.pkl. */
  load(): unknown {
    const e = this.entries.get(`${this.prefix}data.pkl`) as ZipEntry;
    return unpickle(this.read(e), this.path);
  }

  /** A tensor's values as a contiguous safetensors entry (its own dtype; strides and offset applied). */
  tensor(t: TensorRef): StEntry {
    const e = this.entries.get(`${this.prefix}data/${t.storage.key}`);
    if (!e) throw new PickleError(`${this.path}: storage data/${t.storage.key} missing from the archive`);
    // one storage may back many tensors (views, flat parameter buffers): the last one read is kept
    if (this.cached?.key !== t.storage.key) this.cached = { key: t.storage.key, bytes: this.read(e) };
    const raw = this.cached.bytes;
    const es = ST_DTYPE_SIZE[t.dtype];
    if (raw.byteLength < t.storage.numel * es)
      throw new PickleError(
        `${this.path}: storage data/${t.storage.key} is shorter than its ${t.storage.numel} elements`,
      );
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const out = new Uint8Array(numel * es);
    if (numel === 0) return { dtype: t.dtype, shape: [...t.shape], data: out };
    // contiguous strides → one copy; else an element-wise strided gather
    let contiguous = true;
    for (let i = t.shape.length - 1, s = 1; i >= 0; i--) {
      if ((t.shape[i] as number) !== 1 && t.stride[i] !== s) contiguous = false;
      s *= t.shape[i] as number;
    }
    let maxIndex = t.offset;
    for (let i = 0; i < t.shape.length; i++) maxIndex += ((t.shape[i] as number) - 1) * (t.stride[i] as number);
    if (maxIndex >= t.storage.numel || t.offset < 0)
      throw new PickleError(`${this.path}: a tensor view reaches past its storage data/${t.storage.key}`);
    if (contiguous) out.set(raw.subarray(t.offset * es, (t.offset + numel) * es));
    else {
      const idx = new Array<number>(t.shape.length).fill(0);
      for (let k = 0; k < numel; k++) {
        let src = t.offset;
        for (let d = 0; d < idx.length; d++) src += (idx[d] as number) * (t.stride[d] as number);
        out.set(raw.subarray(src * es, src * es + es), k * es);
        for (let d = idx.length - 1; d >= 0; d--) {
          idx[d] = (idx[d] as number) + 1;
          if ((idx[d] as number) < (t.shape[d] as number)) break;
          idx[d] = 0;
        }
      }
    }
    return { dtype: t.dtype, shape: [...t.shape], data: out };
  }
}

/** True when the file starts like a zip archive (torch.save's format since PyTorch 1.6). */
export function isZipFile(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(4);
    readSync(fd, b, 0, 4, 0);
    return b.readUInt32LE(0) === 0x04034b50;
  } finally {
    closeSync(fd);
  }
}
