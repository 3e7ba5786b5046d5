// Report pictures from a checkpoint: a few eval scenes, the eval backbone's last-layer CLS attention per
// head, and the first three principal components of its patch features as RGB.
import { IMAGENET_MEAN, IMAGENET_STD, normalizeInto, resize } from '../data/augment.js';
import { type DatasetSpec, openDataset } from '../data/datasets.js';
import { noGrad, tensor, tidy } from '../engine/index.js';
import type { EvalTarget } from '../eval/dispatch.js';
import type { GrayMap, ReportPicture, RgbMap } from '../report/html.js';

/** Top-3 principal-component scores of the rows of X [n, d], each scaled to [0, 1] → RGB map. */
export function pcaRgb(x: Float32Array, n: number, d: number, gw: number, gh: number): RgbMap {
  const c = new Float64Array(n * d);
  for (let j = 0; j < d; j++) {
    let m = 0;
    for (let i = 0; i < n; i++) m += x[i * d + j] as number;
    m /= n;
    for (let i = 0; i < n; i++) c[i * d + j] = (x[i * d + j] as number) - m;
  }
  // Eigenvectors of the n×n Gram matrix are the PC scores (up to scale): power iteration + deflation.
  const g = new Float64Array(n * n);
  for (let a = 0; a < n; a++)
    for (let b = a; b < n; b++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += (c[a * d + j] as number) * (c[b * d + j] as number);
      g[a * n + b] = s;
      g[b * n + a] = s;
    }
  const out = new Float32Array(n * 3);
  for (let comp = 0; comp < 3; comp++) {
    let v = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + comp * 78.233));
    let lambda = 0;
    for (let it = 0; it < 200; it++) {
      const w = new Float64Array(n);
      for (let a = 0; a < n; a++) {
        let s = 0;
        for (let b = 0; b < n; b++) s += (g[a * n + b] as number) * (v[b] as number);
        w[a] = s;
      }
      const norm = Math.hypot(...w) || 1;
      lambda = norm;
      v = w.map((t) => t / norm);
    }
    for (let a = 0; a < n; a++)
      for (let b = 0; b < n; b++)
        g[a * n + b] = (g[a * n + b] as number) - lambda * (v[a] as number) * (v[b] as number);
    const lo = Math.min(...v);
    const hi = Math.max(...v);
    for (let i = 0; i < n; i++) out[i * 3 + comp] = hi > lo ? ((v[i] as number) - lo) / (hi - lo) : 0.5;
  }
  return { width: gw, height: gh, data: out };
}

/** Pictures of `count` eval scenes (the run's dataset kind when it is scenes or parts, else scenes). */
export async function scenePictures(t: EvalTarget, count = 4): Promise<ReportPicture[]> {
  const ds0 = t.config.data.dataset;
  const spec: DatasetSpec =
    ds0.kind === 'scenes' || ds0.kind === 'parts'
      ? ({ ...ds0, split: 'eval', length: count } as DatasetSpec)
      : { kind: 'scenes', split: 'eval', length: count, size: 64 };
  const ds = await openDataset(spec);
  const vit = t.vit;
  const size = vit.cfg.imgSize;
  const g = size / vit.cfg.patchSize;
  const n = g * g;
  const pics: ReportPicture[] = [];
  vit.eval();
  for (let i = 0; i < count; i++) {
    const s = await ds.get(i);
    const data = new Float32Array(3 * size * size);
    normalizeInto(resize(s.image, size, size, 'bilinear'), data, 0, IMAGENET_MEAN, IMAGENET_STD);
    const { attn, patches, H, D } = tidy(() =>
      noGrad(() => {
        const out = vit.forward(tensor(data, [1, 3, size, size]), { attention: true });
        const a = out.attention;
        if (!a) throw new Error('the backbone returned no attention map');
        const cls = a.select(0, 0).select(1, 0).narrow(1, 1, n); // [H, N]: CLS → patches
        return {
          attn: cls.toFloat32(),
          patches: out.patches.select(0, 0).toFloat32(),
          H: a.shape[1] as number,
          D: out.patches.shape[2] as number,
        };
      }),
    );
    const attention: GrayMap[] = Array.from({ length: H }, (_, h) => ({
      width: g,
      height: g,
      data: attn.slice(h * n, (h + 1) * n),
    }));
    const img = s.image;
    const input: RgbMap = { width: img.width, height: img.height, data: img.data };
    const pic: ReportPicture = { input, attention, pca: pcaRgb(patches, n, D, g, g) };
    if (s.mask) pic.segGt = { width: img.width, height: img.height, data: s.mask, classes: ds.maskClasses ?? 256 };
    pics.push(pic);
  }
  return pics;
}
