// Weight export for the PyTorch world: the backbone as a safetensors state dict whose key names are
// timm's / DINO's vision_transformer.py names, and the method's heads in a separate file.
//
// Locus's ViT uses those names already (patch_embed.proj.*, cls_token, pos_embed, blocks.N.{norm1,
// attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.*, norm.*), so the mapping is the identity for every
// backbone tensor; only method-specific extras (iBOT's masked_embed) move to the heads file. To load
// into timm: `timm.create_model('vit_tiny_patch16_224', img_size=S, patch_size=P, embed_dim=D, depth=L,
// num_heads=H, num_classes=0)` then `load_state_dict(safetensors.torch.load_file(path))`.
import type { Tensor } from '../engine/index.js';
import { saveTensors } from '../engine/io.js';
import type { Method } from '../methods/method.js';

export interface ExportResult {
  backbone: string;
  heads: string | null;
  tensors: number;
}

const NOT_TIMM = new Set(['masked_embed']);

export function exportSafetensors(method: Method, out: string, extraMeta: Record<string, string> = {}): ExportResult {
  const vit = method.evalBackbone();
  const backbone = new Map<string, Tensor>();
  const heads = new Map<string, Tensor>();
  for (const [k, t] of vit.stateDict()) (NOT_TIMM.has(k) ? heads : backbone).set(k, t);
  // Heads: everything of the evaluated network (teacher if any) that is not the backbone.
  const net = method.teacher ?? method.student;
  const backboneTensors = new Set(vit.stateDict().values());
  for (const [k, t] of net.stateDict()) if (!backboneTensors.has(t)) heads.set(k, t);
  const c = vit.cfg;
  const meta = {
    format: 'pt',
    layout: 'timm/dino vision_transformer',
    img_size: String(c.imgSize),
    patch_size: String(c.patchSize),
    in_chans: String(c.inChans),
    embed_dim: String(c.dim),
    depth: String(c.depth),
    num_heads: String(c.heads),
    mlp_ratio: String(c.mlpRatio),
    qkv_bias: String(c.qkvBias),
    layer_norm_eps: '1e-6',
    method: method.name,
    ...extraMeta,
  };
  saveTensors(out, backbone, meta);
  let headsPath: string | null = null;
  if (heads.size > 0) {
    headsPath = out.replace(/(\.safetensors)?$/, '.heads.safetensors');
    saveTensors(headsPath, heads, { method: method.name, ...extraMeta });
  }
  return { backbone: out, heads: headsPath, tensors: backbone.size };
}
