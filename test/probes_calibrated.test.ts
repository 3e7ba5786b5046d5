// The issue-11 probe pieces on hand-made cases: the training-free nearest-neighbour dense probe, bootstrap
// intervals, in-domain object crops, readouts a backbone lacks, and probe options checked like the config.
import assert from 'node:assert/strict';
import test from 'node:test';
import { manualSeed, tensor } from '../src/engine/index.js';
import { meanInterval, percentile, segIntervals } from '../src/eval/bootstrap.js';
import { runEval } from '../src/eval/index.js';
import { confusionMatrix } from '../src/eval/metrics.js';
import { nnSegPredict, patchHistograms } from '../src/eval/nnseg.js';
import { contextBox, visibleFraction } from '../src/eval/objects.js';
import { scoreWithIntervals } from '../src/eval/seg.js';

test('nnseg: two patch classes with known nearest neighbours give the expected labels and mIoU', () => {
  // one train image, grid 1x2, labels 1x2 px: patch 0 = class 0 with feature [1, 0], patch 1 = class 1 with [0, 1]
  const train = tensor([1, 0, 0, 1], [1, 2, 2]);
  const hist = patchHistograms([Uint8Array.of(0, 1)], 1, 2, [1, 2], 2, 255);
  assert.deepEqual([...hist], [1, 0, 0, 1]);
  // test image A: [0.9, 0.1] is nearest to patch 0, [0.2, 0.8] to patch 1 → labels (0, 1), mIoU 1
  // test image B: both patches nearest to patch 1 → (1, 1) against ground truth (0, 1)
  const testX = tensor([0.9, 0.1, 0.2, 0.8, 0.1, 0.9, 0, 1], [2, 2, 2]);
  const pred = nnSegPredict(train, hist, testX, [1, 2], [1, 2], 2, { k: 1, temperature: 0.02 });
  assert.deepEqual(
    pred.map((p) => [...p]),
    [
      [0, 1],
      [1, 1],
    ],
  );
  const a = scoreWithIntervals([pred[0] as Uint8Array], [Uint8Array.of(0, 1)], 2, 255);
  assert.equal(a.miou, 1);
  // B: class 0 IoU 0/(0+0+1) = 0; class 1 IoU 1/(1+1) = 0.5 → mIoU 0.25
  const b = scoreWithIntervals([pred[1] as Uint8Array], [Uint8Array.of(0, 1)], 2, 255);
  assert.equal(b.miou, 0.25);
  assert.deepEqual(b.per_class_iou, [0, 0.5]);
  // k = 2 with a soft vote: [0.9, 0.1] weighs patch 0 by e^{0.9/T} and patch 1 by e^{0.1/T}: still class 0
  const soft = nnSegPredict(train, hist, testX, [1, 2], [1, 2], 2, { k: 2, temperature: 0.5 });
  assert.deepEqual([...(soft[0] as Uint8Array)], [0, 1]);
});

test('bootstrap: percentile as numpy; the interval of a 0/1 mean has the binomial width; constant data has none', () => {
  assert.equal(percentile([1, 2, 3, 4], 0.5), 2.5);
  assert.equal(percentile([0, 10], 0.25), 2.5);
  const ones = new Uint8Array(50).fill(1);
  assert.deepEqual(meanInterval(ones), [1, 1]);
  // p = 0.5, n = 10000: half-width ≈ 1.96·√(p(1−p)/n) = 0.0098
  const half = Uint8Array.from({ length: 10000 }, (_, i) => i % 2);
  const [lo, hi] = meanInterval(half, 0);
  assert.ok(lo < 0.5 && hi > 0.5);
  assert.ok(Math.abs((hi - lo) / 2 - 0.0098) < 0.0015, `half-width ${(hi - lo) / 2}`);
  // seg: identical images → the interval collapses to the value
  const c = confusionMatrix([0, 1, 1], [0, 1, 0], 2);
  const ci = segIntervals([c, c, c, c], 0, { resamples: 50 });
  assert.ok(Math.abs((ci.miou_ci[0] as number) - (ci.miou_ci[1] as number)) < 1e-12);
});

test('object crops: context box and visible fraction by hand', () => {
  // box 10x20 at (4, 6): side 1.5·20 = 30 around the centre (9, 16)
  assert.deepEqual(contextBox([4, 6, 14, 26], 1.5), [-6, 1, 24, 31]);
  const mask = new Uint8Array(16);
  mask.set([3, 3, 3], 0); // three pixels of value 3 in the top row of a 4x4 mask
  assert.equal(visibleFraction(mask, 4, 4, [0, 0, 2, 2], 3), 0.5);
  assert.equal(visibleFraction(mask, 4, 4, [-2, -2, 2, 2], 3), 0.5); // clipped to the canvas
});

test('probe options: unknown keys, wrong types and nulls fail in one line naming what is allowed', async () => {
  manualSeed(0);
  const rnd = 'random:0';
  const bad: [string, Record<string, unknown>, RegExp][] = [
    [
      'knn',
      { train: { kind: 'fashion-mnist', split: 'train', lenght: 100 } },
      /option 'train': unknown field 'lenght' for kind fashion-mnist \(allowed: kind, split, length, dir\)/,
    ],
    [
      'location',
      { test: null },
      /eval location: option 'test' must be a dataset spec \{kind, \.\.\.\} \(null is not allowed here\)/,
    ],
    ['knn', { temperature: 'hot' }, /option 'temperature' must be a number, got "hot"/],
    ['knn', { ks: [10, 'x'] }, /option 'ks'\[1\] must be a number/],
    ['knn', { feature: 'cls2' }, /option 'feature' must be one of cls, mean, attn, cls\+mean/],
    ['knn', { data: 'imagenet' }, /option 'data' must be one of fashion-mnist, scene-items, part-objects or null/],
    ['seg', { steps: null }, /option 'steps' cannot be null/],
    [
      'parts',
      { seg: { stepz: 3 } },
      /option 'seg': unknown option 'stepz' \(allowed: steps, batchSize, lr, wd, seed\)/,
    ],
    ['knn', { bogus: 1 }, /eval knn: unknown option 'bogus' \(allowed: /],
    ['knn', { batchSize: 0 }, /option 'batchSize' must be a positive integer/],
  ];
  for (const [kind, options, re] of bad)
    await assert.rejects(
      runEval(kind, { checkpoint: rnd, options: { ...options, outDir: null } }),
      re,
      JSON.stringify(options),
    );
  // a readout the backbone lacks, and --backbone where there is one network
  await assert.rejects(
    runEval('knn', {
      checkpoint: rnd,
      options: {
        feature: 'attn',
        outDir: null,
        train: { kind: 'fashion-mnist', split: 'train', length: 20 },
        test: { kind: 'fashion-mnist', split: 'test', length: 20 },
      },
    }),
    /feature 'attn' \(a method's class-attention token\) asked for, but this backbone \(method random\) has none \(allowed: cls, mean\)/,
  );
  await assert.rejects(
    runEval('knn', { checkpoint: rnd, backbone: 'teacher', options: { outDir: null } }),
    /--backbone applies to run checkpoints only/,
  );
  await assert.rejects(
    runEval('knn', { checkpoint: rnd, backbone: 'ema', options: { outDir: null } }),
    /unknown --backbone 'ema' \(allowed: teacher, student\)/,
  );
});

test('knn on in-domain item crops and on Fashion-MNIST both report CLS and mean readouts with intervals', async () => {
  const r = await runEval('knn', {
    checkpoint: 'random:0',
    randomConfig: { depth: 1, dim: 32, heads: 2 },
    options: {
      outDir: null,
      train: { kind: 'scenes', split: 'train', length: 20 },
      test: { kind: 'scenes', split: 'eval', length: 20 },
      ks: [5],
      kReport: 5,
    },
  });
  const bf = r.by_feature as Record<string, { top1: number; top1_ci: [number, number] }>;
  assert.deepEqual(Object.keys(bf), ['cls', 'mean']);
  for (const v of Object.values(bf)) assert.ok(v.top1_ci[0] <= v.top1 && v.top1 <= v.top1_ci[1]);
  const data = r.data as { n_test: number; test: { crops?: string } };
  assert.equal(data.test.crops, 'objects');
  assert.ok(data.n_test >= 20, `≥ 1 visible item per scene (${data.n_test})`);
});
