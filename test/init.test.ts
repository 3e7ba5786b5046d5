// Reference inits: the patch-embedding conv at PyTorch's default (DINO, SelfPatch, iBOT, GTSA: U(±1/√fan_in),
// std 1/√(3·fan_in)) or flax's lecun_normal (LOCA: std 1/√fan_in, truncated at ±2σ), LOCA's position embedding
// normal(1/√D); the teacher starts from the same weights. Stds are checked against the formulas on ~10^4 draws.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { manualSeed, setNumThreads, type Tensor, tidy } from '../src/engine/index.js';
import { getMethod } from '../src/methods/index.js';
import type { MethodContext } from '../src/methods/method.js';
import type { VisionTransformer, VitConfig } from '../src/nn/index.js';

setNumThreads(1);
const D = 256;
const vit: VitConfig = {
  imgSize: 32,
  patchSize: 4,
  inChans: 3,
  dim: D,
  depth: 1,
  heads: 4,
  mlpRatio: 2,
  qkvBias: true,
  dropPathRate: 0,
  maskToken: false,
};
const ctx: MethodContext = { vit, batchSize: 4, totalSteps: 10, seed: 0 };
const FAN_IN = 3 * 4 * 4;

function stats(t: Tensor): { std: number; maxAbs: number; mean: number } {
  const a = tidy(() => t.detach().to('float64').toArray()) as Float64Array;
  const mean = a.reduce((s, x) => s + x, 0) / a.length;
  const std = Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length);
  return { std, mean, maxAbs: a.reduce((m, x) => Math.max(m, Math.abs(x)), 0) };
}
function build(method: string, opts: Record<string, unknown> = {}) {
  manualSeed(3);
  const def = getMethod(method);
  return def.create(def.schema.parse(opts), ctx);
}
const backboneOf = (m: ReturnType<typeof build>, key: 'student' | 'teacher') =>
  (m[key] as unknown as { backbone?: VisionTransformer; encoder?: VisionTransformer }).backbone ??
  (m[key] as unknown as { encoder: VisionTransformer }).encoder;

test("DINO, SelfPatch, iBOT and GTSA: the patch conv at PyTorch's default init (std 1/√(3·fan_in) = 0.083)", () => {
  const bound = 1 / Math.sqrt(FAN_IN);
  for (const name of ['dino', 'selfpatch', 'mim', 'dino+mim', 'gtsa']) {
    const m = build(name);
    const conv = backboneOf(m, 'student').patchEmbed.proj;
    const w = stats(conv.weight);
    assert.ok(Math.abs(w.std - bound / Math.sqrt(3)) < 0.03 * (bound / Math.sqrt(3)), `${name}: weight std ${w.std}`);
    assert.ok(w.maxAbs <= bound && w.maxAbs > 0.98 * bound, `${name}: uniform within ±1/√fan_in (max ${w.maxAbs})`);
    const b = stats(conv.bias as Tensor);
    assert.ok(b.maxAbs <= bound && b.std > 0.3 * bound, `${name}: bias U(±1/√fan_in) (std ${b.std})`);
    const tw = stats(backboneOf(m, 'teacher').patchEmbed.proj.weight);
    assert.equal(tw.std, w.std, `${name}: the teacher starts from the same conv`);
  }
  // the previous init stays one option away
  const old = stats(backboneOf(build('dino', { patchInit: 'trunc-normal' }), 'student').patchEmbed.proj.weight);
  assert.ok(Math.abs(old.std - 0.02) < 0.001, `trunc-normal std ${old.std}`);
});

test('LOCA: lecun-normal patch conv (std 1/√fan_in = 0.144) and position embedding normal(1/√D)', () => {
  const m = build('loca');
  const bb = backboneOf(m, 'student');
  const w = stats(bb.patchEmbed.proj.weight);
  const target = 1 / Math.sqrt(FAN_IN);
  assert.ok(Math.abs(w.std - target) < 0.03 * target, `weight std ${w.std} vs ${target}`);
  assert.ok(w.maxAbs <= (2 * target) / 0.8796256610342398 + 1e-7, 'truncated at ±2σ');
  assert.equal(stats(bb.patchEmbed.proj.bias as Tensor).maxAbs, 0, 'bias zero (flax)');
  const pos = stats(bb.posEmbed);
  assert.ok(Math.abs(pos.std - 1 / Math.sqrt(D)) < 0.03 / Math.sqrt(D), `pos std ${pos.std} vs ${1 / Math.sqrt(D)}`);
  assert.equal(stats(backboneOf(m, 'teacher').posEmbed).std, pos.std, 'the EMA teacher starts from it');
  const timm = stats(backboneOf(build('loca', { posInit: 'trunc-normal' }), 'student').posEmbed);
  assert.ok(Math.abs(timm.std - 0.02) < 0.001);
});
