// model.preset: timm names fix width, depth, heads, patch and input; every method's crop sizes follow
// the model (the reference's ratio to its 224-px crop, rounded up to the patch) unless set.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../src/train/config.js';
import { cropSide } from '../src/train/crops.js';

// biome-ignore lint/suspicious/noExplicitAny: the resolved sections are read by path
const cfg = (raw: Record<string, unknown>) => resolveConfig(raw) as Record<string, any>;

test('timm presets fill dim, depth, heads, patch and input; explicit fields win', () => {
  const s = cfg({ model: { preset: 'vit_small_patch16_224' } }).model;
  assert.deepEqual([s.dim, s.depth, s.heads, s.patchSize, s.imgSize], [384, 12, 6, 16, 224]);
  const t = cfg({ model: { preset: 'vit_tiny_patch16_224', depth: 1 } }).model;
  assert.deepEqual([t.dim, t.depth, t.heads, t.patchSize, t.imgSize], [192, 1, 3, 16, 224]);
  const b8 = cfg({ model: { preset: 'vit_base_patch8_224', patchSize: 16 } }).model;
  assert.deepEqual([b8.dim, b8.heads, b8.patchSize], [768, 12, 16]);
  // Locus's width presets keep the config's input and patch
  const small = cfg({ model: { preset: 'small' } }).model;
  assert.deepEqual([small.dim, small.patchSize, small.imgSize], [384, 4, 32]);
  assert.throws(
    () => cfg({ model: { preset: 'vit_gigantic' } }),
    /model\.preset must be one of .*'vit_small_patch8_224'/,
  );
});

test('crop sizes follow the model: the reference values at 224/16, the stated defaults at 32/4', () => {
  // DINO / SelfPatch / iBOT local crops 96/224
  assert.equal(cfg({ model: { preset: 'vit_small_patch16_224' } }).dino.localSize, 96);
  assert.equal(cfg({ model: { preset: 'vit_small_patch8_224' } }).dino.localSize, 96);
  assert.equal(cfg({ method: 'selfpatch', model: { preset: 'vit_base_patch16_224' } }).selfpatch.localSize, 96);
  assert.equal(cfg({ method: 'dino+mim', model: { preset: 'vit_tiny_patch16_224' } })['dino+mim'].localSize, 96);
  assert.equal(cfg({}).dino.localSize, 16); // the default model: unchanged
  // at 64 px and patch 16: 27.4 px → 2 patches, not a 1-token crop
  assert.equal(cfg({ model: { imgSize: 64, patchSize: 16 } }).dino.localSize, 32);
  // LOCA: reference and query at the model's side, focal 96/224
  const l = cfg({ method: 'loca', model: { preset: 'vit_base_patch16_224' } }).loca;
  assert.deepEqual([l.refSize, l.querySize, l.focalSize], [224, 224, 96]);
  const l0 = cfg({ method: 'loca' }).loca;
  assert.deepEqual([l0.refSize, l0.querySize, l0.focalSize], [32, 32, 16]);
  // GTSA: the reference's --size-crops 96, --roi_out_size 10 4, --num_matches 98 18 at ViT-S/16
  const g = cfg({ method: 'gtsa', model: { preset: 'vit_small_patch16_224' } }).gtsa;
  assert.deepEqual([g.localSize, g.roiOut, g.numMatches], [96, [10, 4], [98, 18]]);
  const g0 = cfg({ method: 'gtsa' }).gtsa;
  assert.deepEqual([g0.localSize, g0.roiOut, g0.numMatches], [16, [6, 3], [32, 8]]);
  assert.equal(cropSide(96 / 224, { imgSize: 224, patchSize: 14 }), 98);
});

test('a size set in the config wins, and a bad one names the field to change', () => {
  assert.equal(cfg({ model: { preset: 'vit_small_patch16_224' }, dino: { localSize: 64 } }).dino.localSize, 64);
  const g = cfg({ method: 'gtsa', model: { preset: 'vit_small_patch16_224' }, gtsa: { localSize: 128 } }).gtsa;
  assert.deepEqual(g.numMatches, [98, 32]); // follows the local size that was set
  assert.throws(
    () =>
      cfg({
        method: 'gtsa',
        model: { imgSize: 64, patchSize: 16 },
        gtsa: { localSize: 16, numMatches: [8, 8] },
      }),
    /gtsa\.numMatches\[1\] 8 exceeds the 1 tokens of a local view \(gtsa\.localSize 16 \/ model\.patchSize 16\): raise gtsa\.localSize/,
  );
});
