// How the report reads eval records: probe, dataset and baseline of each; headline metrics; intervals in
// the forms a probe may record them (and none); which numbers are train/validation-set numbers.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { evalEntries, headline, intervalOf, isTrainOrVal, metricLeaves } from '../src/report/records.js';
import type { ReportRun } from '../src/report/types.js';

test('intervals: [lo, hi], {lo, hi}, {low, high}, {lower, upper}, ci.<leaf>, _ci95, nested; absent or malformed → null', () => {
  const r = {
    top1: 0.5,
    top1_ci: [0.4, 0.6],
    miou: 0.3,
    miou_ci: { lo: 0.25, hi: 0.35 },
    acc: 0.7,
    acc_ci95: { low: 0.6, high: 0.8 },
    map: 0.2,
    ci: { map: { lower: 0.1, upper: 0.3 } },
    part: { top1: 0.9, top1_ci: [0.85, 0.95] },
    top5: 0.9,
    top5_ci: [0.8],
    ap: 0.1,
    ap_ci: ['a', 'b'],
    f1: 0.5,
    f1_ci_lo: 0.45,
    f1_ci_hi: 0.55,
    auc: 0.6,
    intervals: { auc: [0.5, 0.7] },
  };
  assert.deepEqual(intervalOf(r, ['top1']), [0.4, 0.6]);
  assert.deepEqual(intervalOf(r, ['miou']), [0.25, 0.35]);
  assert.deepEqual(intervalOf(r, ['acc']), [0.6, 0.8]);
  assert.deepEqual(intervalOf(r, ['map']), [0.1, 0.3]);
  assert.deepEqual(intervalOf(r, ['part', 'top1']), [0.85, 0.95]);
  assert.deepEqual(intervalOf(r, ['f1']), [0.45, 0.55]);
  assert.deepEqual(intervalOf(r, ['auc']), [0.5, 0.7]);
  assert.equal(intervalOf(r, ['top5']), null);
  assert.equal(intervalOf(r, ['ap']), null);
  assert.equal(intervalOf(r, ['pixel_acc']), null);
  assert.equal(intervalOf(r, ['nope', 'top1']), null);
  // intervals are never metric columns of their own
  assert.deepEqual(
    metricLeaves({ top1: 1, top1_ci: [0, 1], top1_ci_lo: 0, ci: { top1: [0, 1] }, hyper: { lr_acc: 1 } }),
    [['top1']],
  );
});

test('headlines: each probe its number, with fallbacks; none → null', () => {
  assert.deepEqual(headline('knn', [{ top1: 0.5 }]), { key: 'top1', label: 'top-1' });
  assert.deepEqual(headline('parts', [{ part_map: 0.2 }]), { key: 'part_map', label: 'part mAP' });
  assert.deepEqual(headline('supervised', [{ other: 1 }, { acc: 0.3 }]), { key: 'acc', label: 'accuracy' });
  assert.equal(headline('seg', [{ pixel: 1 }]), null);
});

test('train and validation numbers are told apart from test numbers', () => {
  for (const p of [
    ['train_miou'],
    ['sweep', 'train_top1'],
    ['sweep', 'best', 'val_top1'],
    ['part', 'linear', 'train_top1'],
  ])
    assert.equal(isTrainOrVal(p), true, p.join('.'));
  for (const p of [['top1'], ['per_k', '10', 'top1'], ['part', 'seg', 'miou'], ['retrieval', 'mean_patch', 'map']])
    assert.equal(isTrainOrVal(p), false, p.join('.'));
});

test('entries: probe and dataset from the record (the file stem fills in), baseline right after its run', () => {
  const run = (name: string, evals: ReportRun['evals']): ReportRun => ({
    name,
    method: 'dino',
    config: {},
    metrics: [],
    evals,
  });
  const fm = { test: { kind: 'fashion-mnist', split: 'test' } };
  const e = evalEntries([
    run('a', {
      'knn_random_init@fashion-mnist': { kind: 'knn', data: fm, top1: 0.4 },
      'knn@fashion-mnist': { kind: 'knn', data: fm, top1: 0.5 },
      seg: { miou: 0.3 }, // an older file: no kind, no data
      'knn@whatever': { kind: 'knn', data: { test: { kind: 'folder', root: '/x/photos' } }, top1: 0.8 },
    }),
    run('b', {
      'knn@fashion-mnist': { kind: 'knn', data: fm, top1: 0.6 },
      'knn@random': { kind: 'knn', data: fm, checkpoint: { method: 'random' }, top1: 0.45 },
    }),
  ]);
  assert.deepEqual(
    e.map((x) => [x.probe, x.datasetLabel, x.run, x.baseline]),
    [
      ['knn', 'fashion-mnist', 0, false],
      ['knn', 'fashion-mnist', 0, true],
      ['knn', 'fashion-mnist', 1, false],
      ['knn', 'fashion-mnist', 1, true], // a random-init checkpoint is a baseline whatever its file name
      ['knn', 'folder photos', 0, false],
      ['seg', '–', 0, false],
    ],
  );
  assert.match(e[4]?.dataset ?? '', /^folder-photos-[0-9a-f]{6}$/, 'the key from the record, not the stem');
});
