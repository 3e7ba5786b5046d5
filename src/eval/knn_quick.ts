// A quick DINO-style weighted k-NN (eval_knn.py: L2-normalised CLS features, cosine similarity, the top-k
// neighbours vote with weight exp(sim/T), T = 0.07, k = 20) on Fashion-MNIST items: a memory bank of
// the first `trainItems` train images, classified: the first `testItems` test images. The eval suite
// (src/eval/knn.ts) has the full protocol; this one is small and fast for `locus main` and acceptance.
import { performance } from 'node:perf_hooks';
import { IMAGENET_MEAN, IMAGENET_STD, normalizeInto, resize } from '../data/augment.js';
import { fashionMnistImage, loadFashionMnist } from '../data/fashion_mnist.js';
import { cat, keep, noGrad, normalize, type Tensor, tensor, tidy } from '../engine/index.js';
import type { VisionTransformer } from '../nn/index.js';

export interface QuickKnnOptions {
  k: number;
  temperature: number;
  trainItems: number;
  testItems: number;
  batchSize: number;
  size?: number; // input side; default the model's imgSize (28-px items are resized bilinearly)
  dir?: string; // Fashion-MNIST directory
}

export interface QuickKnnResult {
  kind: 'knn';
  protocol: string;
  top1: number; // %
  top5: number; // %
  k: number;
  temperature: number;
  train_items: number;
  test_items: number;
  input_size: number;
  feature: string;
  seconds: number;
}

const CLASSES = 10;

/** L2-normalised CLS features [n, D] of the first n items of a split. */
function features(
  vit: VisionTransformer,
  split: 'train' | 'test',
  n: number,
  size: number,
  batch: number,
  dir?: string,
): Tensor {
  const ds = loadFashionMnist(split, dir);
  const count = Math.min(n, ds.count);
  const parts: Tensor[] = [];
  for (let s = 0; s < count; s += batch) {
    const b = Math.min(batch, count - s);
    const per = 3 * size * size;
    const data = new Float32Array(b * per);
    for (let i = 0; i < b; i++)
      normalizeInto(
        resize(fashionMnistImage(ds, s + i), size, size, 'bilinear'),
        data,
        i * per,
        IMAGENET_MEAN,
        IMAGENET_STD,
      );
    parts.push(keep(tidy(() => noGrad(() => normalize(vit.forward(tensor(data, [b, 3, size, size])).cls, -1)))));
  }
  const all = cat(parts, 0);
  for (const p of parts) p.dispose();
  return all;
}

export function labelsOf(split: 'train' | 'test', n: number, dir?: string): Uint8Array {
  const ds = loadFashionMnist(split, dir);
  return ds.labels.subarray(0, Math.min(n, ds.count));
}

/** Weighted k-NN votes → top-1/top-5 accuracy (%). trainX, testX: L2-normalised rows. */
export function weightedKnn(
  trainX: Tensor,
  trainY: ArrayLike<number>,
  testX: Tensor,
  testY: ArrayLike<number>,
  k: number,
  T: number,
): { top1: number; top5: number } {
  const kk = Math.min(k, trainX.shape[0]);
  let c1 = 0;
  let c5 = 0;
  const n = testX.shape[0];
  for (let s = 0; s < n; s += 256) {
    const b = Math.min(256, n - s);
    const [vals, idx] = tidy(() => {
      const sim = testX.narrow(0, s, b).matmul(trainX.T);
      const [v, i] = sim.topk(kk, 1);
      return [v.div(T).exp().toFloat32(), i.toNumbers()] as const;
    });
    for (let r = 0; r < b; r++) {
      const votes = new Float64Array(CLASSES);
      for (let j = 0; j < kk; j++) votes[trainY[idx[r * kk + j] as number] as number] += vals[r * kk + j] as number;
      const order = [...votes.keys()].sort((a, c) => (votes[c] as number) - (votes[a] as number));
      const y = testY[s + r] as number;
      if (order[0] === y) c1++;
      if (order.slice(0, 5).includes(y)) c5++;
    }
  }
  return { top1: (100 * c1) / n, top5: (100 * c5) / n };
}

export function quickKnn(vit: VisionTransformer, o: QuickKnnOptions): QuickKnnResult {
  const t0 = performance.now();
  const size = o.size ?? vit.cfg.imgSize;
  const wasTraining = vit.training;
  vit.eval();
  try {
    const trainX = features(vit, 'train', o.trainItems, size, o.batchSize, o.dir);
    const testX = features(vit, 'test', o.testItems, size, o.batchSize, o.dir);
    const acc = weightedKnn(
      trainX,
      labelsOf('train', o.trainItems, o.dir),
      testX,
      labelsOf('test', o.testItems, o.dir),
      o.k,
      o.temperature,
    );
    const r: QuickKnnResult = {
      kind: 'knn',
      protocol: 'quick weighted k-NN (DINO eval_knn.py vote) on Fashion-MNIST items',
      top1: Number(acc.top1.toFixed(2)),
      top5: Number(acc.top5.toFixed(2)),
      k: o.k,
      temperature: o.temperature,
      train_items: trainX.shape[0],
      test_items: testX.shape[0],
      input_size: size,
      feature: 'CLS after the final norm, L2-normalised',
      seconds: Number(((performance.now() - t0) / 1000).toFixed(1)),
    };
    trainX.dispose();
    testX.dispose();
    return r;
  } finally {
    vit.train(wasTraining);
  }
}
