// Probe correctness on synthetic features with known answers, and hand-worked metric examples.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, test } from 'node:test';
import type { SampleObject } from '../src/data/datasets.js';
import { Rng } from '../src/data/rng.js';
import type { Image } from '../src/data/types.js';
import { type Tensor, tensor } from '../src/engine/index.js';
import { knnClassify } from '../src/eval/knn.js';
import { disposeHead, LINEAR_SWEEP_DEFAULTS, linearSweep } from '../src/eval/linear.js';
import { averagePrecision, confusionMatrix, retrievalAp, segScores } from '../src/eval/metrics.js';
import { cropPad, objectCropBox, partCropBoxes, pyRound } from '../src/eval/parts.js';
import { disposeSegHead, SEG_TRAIN_DEFAULTS, segProbe } from '../src/eval/seg.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) <= eps, `${a} ≠ ${b}`);

/** n points per class: class c = a one-hot at c (times scale) plus small noise; or pure noise. */
function features(
  classes: number,
  perClass: number,
  D: number,
  seed: number,
  separated: boolean,
): { x: Tensor; y: number[] } {
  const rng = new Rng(seed);
  const y: number[] = [];
  const data = new Float32Array(classes * perClass * D);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < perClass; i++) {
      const r = y.length;
      y.push(c);
      for (let d = 0; d < D; d++)
        data[r * D + d] = (separated && d === c ? 5 : 0) + (separated ? 0.1 : 1) * rng.normal();
    }
  }
  // shuffle rows so that no probe can lean on the order
  const perm = rng.shuffle(Array.from({ length: y.length }, (_, i) => i));
  const xs = new Float32Array(data.length);
  const ys = perm.map((p, r) => {
    xs.set(data.subarray(p * D, (p + 1) * D), r * D);
    return y[p] as number;
  });
  return { x: tensor(xs, [y.length, D]), y: ys };
}

describe('k-NN (DINO weighted vote)', () => {
  test('label-encoding features: 100% top-1 at every k', () => {
    const tr = features(4, 50, 16, 1, true);
    const te = features(4, 20, 16, 2, true);
    const r = knnClassify(tr.x, tr.y, te.x, te.y, 4, { ks: [10, 20, 100, 200], temperature: 0.07 });
    for (const k of ['10', '20', '100', '200']) {
      assert.equal(r[k]?.top1, 1, `k=${k}`);
      assert.equal(r[k]?.top5, 1);
    }
    assert.equal(r['200']?.k_used, 200);
  });
  test('random features: chance level', () => {
    const tr = features(10, 100, 32, 3, false);
    const te = features(10, 50, 32, 4, false);
    const r = knnClassify(tr.x, tr.y, te.x, te.y, 10, { ks: [20], temperature: 0.07 });
    assert.ok(Math.abs((r['20']?.top1 ?? 0) - 0.1) < 0.05, `top-1 ${r['20']?.top1} not near 0.1`);
    assert.ok(Math.abs((r['20']?.top5 ?? 0) - 0.5) < 0.1, `top-5 ${r['20']?.top5} not near 0.5`);
  });
  test('k larger than the training set is clamped', () => {
    const tr = features(2, 3, 4, 5, true);
    const r = knnClassify(tr.x, tr.y, tr.x, tr.y, 2, { ks: [20], temperature: 0.07 });
    assert.equal(r['20']?.k_used, 6);
    assert.equal(r['20']?.top1, 1);
  });
});

describe('linear probe', () => {
  const o = { ...LINEAR_SWEEP_DEFAULTS, epochs: 30, lrs: [0.1, 1], wds: [0] };
  test('label-encoding features: 100% test accuracy, sweep recorded', () => {
    const tr = features(5, 40, 12, 6, true);
    const te = features(5, 20, 12, 7, true);
    const { result, head } = linearSweep(tr.x, tr.y, te.x, te.y, 5, o);
    disposeHead(head);
    assert.equal(result.top1, 1);
    assert.equal(result.grid.length, 2);
    assert.equal(result.n_val, 40);
    assert.ok([0.1, 1].includes(result.best.lr));
  });
  test('random features: chance level on held-out data', () => {
    const tr = features(10, 60, 16, 8, false);
    const te = features(10, 60, 16, 9, false);
    const { result, head } = linearSweep(tr.x, tr.y, te.x, te.y, 10, o);
    disposeHead(head);
    assert.ok(Math.abs(result.top1 - 0.1) < 0.06, `top-1 ${result.top1} not near 0.1`);
  });
  test('deterministic for a seed', () => {
    const tr = features(3, 20, 6, 10, false);
    const a = linearSweep(tr.x, tr.y, tr.x, tr.y, 3, o);
    const b = linearSweep(tr.x, tr.y, tr.x, tr.y, 3, o);
    assert.deepEqual(a.head.weight.toFloat32(), b.head.weight.toFloat32());
    disposeHead(a.head);
    disposeHead(b.head);
  });
});

describe('segmentation metrics', () => {
  test('mIoU from a hand-computed confusion matrix, ignore index and an absent class', () => {
    // 10 pixels, 4 classes, ignore 255. Pixel 6 is ignored; class 3 is in neither GT nor prediction.
    const gt = [0, 0, 1, 1, 2, 2, 255, 1, 0, 2];
    const pred = [0, 1, 1, 1, 2, 0, 2, 1, 0, 1];
    const m = confusionMatrix(gt, pred, 4, 255);
    // rows = ground truth, columns = prediction
    assert.deepEqual(Array.from(m.counts), [
      2,
      1,
      0,
      0, //
      0,
      3,
      0,
      0, //
      1,
      1,
      1,
      0, //
      0,
      0,
      0,
      0,
    ]);
    const s = segScores(m);
    // IoU0 = 2/(3+3−2) = 0.5; IoU1 = 3/(3+5−3) = 0.6; IoU2 = 1/(3+1−1) = 1/3; class 3: 0/0 → excluded
    assert.deepEqual(
      s.per_class_iou.slice(0, 3).map((v) => Number(v?.toFixed(12))),
      [0.5, 0.6, Number((1 / 3).toFixed(12))],
    );
    assert.equal(s.per_class_iou[3], null);
    close(s.miou, (0.5 + 0.6 + 1 / 3) / 3); // 0.47778
    close(s.pixel_acc, 6 / 9);
    close(s.mean_class_acc, (2 / 3 + 1 + 1 / 3) / 3);
    assert.equal(s.classes_counted, 3);
    assert.equal(s.pixels, 9);
  });
  test('a class predicted but never present counts with IoU 0', () => {
    const s = segScores(confusionMatrix([0, 0, 0, 0], [0, 0, 0, 1], 2));
    assert.deepEqual(s.per_class_iou, [0.75, 0]);
    close(s.miou, 0.375);
  });
  test('labels outside the class range are an error, not a silent miss', () => {
    assert.throws(() => confusionMatrix([0, 5], [0, 0], 3, 255), /label 5 .* outside 0\.\.2/);
  });
});

describe('segmentation probe (BN + 1x1 head, bilinear upsampling)', () => {
  // A 4x4 patch grid, labels at 16x16 (4 px per patch). Each image: a class per patch column
  // (vertical stripes on patch boundaries), so bilinear upsampling never blurs across a class edge
  // by more than 3/8: label-encoding tokens must give mIoU 1.
  const G = 4;
  const R = 16;
  function stripes(n: number, classes: number, seed: number, separated: boolean) {
    const rng = new Rng(seed);
    const D = classes + 2;
    const x = new Float32Array(n * G * G * D);
    const masks: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const cols = Array.from({ length: G }, () => rng.int(0, classes));
      const m = new Uint8Array(R * R);
      for (let py = 0; py < R; py++)
        for (let px = 0; px < R; px++) m[py * R + px] = cols[Math.floor(px / (R / G))] as number;
      if (i % 3 === 0) m.fill(255, 0, R); // an ignored top row in some images
      masks.push(m);
      for (let t = 0; t < G * G; t++) {
        for (let d = 0; d < D; d++) {
          const o = ((i * G * G + t) * D + d) as number;
          x[o] = separated ? (d === cols[t % G] ? 1 : 0) + 0.01 * rng.normal() : rng.normal();
        }
      }
    }
    return { patches: tensor(x, [n, G * G, D]), masks };
  }
  const o = { ...SEG_TRAIN_DEFAULTS, steps: 150, batchSize: 8, lr: 0.05 };
  test('label-encoding tokens: mIoU 1 and pixel accuracy 1', () => {
    const tr = stripes(24, 3, 11, true);
    const te = stripes(12, 3, 12, true);
    const { scores, head } = segProbe(tr, te, [G, G], [R, R], 3, 255, ['a', 'b', 'c'], o);
    disposeSegHead(head);
    assert.equal(scores.miou, 1);
    assert.equal(scores.pixel_acc, 1);
    assert.equal(scores.pixels, 12 * R * R - 4 * R); // ignored rows not counted
  });
  test('random tokens: chance-level pixel accuracy', () => {
    const tr = stripes(24, 4, 13, false);
    const te = stripes(24, 4, 14, false);
    const { scores, head } = segProbe(tr, te, [G, G], [R, R], 4, 255, ['a', 'b', 'c', 'd'], o);
    disposeSegHead(head);
    assert.ok(Math.abs(scores.pixel_acc - 0.25) < 0.1, `pixel accuracy ${scores.pixel_acc} not near 0.25`);
    assert.ok(scores.miou < 0.25, `mIoU ${scores.miou} too high for random tokens`);
  });
});

describe('retrieval AP', () => {
  test('hand-computed rankings (sklearn average_precision_score semantics)', () => {
    // ranks 1..5, positives at 1, 3, 5: precisions 1/1, 2/3, 3/5 → AP = (1 + 2/3 + 3/5)/3
    close(averagePrecision([0.9, 0.8, 0.7, 0.6, 0.5], [1, 0, 1, 0, 1]), (1 + 2 / 3 + 3 / 5) / 3);
    // tied scores form one threshold: {0.9}: P=0; {0.8,0.8}: R=1/2, P=1/3; {0.1}: R=1, P=1/2
    close(averagePrecision([0.9, 0.8, 0.8, 0.1], [0, 1, 0, 1]), 0.5 * (1 / 3) + 0.5 * 0.5);
    close(averagePrecision([0.1, 0.2], [1, 1]), 1);
    assert.ok(Number.isNaN(averagePrecision([0.1, 0.2], [0, 0])));
  });
  test('AP (mean over queries) and mAP (mean over classes)', () => {
    // 3 items, labels [0, 0, 1]; similarities row-major, the query itself included
    const sims = new Float32Array([1, 0.5, 0.9, 0.5, 1, 0.2, 0.9, 0.2, 1]);
    const r = retrievalAp(sims, [0, 0, 1]);
    // q0: ranking 0(+), 2(−), 1(+): (1 + 2/3)/2; q1: 1(+), 0(+), 2: 1; q2: 2(+) first: 1
    const q0 = (1 + 2 / 3) / 2;
    close(r.ap, (q0 + 1 + 1) / 3);
    close(r.map, ((q0 + 1) / 2 + 1) / 2);
    close(r.per_class_ap['1'] as number, 1);
  });
  test('matches sklearn where it is importable', (t) => {
    const cases: [number[], number[]][] = [
      [
        [0.9, 0.8, 0.7, 0.6, 0.5],
        [1, 0, 1, 0, 1],
      ],
      [
        [0.9, 0.8, 0.8, 0.1],
        [0, 1, 0, 1],
      ],
      [
        [0.3, 0.3, 0.3, 0.9, 0.1, 0.5],
        [1, 0, 1, 0, 0, 1],
      ],
    ];
    let out: string;
    try {
      const py = `import json,sys\nfrom sklearn.metrics import average_precision_score as a\nprint(json.dumps([a(y,s) for s,y in json.loads(sys.argv[1])]))`;
      // LOCUS_SKLEARN_PYTHON: a python with scikit-learn (e.g. a venv), if Debian's has none
      const python = process.env.LOCUS_SKLEARN_PYTHON ?? '/usr/bin/python3';
      out = execFileSync(python, ['-c', py, JSON.stringify(cases)], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      t.skip(
        'sklearn is not importable by /usr/bin/python3 (set LOCUS_SKLEARN_PYTHON): compared with the hand-worked values only',
      );
      return;
    }
    const want = JSON.parse(out) as number[];
    for (const [i, [s, y]] of cases.entries()) close(averagePrecision(s, y), want[i] as number, 1e-12);
  });
});

describe('part crops (keypoint-centred, the reference rule)', () => {
  const obj = (kps: [number, number][]): SampleObject => ({
    cls: 0,
    box: [0, 0, 1, 1],
    parts: kps.map((k, i) => ({ type: i, box: [0, 0, 1, 1], keypoint: k })),
  });
  test("python's round: halves to even", () => {
    assert.deepEqual([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4, 2.6].map(pyRound), [0, 2, 2, 4, 0, -2, 2, 3]);
  });
  test('hand-worked boxes, unclamped and clamped', () => {
    // keypoints k0 (10.4, 20.6), k1 (20.4, 20.6), k2 (10.4, 50.6): nearest distances 10, 10, 30
    const objs = [
      obj([
        [10.4, 20.6],
        [20.4, 20.6],
      ]),
      obj([[10.4, 50.6]]),
    ];
    // unclamped: d = 5, 5, 15 → half = round(2.5) = 2, 2, round(7.5) = 8 → sides 4, 4, 16
    const raw = partCropBoxes(objs, 64, { minSide: 0, maxSide: 1000 });
    assert.deepEqual(
      raw.map((c) => c.box),
      [
        [8, 19, 12, 23], // 10.4 ± 2 → round(8.4) = 8, round(12.4) = 12; 20.6 ± 2 → 19, 23
        [18, 19, 22, 23],
        [2, 43, 18, 59], // 10.4 ± 8 → 2, 18; 50.6 ± 8 → 43, 59
      ],
    );
    assert.deepEqual(
      raw.map((c) => c.label),
      [0, 1, 0],
    );
    // default clamp [16, 32] on a 64-px canvas: the two side-4 crops grow to 16
    const clamped = partCropBoxes(objs, 64);
    assert.deepEqual(
      clamped.map((c) => c.box),
      [
        [2, 13, 18, 29],
        [12, 13, 28, 29],
        [2, 43, 18, 59],
      ],
    );
    // on a 128-px canvas the clamp range doubles: sides ≥ 32
    assert.deepEqual(
      partCropBoxes(objs, 128).map((c) => c.side),
      [32, 32, 32],
    );
  });
  test('object crop is the square around the box; crops are zero-padded past the edges', () => {
    assert.deepEqual(objectCropBox({ cls: 1, box: [10, 20, 30, 30] }), [10, 15, 30, 35]);
    const img: Image = { width: 3, height: 3, channels: 1, data: Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) };
    const c = cropPad(img, [-1, -1, 2, 2]);
    assert.deepEqual(Array.from(c.data), [0, 0, 0, 0, 1, 2, 0, 4, 5]);
  });
});
