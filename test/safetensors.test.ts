import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensorsFile,
  readSafetensorsFileSync,
  type StEntry,
  stEntryFrom,
  stTypedArray,
  writeSafetensorsFile,
  writeSafetensorsFileSync,
} from '../src/engine/safetensors.js';

// Debian's python (has struct/json, numpy and maybe torch); the python3 first on PATH is another one.
const PY = '/usr/bin/python3';
const hasPy = existsSync(PY);
const pyHas = (mod: string): boolean => {
  if (!hasPy) return false;
  try {
    execFileSync(PY, ['-c', `import ${mod}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const hasNumpy = pyHas('numpy');
const hasTorch = pyHas('torch');

const dir = mkdtempSync(join(tmpdir(), 'locus-st-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sample(): Record<string, StEntry> {
  return {
    'blocks.0.attn.qkv.weight': stEntryFrom('F32', [2, 3], Float32Array.from([1, -2.5, 3.25, 0, 1e-8, -7])),
    pos_embed: stEntryFrom('F64', [1, 2], Float64Array.from([Math.PI, -Math.E])),
    step: stEntryFrom('I64', [], BigInt64Array.from([123456789012345n])),
    labels: stEntryFrom('I32', [3], Int32Array.from([-1, 0, 2147483647])),
    mask: stEntryFrom('BOOL', [4], Uint8Array.from([1, 0, 0, 1])),
    half: stEntryFrom('F16', [2], Uint16Array.from([0x3c00, 0xc000])),
    bf: stEntryFrom('BF16', [1], Uint16Array.from([0x3f80])),
    i8: stEntryFrom('I8', [2], Int8Array.from([-128, 127])),
    i16: stEntryFrom('I16', [1, 1], Int16Array.from([-300])),
    u8: stEntryFrom('U8', [3], Uint8Array.from([0, 128, 255])),
    empty: stEntryFrom('F32', [0, 4], new Float32Array(0)),
  };
}

/** A hand-made file: JSON header as given (no padding) followed by `data`. */
function raw(header: unknown, data: Uint8Array | number = 0): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength));
  return Buffer.concat([len, json, body]);
}

describe('safetensors encode/decode', () => {
  test('round trip is byte-exact and keeps values, shapes, dtypes and metadata', () => {
    const entries = sample();
    const md = { format: 'pt', locus: 'test' };
    const a = encodeSafetensors(entries, md);
    const headerLen = Number(a.readBigUInt64LE(0));
    assert.equal(headerLen % 8, 0, 'header padded to a multiple of 8');
    const dec = decodeSafetensors(a);
    assert.deepEqual(dec.metadata, md);
    assert.deepEqual(Object.keys(dec.entries).sort(), Object.keys(entries).sort());
    for (const [k, e] of Object.entries(entries)) {
      const d = dec.entries[k] as StEntry;
      assert.equal(d.dtype, e.dtype, k);
      assert.deepEqual(d.shape, e.shape, k);
      assert.deepEqual([...d.data], [...e.data], k);
    }
    const b = encodeSafetensors(dec.entries, dec.metadata);
    assert.ok(a.equals(b), 'encode(decode(encode(x))) is identical');
    // Key insertion order does not change the bytes.
    const reversed = Object.fromEntries(Object.entries(entries).reverse());
    assert.ok(encodeSafetensors(reversed, md).equals(a));
    assert.deepEqual([...(stTypedArray(dec.entries.labels as StEntry) as Int32Array)], [-1, 0, 2147483647]);
    assert.equal((stTypedArray(dec.entries.step as StEntry) as BigInt64Array)[0], 123456789012345n);
  });

  test('tensors are laid out in sorted-key order with a space-padded header', () => {
    const buf = encodeSafetensors({
      b: stEntryFrom('U8', [1], Uint8Array.from([2])),
      a: stEntryFrom('U8', [1], Uint8Array.from([1])),
    });
    const n = Number(buf.readBigUInt64LE(0));
    const text = buf.subarray(8, 8 + n).toString('utf8');
    assert.match(text, /^\{"a":\{"dtype":"U8","shape":\[1\],"data_offsets":\[0,1\]\},"b":.*\} *$/);
    assert.deepEqual([...buf.subarray(8 + n)], [1, 2]);
  });

  test('encode rejects inconsistent entries', () => {
    assert.throws(
      () => encodeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: new Uint8Array(12) } }),
      /tensor 'w'.*needs 16 bytes, data has 12/,
    );
    assert.throws(
      () => encodeSafetensors({ w: { dtype: 'F8' as 'F32', shape: [1], data: new Uint8Array(1) } }),
      /unknown dtype "F8"/,
    );
    assert.throws(() => encodeSafetensors({ __metadata__: stEntryFrom('U8', [1], new Uint8Array(1)) }), /reserved/);
  });

  test('decode validates strictly and names the source', () => {
    const src = '/models/x.safetensors';
    const bad = (buf: Uint8Array, re: RegExp) =>
      assert.throws(
        () => decodeSafetensors(buf, src),
        (e: Error) => e.message.includes(src) && re.test(e.message),
      );
    const f32 = (offs: [number, number], shape = [1]) => ({ dtype: 'F32', shape, data_offsets: offs });
    bad(new Uint8Array(5), /truncated.*shorter than the 8-byte/);
    bad(raw('{}').subarray(0, 9), /bad header length 2.*truncated/);
    bad(raw('{not json'), /not valid JSON/);
    bad(raw('[1,2]'), /not a JSON object/);
    bad(raw({ w: { dtype: 'F8', shape: [1], data_offsets: [0, 1] } }, 1), /tensor 'w': unknown dtype "F8"/);
    bad(raw({ w: f32([0, 8], [3]) }, 8), /tensor 'w': size mismatch.*needs 12 bytes/);
    bad(raw({ w: f32([0, 4], [-1]) }, 4), /shape must be/);
    bad(raw({ w: f32([4, 0]) }, 4), /data_offsets must be/);
    bad(raw({ a: f32([0, 4]), b: f32([2, 6]) }, 6), /tensor 'b'.*overlap/);
    bad(raw({ a: f32([0, 4]), b: f32([8, 12]) }, 12), /not fully covered: bytes \[4, 8\)/);
    bad(raw({ a: f32([0, 4]) }, 6), /not fully covered: 2 trailing bytes/);
    bad(raw({ a: f32([0, 4]), b: f32([4, 8]) }, 6), /truncated: tensor 'b' ends at data byte 8.*only 6 bytes/);
    bad(raw({ __metadata__: { n: 1 } }), /metadata 'n' is not a string/);
    const huge = Buffer.alloc(16);
    huge.write('GARBAGE!notst', 0, 'latin1');
    bad(huge, /bad header length \d+: exceeds the 8 bytes.*not a safetensors file/);
    bad(Buffer.alloc(16), /bad header length 0/);
  });

  test('decode accepts an unpadded header and out-of-order offsets', () => {
    const data = new Uint8Array(Float32Array.from([5, 6]).buffer);
    const dec = decodeSafetensors(
      raw(
        { z: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, a: { dtype: 'F32', shape: [], data_offsets: [4, 8] } },
        data,
      ),
    );
    assert.deepEqual([...(stTypedArray(dec.entries.z as StEntry) as Float32Array)], [5]);
    assert.deepEqual([...(stTypedArray(dec.entries.a as StEntry) as Float32Array)], [6]);
  });
});

describe('safetensors files', () => {
  test('atomic write leaves no temp files and overwrites; sync and async agree', async () => {
    const p = join(dir, 'atomic.safetensors');
    writeFileSync(p, 'old contents');
    await writeSafetensorsFile(p, sample(), { v: '1' });
    const p2 = join(dir, 'atomic-sync.safetensors');
    writeSafetensorsFileSync(p2, sample(), { v: '1' });
    assert.ok(readFileSync(p).equals(readFileSync(p2)));
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.tmp')),
      [],
    );
    assert.equal((await readSafetensorsFile(p)).metadata.v, '1');
    assert.equal(readSafetensorsFileSync(p2).metadata.v, '1');
  });

  test('a truncated file gives an error naming the file and saying truncated', async () => {
    const p = join(dir, 'trunc.safetensors');
    await writeSafetensorsFile(p, sample());
    const full = readFileSync(p).byteLength;
    truncateSync(p, full - 3); // cut inside the data region
    await assert.rejects(readSafetensorsFile(p), (e: Error) => e.message.includes(p) && /truncated/.test(e.message));
    truncateSync(p, 40); // cut inside the header
    await assert.rejects(readSafetensorsFile(p), (e: Error) => e.message.includes(p) && /truncated/.test(e.message));
    truncateSync(p, 3);
    assert.throws(
      () => readSafetensorsFileSync(p),
      (e: Error) => e.message.includes(p) && /truncated/.test(e.message),
    );
  });

  test('reads a file written by an independent Python writer', { skip: !hasPy && `${PY} absent` }, async () => {
    const p = join(dir, 'py.safetensors');
    // Minimal writer: tensors in reverse-sorted data order, unpadded header, metadata present.
    const code = `
import json, struct, sys
w = struct.pack('<6f', 1.0, 2.0, 3.0, -4.5, 0.25, 1e-3)
ids = struct.pack('<4q', -1, 0, 7, 2**62)
hdr = {"ids": {"dtype": "I64", "shape": [4], "data_offsets": [0, len(ids)]},
       "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [len(ids), len(ids) + len(w)]},
       "__metadata__": {"format": "pt"}}
h = json.dumps(hdr).encode('utf-8')
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + ids + w)
`;
    execFileSync(PY, ['-c', code, p]);
    const { entries, metadata } = await readSafetensorsFile(p);
    assert.deepEqual(metadata, { format: 'pt' });
    const w = entries.w as StEntry;
    assert.equal(w.dtype, 'F32');
    assert.deepEqual(w.shape, [2, 3]);
    assert.deepEqual([...(stTypedArray(w) as Float32Array)], [1, 2, 3, -4.5, 0.25, Math.fround(1e-3)]);
    const ids = entries.ids as StEntry;
    assert.deepEqual([...(stTypedArray(ids) as BigInt64Array)], [-1n, 0n, 7n, 2n ** 62n]);
  });

  test('a file written by Locus is read by Python with the same values', {
    skip: !hasPy && `${PY} absent`,
  }, async () => {
    const p = join(dir, 'locus.safetensors');
    await writeSafetensorsFile(p, sample(), { producer: 'locus' });
    // Hand parser: struct + json, values decoded with struct (and numpy / torch when present).
    const code = `
import json, struct, sys
raw = open(sys.argv[1], 'rb').read()
n, = struct.unpack('<Q', raw[:8])
hdr = json.loads(raw[8:8 + n].decode('utf-8'))
data = raw[8 + n:]
fmt = {"F64": "d", "F32": "f", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B", "BOOL": "?", "F16": "e", "BF16": "H"}
out = {"__metadata__": hdr.pop("__metadata__", {}), "tensors": {}}
for k, v in hdr.items():
    b, e = v["data_offsets"]
    cnt = 1
    for s in v["shape"]: cnt *= s
    vals = list(struct.unpack('<%d%s' % (cnt, fmt[v["dtype"]]), data[b:e]))
    out["tensors"][k] = {"dtype": v["dtype"], "shape": v["shape"], "values": [str(x) if v["dtype"] == "I64" else x for x in vals]}
if sys.argv[2] == "1":
    import numpy as np
    w = np.frombuffer(data, dtype='<f4', count=6, offset=hdr["blocks.0.attn.qkv.weight"]["data_offsets"][0]).reshape(2, 3)
    out["numpy_w"] = w.tolist()
if sys.argv[3] == "1":
    import torch
    b, e = hdr["pos_embed"]["data_offsets"]
    t = torch.frombuffer(bytearray(data[b:e]), dtype=torch.float64).reshape(hdr["pos_embed"]["shape"])
    out["torch_pos"] = t.tolist()
    b, e = hdr["step"]["data_offsets"]
    out["torch_step"] = str(torch.frombuffer(bytearray(data[b:e]), dtype=torch.int64).item())
print(json.dumps(out))
`;
    const res = JSON.parse(
      execFileSync(PY, ['-c', code, p, hasNumpy ? '1' : '0', hasTorch ? '1' : '0'], { encoding: 'utf8' }),
    );
    assert.deepEqual(res.__metadata__, { producer: 'locus' });
    const t = res.tensors;
    const w = [1, -2.5, 3.25, 0, 1e-8, -7].map(Math.fround);
    assert.deepEqual(t['blocks.0.attn.qkv.weight'].values, w);
    assert.deepEqual(t['blocks.0.attn.qkv.weight'].shape, [2, 3]);
    assert.deepEqual(t.pos_embed.values, [Math.PI, -Math.E]);
    assert.deepEqual(t.step.values, ['123456789012345']);
    assert.deepEqual(t.step.shape, []);
    assert.deepEqual(t.labels.values, [-1, 0, 2147483647]);
    assert.deepEqual(t.mask.values, [true, false, false, true]);
    assert.deepEqual(t.half.values, [1, -2]);
    assert.deepEqual(t.i8.values, [-128, 127]);
    assert.deepEqual(t.i16.values, [-300]);
    assert.deepEqual(t.u8.values, [0, 128, 255]);
    assert.deepEqual(t.empty.shape, [0, 4]);
    assert.deepEqual(t.empty.values, []);
    if (hasNumpy) assert.deepEqual(res.numpy_w, [w.slice(0, 3), w.slice(3)]);
    if (hasTorch) {
      assert.deepEqual(res.torch_pos, [[Math.PI, -Math.E]]);
      assert.equal(res.torch_step, '123456789012345');
    }
  });
});
