// Off-the-shelf ViT checkpoints: safetensors and PyTorch `.pth`/`.pt` state dicts in the layouts people
// publish — timm, DINO (`teacher`/`student` dicts, `module.`/`backbone.` prefixes), iBOT, DeiT, MAE
// encoders — mapped onto Locus's ViT (whose names are timm's/DINO's), the architecture inferred from the
// tensor shapes. Heads come from `heads` (a flag), the file's metadata, or dim/64, and the choice is said.
// Classifier, projection and decoder heads are left out with a one-line note. Used by `locus eval
// --weights`, `locus pretrain --init` and the zoo comparison (bench/zoo.ts).
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { type Tensor, tidy } from '../engine/index.js';
import { fromEntry } from '../engine/io.js';
import { Opaque, TensorRef } from '../engine/pickle.js';
import { readSafetensorsFileSync, readSafetensorsMetadataSync, type StEntry } from '../engine/safetensors.js';
import { isZipFile, TorchArchive } from '../engine/torch_archive.js';
import { type Module, resamplePosEmbed, VisionTransformer, type VitConfig } from '../nn/index.js';

/** The architecture read from a file's tensor shapes: a ViT config less its training-only fields. */
export type ImportedArch = Omit<VitConfig, 'dropPathRate' | 'maskToken'>;

export interface ImportedWeights {
  path: string;
  /** Which dict of the file held the weights ('' = the top level), and the key prefix stripped. */
  container: string;
  prefix: string;
  arch: ImportedArch;
  /** Backbone tensors under Locus's (= timm's) names, float32. Dispose with disposeWeights. */
  state: Map<string, Tensor>;
  /** One line each: the heads' source, what was ignored, which dict was taken. */
  notes: string[];
}

export class ImportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImportError';
  }
}

const BLOCK_PARTS = [
  'norm1.weight',
  'norm1.bias',
  'attn.qkv.weight',
  'attn.qkv.bias',
  'attn.proj.weight',
  'attn.proj.bias',
  'norm2.weight',
  'norm2.bias',
  'mlp.fc1.weight',
  'mlp.fc1.bias',
  'mlp.fc2.weight',
  'mlp.fc2.bias',
];
const TOP = ['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias', 'norm.weight', 'norm.bias'];
/** Tensors beside an encoder that are not part of it: classifier / projection / decoder heads, mask tokens. */
const IGNORED = /^(head|head_dist|pre_logits|fc_norm|decoder|mask_token|masked_embed|last_layer|dino_head|ibot_head)/;
/** Dicts that hold the model in training checkpoints, in the order they are preferred (DINO evaluates the teacher). */
const CONTAINERS = ['teacher', 'model', 'state_dict', 'model_ema', 'student', 'module', 'net', 'encoder', 'params'];
const ANCHOR = 'patch_embed.proj.weight';

type Raw = StEntry | TensorRef | Opaque | unknown;

const isEntry = (v: unknown): v is StEntry =>
  typeof v === 'object' && v !== null && 'dtype' in v && 'shape' in v && (v as StEntry).data instanceof Uint8Array;
const isTensorLike = (v: unknown) => v instanceof TensorRef || isEntry(v);

/** True when the file is a PyTorch zip/pickle (.pth/.pt/.bin) rather than safetensors. */
export function isTorchFile(path: string): boolean {
  return isZipFile(path);
}

/** The state dict among the file's dicts: the top level when it holds the ViT, else the first container that does. */
function pickContainer(top: Map<unknown, Raw>, path: string, notes: string[]): [string, Map<string, Raw>] {
  const holds = (d: unknown): d is Map<string, Raw> =>
    d instanceof Map && [...d.keys()].some((k) => typeof k === 'string' && k.endsWith(ANCHOR));
  if (holds(top)) return ['', top];
  for (const name of CONTAINERS) {
    const d = top.get(name);
    if (holds(d)) {
      const others = [...top.keys()].filter((k) => k !== name).map(String);
      notes.push(
        `took the '${name}' dict of ${basename(path)}${others.length ? ` (also there: ${others.join(', ')})` : ''}`,
      );
      return [name, d];
    }
  }
  const keys = [...top.keys()].map(String).slice(0, 12);
  throw new ImportError(
    `${path}: no ViT state dict found (no '…${ANCHOR}' tensor at the top level or under ${CONTAINERS.join('/')}); top-level keys: ${keys.join(', ')}`,
  );
}

/** Reads a file's raw tensors by name, and the archive to materialise torch tensors from. */
function readRaw(path: string, notes: string[]) {
  if (!existsSync(path)) throw new ImportError(`weights file '${path}' does not exist`);
  if (isTorchFile(path)) {
    const archive = new TorchArchive(path);
    try {
      const top = archive.load();
      if (top instanceof Opaque)
        throw new ImportError(
          `${path}: the pickle holds a whole ${top.global} object, not a state dict; save model.state_dict() instead`,
        );
      if (!(top instanceof Map)) throw new ImportError(`${path}: the pickle holds a ${typeof top}, not a dict`);
      const [container, dict] = pickContainer(top, path, notes);
      return { container, dict, archive, metadata: {} as Record<string, string> };
    } catch (e) {
      archive.close();
      throw e;
    }
  }
  let f: ReturnType<typeof readSafetensorsFileSync>;
  try {
    f = readSafetensorsFileSync(path);
  } catch (e) {
    throw new ImportError(
      `${path} is neither a PyTorch zip (.pth/.pt) nor a safetensors file: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  const top = new Map<unknown, Raw>(Object.entries(f.entries));
  const [container, dict] = pickContainer(top, path, notes);
  return { container, dict, archive: null, metadata: f.metadata };
}

function shapeOf(v: Raw): number[] {
  if (v instanceof TensorRef) return v.shape;
  if (isEntry(v)) return v.shape;
  return [];
}

/**
 * Reads a ViT from a published checkpoint. `heads` overrides the head count (not stored in any state dict).
 * Throws ImportError with one line naming the file and the tensor or option at fault.
 */
export function readWeights(path: string, o: { heads?: number; headsFrom?: string } = {}): ImportedWeights {
  const notes: string[] = [];
  const { container, dict, archive, metadata } = readRaw(path, notes);
  try {
    // the shortest prefix; between equals the teacher's (a Locus run checkpoint holds student.* and teacher.*)
    const rank = (k: string) => k.length - (k.includes('teacher') ? 0.5 : 0);
    const anchors = [...dict.keys()].filter((k) => k.endsWith(ANCHOR)).sort((a, b) => rank(a) - rank(b));
    const prefix = (anchors[0] as string).slice(0, -ANCHOR.length);
    const named = new Map<string, Raw>();
    const ignored = new Map<string, number>();
    for (const [k, v] of dict) {
      if (!k.startsWith(prefix)) {
        const g = k.split('.')[0] as string;
        ignored.set(g, (ignored.get(g) ?? 0) + 1);
        continue;
      }
      named.set(k.slice(prefix.length), v);
    }
    // the encoder's tensors; heads and decoders beside it are ignored, anything else is refused
    const want = new Set(TOP);
    let depth = 0;
    while (named.has(`blocks.${depth}.norm1.weight`)) depth++;
    for (let i = 0; i < depth; i++) for (const p of BLOCK_PARTS) want.add(`blocks.${i}.${p}`);
    const state = new Map<string, Raw>();
    for (const [k, v] of named) {
      if (want.has(k)) state.set(k, v);
      else if (IGNORED.test(k)) {
        const g = k.split('.')[0] as string;
        ignored.set(`${prefix}${g}`, (ignored.get(`${prefix}${g}`) ?? 0) + 1);
      } else if (isTensorLike(v) || v instanceof Opaque)
        throw new ImportError(
          `${path}: tensor '${prefix}${k}' has no place in Locus's ViT (supported: timm/DINO ViTs without LayerScale, distillation or register tokens, q/v-only biases)`,
        );
    }
    if (ignored.size > 0)
      notes.push(
        `ignored ${[...ignored].map(([g, n]) => `${g}.* (${n})`).join(', ')}: classifier/projection/decoder heads and training state`,
      );
    if (!named.has('norm.weight') && named.has('fc_norm.weight'))
      throw new ImportError(
        `${path}: the encoder ends in fc_norm (global-pool fine-tuning) instead of norm; Locus's ViT reads the CLS token after norm`,
      );
    for (const k of want)
      if (!state.has(k) && !(k.endsWith('attn.qkv.bias') && ![...state.keys()].some((s) => s.endsWith('qkv.bias'))))
        throw new ImportError(`${path}: tensor '${prefix}${k}' is missing (${depth} blocks found)`);
    const arch = inferArch(path, state, o.heads, metadata, notes, o.headsFrom);
    const tensors = materialise(path, prefix, state, archive);
    return { path, container, prefix, arch, state: tensors, notes };
  } finally {
    archive?.close();
  }
}

/** model.heads of a Locus run checkpoint's stored config, or 0. */
function locusHeads(metadata: Record<string, string>): number {
  try {
    return Number(JSON.parse(metadata['locus.config'] ?? '{}')?.model?.heads) || 0;
  } catch {
    return 0;
  }
}

function inferArch(
  path: string,
  state: Map<string, Raw>,
  heads: number | undefined,
  metadata: Record<string, string>,
  notes: string[],
  headsFrom = '--heads',
): ImportedArch {
  const [dim, inChans, patchSize] = shapeOf(state.get(ANCHOR)) as [number, number, number];
  let depth = 0;
  while (state.has(`blocks.${depth}.norm1.weight`)) depth++;
  const hidden = shapeOf(state.get('blocks.0.mlp.fc1.weight'))[0] ?? 4 * dim;
  const tokens = (shapeOf(state.get('pos_embed'))[1] ?? 0) - 1;
  const g = Math.round(Math.sqrt(tokens));
  if (g * g !== tokens)
    throw new ImportError(
      `${path}: pos_embed holds ${tokens + 1} positions, not 1 + a square grid (a model without a CLS position, or with extra tokens, is not supported)`,
    );
  let h: number;
  if (heads !== undefined) {
    h = heads;
    notes.push(`heads ${h} (from ${headsFrom})`);
  } else if (Number(metadata.num_heads) > 0 || locusHeads(metadata) > 0) {
    h = Number(metadata.num_heads) > 0 ? Number(metadata.num_heads) : locusHeads(metadata);
    notes.push(`heads ${h} (from the file's metadata)`);
  } else {
    if (dim % 64 !== 0)
      throw new ImportError(
        `${path}: the head count is not stored in a state dict and dim ${dim} is not a multiple of 64: give it with --heads N (model.heads)`,
      );
    h = dim / 64;
    notes.push(`heads ${h} = dim ${dim}/64 (not stored in the file; --heads N sets it)`);
  }
  if (dim % h !== 0) throw new ImportError(`${path}: dim ${dim} is not divisible by --heads ${h}`);
  return {
    imgSize: g * patchSize,
    patchSize,
    inChans,
    dim,
    depth,
    heads: h,
    mlpRatio: hidden / dim,
    qkvBias: state.has('blocks.0.attn.qkv.bias'),
  };
}

function materialise(
  path: string,
  prefix: string,
  state: Map<string, Raw>,
  archive: TorchArchive | null,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  try {
    for (const [k, v] of state) {
      let e: StEntry;
      if (v instanceof TensorRef) e = (archive as TorchArchive).tensor(v);
      else if (isEntry(v)) e = v;
      else if (v instanceof Opaque)
        throw new ImportError(
          `${path}: tensor '${prefix}${k}' is ${v.why} (${v.global}) that only its own code could rebuild; refused (Locus rebuilds plain torch tensors only)`,
        );
      else throw new ImportError(`${path}: '${prefix}${k}' is not a tensor`);
      if (!['F32', 'F64', 'F16', 'BF16'].includes(e.dtype))
        throw new ImportError(`${path}: tensor '${prefix}${k}' is ${e.dtype}, not a float`);
      const t = fromEntry(e);
      if (t.dtype === 'float32') out.set(k, t);
      else {
        out.set(k, t.to('float32'));
        t.dispose();
      }
    }
  } catch (err) {
    for (const t of out.values()) t.dispose();
    throw err;
  }
  return out;
}

export function disposeWeights(w: ImportedWeights): void {
  for (const t of w.state.values()) t.dispose();
}

/** The ViT config of imported weights (imgSize: the file's native grid unless given). */
export function vitConfigOfImport(a: ImportedArch, imgSize = a.imgSize): VitConfig {
  return { ...a, imgSize, dropPathRate: 0, maskToken: false };
}

/** The state resized for a ViT of another input size: pos_embed resampled bicubically (timm's resample_abs_pos_embed). */
export function fitState(w: ImportedWeights, vit: VisionTransformer): Map<string, Tensor> {
  const out = new Map(w.state);
  const pos = w.state.get('pos_embed') as Tensor;
  const g0 = Math.round(Math.sqrt((pos.shape[1] as number) - 1));
  const g = vit.gridSize;
  if (g !== g0)
    out.set(
      'pos_embed',
      tidy(() => resamplePosEmbed(pos, g, g)),
    );
  return out;
}

/** Copies imported weights into a ViT (keeping its mask token, if it has one); one line on mismatch. */
export function loadInto(vit: VisionTransformer, w: ImportedWeights): void {
  const state = fitState(w, vit);
  const own = vit.stateDict();
  if (own.has('masked_embed') && !state.has('masked_embed'))
    state.set('masked_embed', own.get('masked_embed') as Tensor);
  try {
    vit.loadStateDict(state);
  } catch (e) {
    const a = w.arch;
    throw new ImportError(
      `${w.path} (dim ${a.dim}, depth ${a.depth}, heads ${a.heads}, patch ${a.patchSize}, mlp ratio ${a.mlpRatio}) does not fit model (dim ${vit.cfg.dim}, depth ${vit.cfg.depth}, heads ${vit.cfg.heads}, patch ${vit.cfg.patchSize}): ${(e as Error).message}`,
    );
  } finally {
    const p = state.get('pos_embed');
    if (p && p !== w.state.get('pos_embed')) p.dispose();
  }
}

/** Every ViT inside a module tree (a method's student and teacher backbones). */
export function findVits(m: Module | null): VisionTransformer[] {
  if (!m) return [];
  if (m instanceof VisionTransformer) return [m];
  return m.children().flatMap(([, c]) => findVits(c));
}

/** SHA-256 (16 hex digits) of a file, read in chunks. */
export function fileSha(path: string): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(1 << 22);
    for (;;) {
      const n = readSync(fd, b, 0, b.length, null);
      if (n === 0) break;
      h.update(b.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex').slice(0, 16);
}

const initCache = new Map<string, { sets: string[]; notes: string[]; arch: ImportedArch }>();

/** `--set` lines that give a run config the file's architecture (explicit `--set`s after them win). */
export function initSets(path: string, heads?: number): { sets: string[]; notes: string[]; arch: ImportedArch } {
  const key = `${path}\0${heads}`;
  const hit = initCache.get(key);
  if (hit) return hit;
  const w = readWeights(path, { heads, headsFrom: 'model.heads' });
  disposeWeights(w);
  const a = w.arch;
  const r = {
    sets: [
      `model.imgSize=${a.imgSize}`,
      `model.patchSize=${a.patchSize}`,
      `model.dim=${a.dim}`,
      `model.depth=${a.depth}`,
      `model.heads=${a.heads}`,
      `model.mlpRatio=${a.mlpRatio}`,
      `model.qkvBias=${a.qkvBias}`,
      `model.init=${JSON.stringify(resolve(path))}`,
    ],
    notes: w.notes,
    arch: a,
  };
  initCache.set(key, r);
  return r;
}

/** True for a weights file Locus did not write: a PyTorch zip, or a safetensors file with neither Locus checkpoint nor export metadata. */
export function isForeignWeights(path: string): boolean {
  if (!existsSync(path) || !statSync(path).isFile()) return false;
  if (isTorchFile(path)) return true;
  try {
    const meta = readSafetensorsMetadataSync(path);
    return !('locus.checkpoint' in meta) && !('img_size' in meta);
  } catch {
    return false;
  }
}

/** A frozen backbone (eval mode) from a published checkpoint, shaped like src/eval's EvalBackbone. */
export function importBackbone(
  path: string,
  o: { heads?: number; quiet?: boolean } = {},
): { vit: VisionTransformer; hash: string; checkpoint: string; method: string; dispose: () => void } {
  const w = readWeights(path, { heads: o.heads });
  try {
    if (!o.quiet) for (const n of w.notes) process.stderr.write(`locus: ${n}\n`);
    const vit = new VisionTransformer(vitConfigOfImport(w.arch));
    loadInto(vit, w);
    vit.eval();
    const layout = w.container ? `${w.container}${w.prefix ? `/${w.prefix}` : ''}` : w.prefix || 'state dict';
    return {
      vit,
      hash: fileSha(path),
      checkpoint: path,
      method: `weights (${layout})`,
      dispose: () => vit.dispose(),
    };
  } finally {
    disposeWeights(w);
  }
}

/**
 * `pretrain --init`: the imported backbone copied into every ViT of the method (student and teacher), before
 * step 0. Returns the notes.
 */
export function initMethod(
  method: { student: Module; teacher: Module | null },
  path: string,
  heads?: number,
): string[] {
  const w = readWeights(path, { heads, headsFrom: 'model.heads' });
  try {
    const vits = [...findVits(method.student), ...findVits(method.teacher)];
    if (vits.length === 0) throw new ImportError('--init: the method has no ViT to initialise');
    for (const v of vits) loadInto(v, w);
    return [...w.notes, `initialised ${vits.length} ViT backbone(s) from ${path}`];
  } finally {
    disposeWeights(w);
  }
}

/** Before a run directory exists: the config's model must have the --init file's shapes (one line naming the field). */
export function checkInitFits(model: Record<string, unknown>, path: string, heads?: number): void {
  const a = initSets(path, heads).arch;
  for (const k of ['dim', 'depth', 'patchSize', 'mlpRatio', 'qkvBias'] as const)
    if (model[k] !== a[k])
      throw new ImportError(
        `--init ${path} has model.${k} ${a[k]}, the config sets model.${k} ${model[k]}: drop that setting or use weights of that size`,
      );
}
