// ONNX export of the evaluated ViT backbone (opset 17, IR version 8), at its native input size.
//
// Graph: images [N,3,H,W] (N dynamic) → Conv (patch embedding) → Reshape/Transpose to [N,L,D] → Concat
// with the CLS token (Expand to the batch) → Add pos_embed (the stored one: at the native grid forward()
// does not interpolate) → per block: LayerNormalization, qkv MatMul+Add, Reshape/Transpose into heads,
// Gather q/k/v, MatMul·Mul(scale)·Softmax·MatMul, Transpose/Reshape, proj MatMul+Add, residual Add,
// LayerNormalization, fc1 MatMul+Add, exact GELU as 0.5·x·(1+Erf(x·(1/√2))) (the Gelu op needs opset 20),
// fc2 MatMul+Add, residual Add → final LayerNormalization → cls = Gather(token 0) [N,D], patches = Slice
// [N,L,D]. Ops: Conv, Reshape, Transpose, Shape, Concat, Expand, Add, Mul, MatMul, LayerNormalization,
// Gather, Softmax, Erf, Slice. Weights are float32 initializers (raw_data, little-endian) under their
// timm/DINO state-dict names; Linear weights are stored transposed ([in, out], name suffix `.T`) so that
// the MatMul needs no Transpose node.
//
// The protobuf is written with protobufjs from the subset of onnx.proto (field numbers as upstream)
// that this file needs.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import protobuf from 'protobufjs';
import type { Tensor } from '../engine/index.js';
import type { LayerNorm, Linear } from '../nn/layers.js';
import type { VisionTransformer } from '../nn/vit.js';

export const ONNX_OPSET = 17;
const IR_VERSION = 8; // the IR version that goes with opset 17 (ONNX 1.12)

// TensorProto.DataType and AttributeProto.AttributeType values used here.
const FLOAT = 1;
const INT64 = 7;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_INTS = 7;

const field = (type: string, id: number, rule?: 'repeated') => (rule ? { type, id, rule } : { type, id });

// proto2 (protobufjs's default): repeated scalars are unpacked, as onnx.proto declares `dims` and `ints`.
const SCHEMA = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: {
          fields: {
            name: field('string', 1),
            type: field('int32', 20), // AttributeType enum, kept as its number
            f: field('float', 2),
            i: field('int64', 3),
            ints: field('int64', 8, 'repeated'),
          },
        },
        ValueInfoProto: { fields: { name: field('string', 1), type: field('TypeProto', 2) } },
        NodeProto: {
          fields: {
            input: field('string', 1, 'repeated'),
            output: field('string', 2, 'repeated'),
            name: field('string', 3),
            op_type: field('string', 4),
            domain: field('string', 7),
            attribute: field('AttributeProto', 5, 'repeated'),
          },
        },
        TensorProto: {
          fields: {
            dims: field('int64', 1, 'repeated'),
            data_type: field('int32', 2),
            name: field('string', 8),
            raw_data: field('bytes', 9),
          },
        },
        TensorShapeProto: {
          fields: { dim: field('Dimension', 1, 'repeated') },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dim_value', 'dim_param'] } },
              fields: { dim_value: field('int64', 1), dim_param: field('string', 2) },
            },
          },
        },
        TypeProto: {
          oneofs: { value: { oneof: ['tensor_type'] } },
          fields: { tensor_type: field('Tensor', 1) },
          nested: {
            Tensor: { fields: { elem_type: field('int32', 1), shape: field('TensorShapeProto', 2) } },
          },
        },
        GraphProto: {
          fields: {
            node: field('NodeProto', 1, 'repeated'),
            name: field('string', 2),
            initializer: field('TensorProto', 5, 'repeated'),
            doc_string: field('string', 10),
            input: field('ValueInfoProto', 11, 'repeated'),
            output: field('ValueInfoProto', 12, 'repeated'),
          },
        },
        OperatorSetIdProto: { fields: { domain: field('string', 1), version: field('int64', 2) } },
        StringStringEntryProto: { fields: { key: field('string', 1), value: field('string', 2) } },
        ModelProto: {
          fields: {
            ir_version: field('int64', 1),
            opset_import: field('OperatorSetIdProto', 8, 'repeated'),
            producer_name: field('string', 2),
            producer_version: field('string', 3),
            doc_string: field('string', 6),
            graph: field('GraphProto', 7),
            metadata_props: field('StringStringEntryProto', 14, 'repeated'),
          },
        },
      },
    },
  },
};

let modelType: protobuf.Type | undefined;
function modelProto(): protobuf.Type {
  modelType ??= protobuf.Root.fromJSON(SCHEMA).lookupType('onnx.ModelProto');
  return modelType;
}

type Attr = { name: string; type: number; f?: number; i?: number; ints?: number[] };
type Node = { input: string[]; output: string[]; name: string; op_type: string; attribute: Attr[] };
type Init = { name: string; dims: number[]; data_type: number; raw_data: Uint8Array };
type Dim = { dim_value: number } | { dim_param: string };

function f32Bytes(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) dv.setFloat32(i * 4, a[i] as number, true);
  return out;
}

function i64Bytes(a: number[]): Uint8Array {
  const out = new Uint8Array(a.length * 8);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < a.length; i++) dv.setBigInt64(i * 8, BigInt(a[i] as number), true);
  return out;
}

/** [rows, cols] row-major → [cols, rows]. */
function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c] as number;
  return out;
}

/** Accumulates nodes and initializers with unique value names. */
class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly inits: Init[] = [];
  readonly #names = new Set<string>();
  #n = 0;

  #fresh(hint: string): string {
    let name = hint;
    while (this.#names.has(name)) name = `${hint}_${++this.#n}`;
    this.#names.add(name);
    return name;
  }
  op(opType: string, inputs: string[], hint: string, attrs: Attr[] = []): string {
    const out = this.#fresh(hint);
    this.nodes.push({ input: inputs, output: [out], name: `${opType}:${out}`, op_type: opType, attribute: attrs });
    return out;
  }
  floats(name: string, dims: number[], data: Float32Array): string {
    const n = this.#fresh(name);
    this.inits.push({ name: n, dims, data_type: FLOAT, raw_data: f32Bytes(data) });
    return n;
  }
  int64s(name: string, values: number[], dims: number[] = [values.length]): string {
    const n = this.#fresh(name);
    this.inits.push({ name: n, dims, data_type: INT64, raw_data: i64Bytes(values) });
    return n;
  }
  param(name: string, t: Tensor): string {
    return this.floats(name, t.shape, t.toFloat32());
  }
}

const ints = (name: string, v: number[]): Attr => ({ name, type: ATTR_INTS, ints: v });
const int = (name: string, v: number): Attr => ({ name, type: ATTR_INT, i: v });
const float = (name: string, v: number): Attr => ({ name, type: ATTR_FLOAT, f: v });

function linear(g: GraphBuilder, x: string, m: Linear, name: string): string {
  const [out, inp] = m.weight.shape as [number, number];
  const w = g.floats(`${name}.weight.T`, [inp, out], transpose2d(m.weight.toFloat32(), out, inp));
  const y = g.op('MatMul', [x, w], `${name}.matmul`);
  return m.bias ? g.op('Add', [y, g.param(`${name}.bias`, m.bias)], `${name}.out`) : y;
}

function layerNorm(g: GraphBuilder, x: string, m: LayerNorm, name: string): string {
  if (!m.weight || !m.bias) throw new Error(`ONNX export: ${name} has no affine parameters`);
  return g.op('LayerNormalization', [x, g.param(`${name}.weight`, m.weight), g.param(`${name}.bias`, m.bias)], name, [
    int('axis', -1),
    float('epsilon', m.eps),
  ]);
}

export interface OnnxModelInfo {
  bytes: Uint8Array;
  nodes: number;
  initializers: number;
  inputShape: [number, number, number]; // [C, H, W]; the batch dim is dynamic
}

/** Serialises the backbone's eval forward pass at its native size as an ONNX ModelProto. */
export function encodeVitOnnx(vit: VisionTransformer, metadata: Record<string, string> = {}): OnnxModelInfo {
  const c = vit.cfg;
  const p = c.patchSize;
  const D = c.dim;
  const H = c.heads;
  const hd = D / H;
  const grid = vit.gridSize;
  const L = grid * grid;
  const S = L + 1;
  const g = new GraphBuilder();

  // Patch embedding: Conv with stride = kernel = patch, then [N,D,g,g] → [N,D,L] → [N,L,D].
  const pe = vit.patchEmbed.proj;
  const convIn = ['images', g.param('patch_embed.proj.weight', pe.weight)];
  if (pe.bias) convIn.push(g.param('patch_embed.proj.bias', pe.bias));
  let x = g.op('Conv', convIn, 'patch_embed', [ints('kernel_shape', [p, p]), ints('strides', [p, p])]);
  x = g.op('Reshape', [x, g.int64s('shape_NDL', [0, D, L])], 'patch_embed.flat'); // 0 copies N
  x = g.op('Transpose', [x], 'patch_tokens', [ints('perm', [0, 2, 1])]);

  // CLS token expanded to [N,1,D], concatenated in front, then the whole position embedding added:
  // the same per-element sums as forward()'s (cls + pos[0], patches + pos[1:]).
  const batch = g.op('Shape', ['images'], 'batch', [int('start', 0), int('end', 1)]);
  const clsShape = g.op('Concat', [batch, g.int64s('shape_1D', [1, D])], 'cls_shape', [int('axis', 0)]);
  const cls = g.op('Expand', [g.param('cls_token', vit.clsToken), clsShape], 'cls_tokens');
  x = g.op('Concat', [cls, x], 'tokens', [int('axis', 1)]);
  x = g.op('Add', [x, g.param('pos_embed', vit.posEmbed)], 'tokens_pos');

  const scalar = (name: string, v: number) => g.floats(name, [], new Float32Array([v]));
  const sqrt1_2 = scalar('gelu.sqrt1_2', Math.SQRT1_2); // torch's exact GELU multiplies by M_SQRT1_2
  const one = scalar('gelu.one', 1);
  const half = scalar('gelu.half', 0.5);
  const qkvShape = g.int64s('shape_NS3Hd', [0, S, 3, H, hd]);
  const mergeShape = g.int64s('shape_NSD', [0, S, D]);
  const idx = [0, 1, 2].map((i) => g.int64s(`index_${i}`, [i], []));
  for (const [i, blk] of vit.blocks.items.entries()) {
    const b = `blocks.${i}`;
    // Attention: qkv [N,S,3D] → [N,S,3,H,hd] → [3,N,H,S,hd]; q,k,v [N,H,S,hd].
    const h = layerNorm(g, x, blk.norm1, `${b}.norm1`);
    let qkv = linear(g, h, blk.attn.qkv, `${b}.attn.qkv`);
    qkv = g.op('Reshape', [qkv, qkvShape], `${b}.attn.qkv_heads`);
    qkv = g.op('Transpose', [qkv], `${b}.attn.qkv_t`, [ints('perm', [2, 0, 3, 1, 4])]);
    const [q, k, v] = ['q', 'k', 'v'].map((n, j) =>
      g.op('Gather', [qkv, idx[j] as string], `${b}.attn.${n}`, [int('axis', 0)]),
    ) as [string, string, string];
    const kt = g.op('Transpose', [k], `${b}.attn.kT`, [ints('perm', [0, 1, 3, 2])]);
    let a = g.op('MatMul', [q, kt], `${b}.attn.logits`);
    a = g.op('Mul', [a, scalar(`${b}.attn.scale`, blk.attn.scale)], `${b}.attn.scaled`);
    a = g.op('Softmax', [a], `${b}.attn.weights`, [int('axis', -1)]);
    let o = g.op('MatMul', [a, v], `${b}.attn.heads_out`);
    o = g.op('Transpose', [o], `${b}.attn.heads_t`, [ints('perm', [0, 2, 1, 3])]);
    o = g.op('Reshape', [o, mergeShape], `${b}.attn.merged`);
    o = linear(g, o, blk.attn.proj, `${b}.attn.proj`);
    x = g.op('Add', [x, o], `${b}.res1`);
    // MLP with exact GELU: 0.5·f·(1 + erf(f/√2)).
    const h2 = layerNorm(g, x, blk.norm2, `${b}.norm2`);
    const f = linear(g, h2, blk.mlp.fc1, `${b}.mlp.fc1`);
    const erf = g.op('Erf', [g.op('Mul', [f, sqrt1_2], `${b}.mlp.scaled`)], `${b}.mlp.erf`);
    let act = g.op('Mul', [f, g.op('Add', [erf, one], `${b}.mlp.erf1`)], `${b}.mlp.f_erf1`);
    act = g.op('Mul', [act, half], `${b}.mlp.gelu`);
    x = g.op('Add', [x, linear(g, act, blk.mlp.fc2, `${b}.mlp.fc2`)], `${b}.res2`);
  }
  x = layerNorm(g, x, vit.norm, 'norm');
  const outs = [
    g.op('Gather', [x, idx[0] as string], 'cls', [int('axis', 1)]),
    g.op(
      'Slice',
      [x, g.int64s('slice_start', [1]), g.int64s('slice_end', [S]), g.int64s('slice_axes', [1])],
      'patches',
    ),
  ];
  if (outs.join() !== 'cls,patches') throw new Error(`ONNX export: output names clash (${outs})`);
  // One protobuf message is limited to 2 GiB; bigger models would need ONNX external data (not built).
  const weightBytes = g.inits.reduce((n, t) => n + t.raw_data.byteLength, 0);
  if (weightBytes > 2 ** 31 - 2 ** 24)
    throw new Error(`ONNX export: ${weightBytes} bytes of weights exceed the 2 GiB limit of one ONNX file`);

  const tensorType = (dims: Dim[]) => ({ tensor_type: { elem_type: FLOAT, shape: { dim: dims } } });
  const N: Dim = { dim_param: 'N' };
  const model = {
    ir_version: IR_VERSION,
    opset_import: [{ domain: '', version: ONNX_OPSET }],
    producer_name: 'locus',
    doc_string: 'Locus ViT backbone (eval forward at the native input size)',
    graph: {
      name: 'locus_vit',
      node: g.nodes,
      initializer: g.inits,
      input: [
        {
          name: 'images',
          type: tensorType([N, { dim_value: c.inChans }, { dim_value: c.imgSize }, { dim_value: c.imgSize }]),
        },
      ],
      output: [
        { name: 'cls', type: tensorType([N, { dim_value: D }]) },
        { name: 'patches', type: tensorType([N, { dim_value: L }, { dim_value: D }]) },
      ],
    },
    metadata_props: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
  const T = modelProto();
  const err = T.verify(model);
  if (err) throw new Error(`ONNX export: invalid model message: ${err}`);
  return {
    bytes: T.encode(model).finish(),
    nodes: g.nodes.length,
    initializers: g.inits.length,
    inputShape: [c.inChans, c.imgSize, c.imgSize],
  };
}

export interface OnnxExportResult {
  path: string;
  bytes: number;
  nodes: number;
  initializers: number;
  opset: number;
  input: { name: 'images'; shape: ['N', number, number, number] };
}

/** Writes the backbone as an ONNX file (atomically: temp file in the same directory, fsync, rename). */
export function exportOnnx(
  vit: VisionTransformer,
  out: string,
  metadata: Record<string, string> = {},
): OnnxExportResult {
  const c = vit.cfg;
  const m = encodeVitOnnx(vit, {
    layout: 'locus vit: inputs images [N,C,H,W]; outputs cls [N,D], patches [N,L,D] (after the final norm)',
    img_size: String(c.imgSize),
    patch_size: String(c.patchSize),
    embed_dim: String(c.dim),
    depth: String(c.depth),
    num_heads: String(c.heads),
    ...metadata,
  });
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx');
    try {
      let off = 0;
      while (off < m.bytes.byteLength) off += writeSync(fd, m.bytes, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, out);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new Error(`cannot write ${out}: ${(err as Error).message}`);
  }
  return {
    path: out,
    bytes: m.bytes.byteLength,
    nodes: m.nodes,
    initializers: m.initializers,
    opset: ONNX_OPSET,
    input: { name: 'images', shape: ['N', ...m.inputShape] },
  };
}
