// Shortcut check (issue 12, item 5): can a linear read-out recover a scene's background palette from the
// frozen features? Crop-invariance objectives could match two views of one scene by its palette instead of
// its items. Ridge regression (closed form, λ picked on a validation split) from CLS or mean-patch features
// of eval scenes to (a) the mean colour of the visible background, (b) the mean colour of the visible items
// (the cue segmentation needs); R² on held-out scenes. Trained backbone against a random init of the same
// architecture (the random ViT's features are close to linear in colour, so read the difference).
//
// Usage: node dist/bench/palette.js --checkpoint RUN [--n 1200] [--seed 0]. Last line: one JSON object.
import { renderScene } from '../src/data/scenes.js';
import { noGrad, tidy } from '../src/engine/index.js';
import { defaultInput, type EvalBackbone, imagesToTensor } from '../src/eval/features.js';
import { loadRunCheckpoint, randomBackbone } from '../src/eval/index.js';

function arg(name: string, def?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : def;
  if (v === undefined) throw new Error(`bench/palette: --${name} is required`);
  return v;
}

interface Data {
  features: { cls: Float64Array[]; mean: Float64Array[] };
  background: number[][]; // mean visible background RGB per scene
  items: number[][]; // mean visible item RGB per scene
}

function targets(n: number): { images: ReturnType<typeof renderScene>['image'][]; bg: number[][]; it: number[][] } {
  const images = [];
  const bg: number[][] = [];
  const it: number[][] = [];
  for (let i = 0; i < n; i++) {
    const s = renderScene('eval', i);
    images.push(s.image);
    const sums = [
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ];
    for (let p = 0; p < s.labels.length; p++) {
      const acc = sums[s.labels[p] === 0 ? 0 : 1] as number[];
      for (let c = 0; c < 3; c++) acc[c] = (acc[c] as number) + (s.image.data[3 * p + c] as number);
      acc[3] = (acc[3] as number) + 1;
    }
    const mean = (a: number[]) => a.slice(0, 3).map((x) => x / Math.max(1, a[3] as number));
    bg.push(mean(sums[0] as number[]));
    it.push(mean(sums[1] as number[]));
  }
  return { images, bg, it };
}

function embed(bb: EvalBackbone, images: ReturnType<typeof renderScene>['image'][]): Data['features'] {
  const input = defaultInput(bb.vit);
  const cls: Float64Array[] = [];
  const mean: Float64Array[] = [];
  for (let i = 0; i < images.length; i += 64) {
    tidy(() =>
      noGrad(() => {
        const x = imagesToTensor(images.slice(i, i + 64), input);
        const out = bb.vit.forward(x);
        const D = bb.vit.cfg.dim;
        const c = out.cls.to('float64').toArray() as Float64Array;
        const m = out.patches.mean(1).to('float64').toArray() as Float64Array;
        for (let r = 0; r < c.length / D; r++) {
          cls.push(c.slice(r * D, (r + 1) * D));
          mean.push(m.slice(r * D, (r + 1) * D));
        }
      }),
    );
  }
  return { cls, mean };
}

/** Solves (A + λI) w = b for symmetric positive-definite A by Cholesky (float64). */
function solve(A: Float64Array, d: number, lambda: number, B: Float64Array, k: number): Float64Array {
  const L = new Float64Array(d * d);
  for (let i = 0; i < d; i++)
    for (let j = 0; j <= i; j++) {
      let s = (A[i * d + j] as number) + (i === j ? lambda : 0);
      for (let q = 0; q < j; q++) s -= (L[i * d + q] as number) * (L[j * d + q] as number);
      L[i * d + j] = i === j ? Math.sqrt(Math.max(s, 1e-300)) : s / (L[j * d + j] as number);
    }
  const W = new Float64Array(d * k);
  for (let c = 0; c < k; c++) {
    const y = new Float64Array(d);
    for (let i = 0; i < d; i++) {
      let s = B[i * k + c] as number;
      for (let q = 0; q < i; q++) s -= (L[i * d + q] as number) * (y[q] as number);
      y[i] = s / (L[i * d + i] as number);
    }
    for (let i = d - 1; i >= 0; i--) {
      let s = y[i] as number;
      for (let q = i + 1; q < d; q++) s -= (L[q * d + i] as number) * (W[q * k + c] as number);
      W[i * k + c] = s / (L[i * d + i] as number);
    }
  }
  return W;
}

/** Ridge R² (mean over the target's channels) on the test rows; λ chosen on a validation split of train. */
export function ridgeR2(X: Float64Array[], Y: number[][], nTrain: number): { r2: number; lambda: number } {
  const d = (X[0] as Float64Array).length + 1;
  const k = (Y[0] as number[]).length;
  const row = (i: number) => [...(X[i] as Float64Array), 1];
  // standardise features on the training rows
  const mu = new Float64Array(d - 1);
  const sd = new Float64Array(d - 1);
  for (let i = 0; i < nTrain; i++) for (let j = 0; j < d - 1; j++) mu[j] = (mu[j] as number) + (X[i]?.[j] as number);
  for (let j = 0; j < d - 1; j++) mu[j] = (mu[j] as number) / nTrain;
  for (let i = 0; i < nTrain; i++)
    for (let j = 0; j < d - 1; j++) sd[j] = (sd[j] as number) + ((X[i]?.[j] as number) - (mu[j] as number)) ** 2;
  for (let j = 0; j < d - 1; j++) sd[j] = Math.sqrt((sd[j] as number) / nTrain) + 1e-8;
  const z = (i: number) => row(i).map((v, j) => (j < d - 1 ? (v - (mu[j] as number)) / (sd[j] as number) : 1));
  const fit = (rows: number[], lambda: number) => {
    const A = new Float64Array(d * d);
    const B = new Float64Array(d * k);
    for (const i of rows) {
      const x = z(i);
      const y = Y[i] as number[];
      for (let a = 0; a < d; a++) {
        for (let b = 0; b < d; b++) A[a * d + b] = (A[a * d + b] as number) + (x[a] as number) * (x[b] as number);
        for (let c = 0; c < k; c++) B[a * k + c] = (B[a * k + c] as number) + (x[a] as number) * (y[c] as number);
      }
    }
    return solve(A, d, lambda, B, k);
  };
  const r2 = (W: Float64Array, rows: number[]) => {
    let tot = 0;
    for (let c = 0; c < k; c++) {
      const ys = rows.map((i) => (Y[i] as number[])[c] as number);
      const m = ys.reduce((a, b) => a + b, 0) / ys.length;
      let ssr = 0;
      let sst = 0;
      rows.forEach((i, r) => {
        const x = z(i);
        let p = 0;
        for (let a = 0; a < d; a++) p += (x[a] as number) * (W[a * k + c] as number);
        ssr += (p - (ys[r] as number)) ** 2;
        sst += ((ys[r] as number) - m) ** 2;
      });
      tot += 1 - ssr / sst;
    }
    return tot / k;
  };
  const idx = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const nFit = Math.floor(nTrain * 0.8);
  let best = { lambda: 1, r2: Number.NEGATIVE_INFINITY };
  for (const lambda of [0.01, 0.1, 1, 10, 100, 1000]) {
    const v = r2(fit(idx(0, nFit), lambda), idx(nFit, nTrain));
    if (v > best.r2) best = { lambda, r2: v };
  }
  return { lambda: best.lambda, r2: r2(fit(idx(0, nTrain), best.lambda), idx(nTrain, X.length)) };
}

async function main(): Promise<void> {
  const ck = arg('checkpoint');
  const n = Number(arg('n', '1200'));
  const seed = Number(arg('seed', '0'));
  const trained = loadRunCheckpoint(ck);
  const random = randomBackbone({ ...trained.vit.cfg }, seed);
  const t = targets(n);
  const nTrain = Math.floor(n * 0.75);
  const out: Record<string, Record<string, number>> = {};
  for (const [name, bb] of [
    ['trained', trained],
    ['random', random],
  ] as const) {
    const f = embed(bb, t.images);
    out[name] = {
      background_cls: ridgeR2(f.cls, t.bg, nTrain).r2,
      background_mean: ridgeR2(f.mean, t.bg, nTrain).r2,
      items_cls: ridgeR2(f.cls, t.it, nTrain).r2,
      items_mean: ridgeR2(f.mean, t.it, nTrain).r2,
    };
    const o = out[name] as Record<string, number>;
    console.log(
      `${name.padEnd(8)} R² background colour: CLS ${o.background_cls?.toFixed(3)} mean-patch ${o.background_mean?.toFixed(3)}` +
        ` | item colour: CLS ${o.items_cls?.toFixed(3)} mean-patch ${o.items_mean?.toFixed(3)}`,
    );
  }
  console.log(JSON.stringify({ checkpoint: ck, method: trained.method, step: trained.step, n, nTrain, r2: out }));
  trained.dispose?.();
  random.dispose?.();
}

main().catch((e) => {
  console.error(`bench/palette: ${(e as Error).message}`);
  process.exit(1);
});
