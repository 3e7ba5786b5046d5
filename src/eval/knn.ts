// DINO's weighted k-NN classifier (facebookresearch/dino eval_knn.py): L2-normalised features, cosine
// similarity to every training feature, the top-k neighbours vote for their class with weight
// exp(sim / T); T = 0.07, k ∈ {10, 20, 100, 200}, k = 20 reported; top-1 and top-5.
import { noGrad, normalize, type Tensor, tensor, tidy } from '../engine/index.js';
import { type Interval, meanInterval, roundCi, topkHits } from './bootstrap.js';
import {
  type EvalContext,
  embedSet,
  LABELLED_DEFAULTS,
  type LabelledData,
  type ProbeHeader,
  probeHeader,
  timer,
} from './common.js';
import { disposeFeatures } from './features.js';
import { type ImageFeature, imageFeatureKinds, pickFeature } from './imagefeat.js';
import { topkAccuracy } from './metrics.js';
import { classificationSets, OBJECT_CROP_DEFAULTS, type ObjectCropRule } from './objects.js';

export interface KnnScore {
  top1: number;
  top1_ci: Interval; // 95% bootstrap over test images
  top5: number;
  top5_ci: Interval;
  k_used: number;
}

export interface KnnOptions extends LabelledData {
  ks: number[];
  kReport: number;
  temperature: number;
  feature: ImageFeature; // the headline (top1/top5)
  features: ImageFeature[]; // every readout scored (by_feature)
  chunk: number; // test rows per similarity block
  seed: number;
  data: string | null; // a named preset (objects.ts LABELLED_PRESETS) replacing train/test; null = as given
  objectCrop: ObjectCropRule; // for scenes/parts data: item crops with context
}

export const KNN_DEFAULTS: KnnOptions = {
  ...LABELLED_DEFAULTS,
  ks: [10, 20, 100, 200],
  kReport: 20,
  temperature: 0.07,
  feature: 'cls',
  features: ['cls', 'mean'],
  chunk: 256,
  seed: 0,
  data: null,
  objectCrop: OBJECT_CROP_DEFAULTS,
};

/** top-1/top-5 per k. A k larger than the training set is clamped to its size (recorded as k_used). */
export function knnClassify(
  trainX: Tensor,
  trainY: ArrayLike<number>,
  testX: Tensor,
  testY: ArrayLike<number>,
  classes: number,
  o: { ks: number[]; temperature: number; chunk?: number; seed?: number },
): Record<string, KnnScore> {
  const nTrain = trainX.shape[0] as number;
  const nTest = testX.shape[0] as number;
  const kmax = Math.min(nTrain, Math.max(...o.ks));
  const chunk = o.chunk ?? 256;
  const T = o.temperature;
  const K5 = Math.min(5, classes);
  // ranked[k] holds the K5 best classes of every test row, for each k
  const ranked = new Map<number, number[]>(o.ks.map((k) => [k, []]));
  noGrad(() => {
    const [tr, ytr] = tidy(() => [normalize(trainX, 1), tensor(Array.from(trainY), [nTrain], { dtype: 'int64' })]);
    try {
      for (let s = 0; s < nTest; s += chunk) {
        const b = Math.min(chunk, nTest - s);
        tidy(() => {
          const q = normalize(testX.narrow(0, s, b), 1);
          const [sim, idx] = q.matmul((tr as Tensor).T).topk(kmax, 1); // sorted, best first
          const cand = (ytr as Tensor).indexSelect(0, idx.flatten()).reshape(b, kmax);
          const w = sim.div(T).exp(); // [b, kmax]
          const onehot = cand.oneHot(classes).to('float32'); // [b, kmax, C]
          for (const k of o.ks) {
            const kk = Math.min(k, kmax);
            const votes = onehot
              .narrow(1, 0, kk)
              .mul(w.narrow(1, 0, kk).unsqueeze(-1))
              .sum(1); // [b, C]
            (ranked.get(k) as number[]).push(...votes.topk(K5, 1)[1].toNumbers());
          }
        });
      }
    } finally {
      tr?.dispose();
      ytr?.dispose();
    }
  });
  const out: Record<string, KnnScore> = {};
  for (const k of o.ks) {
    const r = ranked.get(k) as number[];
    out[String(k)] = {
      top1: topkAccuracy(r, K5, testY, 1),
      top1_ci: roundCi(meanInterval(topkHits(r, K5, testY, 1), o.seed ?? 0)),
      top5: topkAccuracy(r, K5, testY, 5),
      top5_ci: roundCi(meanInterval(topkHits(r, K5, testY, 5), o.seed ?? 0)),
      k_used: Math.min(k, kmax),
    };
  }
  return out;
}

export interface KnnResult extends ProbeHeader {
  kind: 'knn';
  top1: number; // at k = kReport, feature `feature`
  top1_ci: Interval;
  top5: number;
  top5_ci: Interval;
  feature: ImageFeature;
  k: number;
  per_k: Record<string, KnnScore>;
  /** Every readout at k = kReport (CLS, mean patch token, a method's own image token). */
  by_feature: Partial<Record<ImageFeature, KnnScore>>;
  chance: number;
  classes: number;
  hyper: Omit<KnnOptions, 'train' | 'test'>;
}

export async function knnEval(ctx: EvalContext, opts: Partial<KnnOptions> = {}): Promise<KnnResult> {
  const o: KnnOptions = { ...KNN_DEFAULTS, ...opts, seed: opts.seed ?? ctx.seed };
  if (!o.ks.includes(o.kReport)) o.ks = [...o.ks, o.kReport].sort((a, b) => a - b);
  const t = timer();
  const feats = [...new Set([o.feature, ...o.features])];
  const [train, test] = await classificationSets(o, o.seed);
  const ftr = await embedSet(ctx, train, imageFeatureKinds(ctx, feats), 'knn: train');
  const fte = await embedSet(ctx, test, imageFeatureKinds(ctx, feats), 'knn: test');
  const extractS = t.lap();
  const classes = Math.max(train.classes, test.classes);
  const byFeature: Partial<Record<ImageFeature, KnnScore>> = {};
  let perK: Record<string, KnnScore> = {};
  for (const f of feats) {
    const r = knnClassify(pickFeature(ftr, f), train.labels, pickFeature(fte, f), test.labels, classes, o);
    byFeature[f] = r[String(o.kReport)] as KnnScore;
    if (f === o.feature) perK = r;
  }
  disposeFeatures(ftr);
  disposeFeatures(fte);
  const rep = perK[String(o.kReport)] as KnnScore;
  const { train: _tr, test: _te, ...hyper } = o;
  return {
    ...probeHeader(
      ctx,
      'knn',
      { train: train.spec, test: test.spec, n_train: train.n, n_test: test.n },
      { extract_s: extractS, knn_s: t.lap(), total_s: t.total() },
    ),
    kind: 'knn',
    top1: rep.top1,
    top1_ci: rep.top1_ci,
    top5: rep.top5,
    top5_ci: rep.top5_ci,
    feature: o.feature,
    k: o.kReport,
    per_k: perK,
    by_feature: byFeature,
    chance: 1 / classes,
    classes,
    hyper,
  };
}
