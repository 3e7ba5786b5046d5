// Pictures per run: input, last-layer CLS attention per head, PCA of patch features, and the seg
// probe's prediction next to the ground truth, with a class legend.
import { latestEval } from '../train/evalfiles.js';
import { esc } from './charts.js';
import { classColor, heatMapTile, IGNORE_COLOR, labelMapTile, type RgbMap, rgbMapTile, type Tile } from './images.js';
import { type Style, swatch } from './style.js';
import type { ReportRun } from './types.js';

async function tileHtml(make: () => Promise<Tile>, alt: string, size: number): Promise<string> {
  try {
    const t = await make();
    const h = Math.round((size * t.height) / t.width);
    return `<img src="${t.src}" width="${size}" height="${h}" alt="${esc(alt)}" title="${esc(alt)}">`;
  } catch (err) {
    return `<div class="bad" style="width:${size}px">${esc((err as Error).message)}</div>`;
  }
}

export async function picturesSection(runs: ReportRun[], st: Style[], size: number): Promise<string> {
  const out: string[] = [];
  for (const [i, r] of runs.entries()) {
    const images = r.pictures?.images ?? [];
    out.push(`<div class="card"><h3>${swatch(st[i])}${esc(r.name)} <span class="muted">${esc(r.method)}</span></h3>`);
    if (images.length === 0) {
      out.push('<p class="muted">No pictures for this run.</p></div>');
      continue;
    }
    const heads = Math.max(0, ...images.map((im) => im.attention?.length ?? 0));
    const hasPca = images.some((im) => im.pca);
    const hasPred = images.some((im) => im.segPred);
    const hasGt = images.some((im) => im.segGt);
    const head = ['input', ...Array.from({ length: heads }, (_, h) => `head ${h + 1}`)];
    if (hasPca) head.push('PCA');
    if (hasPred) head.push('seg prediction');
    if (hasGt) head.push('seg ground truth');
    out.push(
      `<div class="scroll"><table class="pics"><thead><tr><th></th>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>`,
    );
    const classes = new Map<number, number>(); // class -> count, for the legend
    let maxClasses = 0;
    for (const [j, im] of images.entries()) {
      const cells: string[] = [await tileHtml(() => rgbMapTile(im.input, size), `${r.name} image ${j + 1}`, size)];
      for (let h = 0; h < heads; h++) {
        const a = im.attention?.[h];
        cells.push(a ? await tileHtml(() => heatMapTile(a, size), `image ${j + 1} head ${h + 1}`, size) : '');
      }
      if (hasPca)
        cells.push(im.pca ? await tileHtml(() => rgbMapTile(im.pca as RgbMap, size), `image ${j + 1} PCA`, size) : '');
      for (const [want, m, what] of [
        [hasPred, im.segPred, 'prediction'],
        [hasGt, im.segGt, 'ground truth'],
      ] as const) {
        if (!want) continue;
        if (m) {
          maxClasses = Math.max(maxClasses, m.classes);
          for (const c of m.data) classes.set(c, (classes.get(c) ?? 0) + 1);
        }
        cells.push(m ? await tileHtml(() => labelMapTile(m, size), `image ${j + 1} seg ${what}`, size) : '');
      }
      out.push(`<tr><th class="rowhead">#${j + 1}</th>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`);
    }
    out.push('</tbody></table></div>');
    if (hasPred || hasGt) out.push(segLegend(r, maxClasses, classes));
    out.push('</div>');
  }
  return out.join('\n');
}

function segLegend(r: ReportRun, n: number, present: Map<number, number>): string {
  const names = findClassNames(latestEval(r.evals, 'seg'));
  const shown =
    n <= 32 ? Array.from({ length: n }, (_, c) => c) : [...present.keys()].filter((c) => c < n).sort((a, b) => a - b);
  const items = shown.map(
    (c) =>
      `<span class="${present.has(c) ? '' : 'absent'}"><span class="chip" style="background:${classColor(c)}"></span>${esc(names?.[c] ?? `class ${c}`)}</span>`,
  );
  if ([...present.keys()].some((c) => c >= n))
    items.push(`<span><span class="chip" style="background:${IGNORE_COLOR}"></span>ignore</span>`);
  return `<div class="legend">${items.join('')}</div>`;
}

function findClassNames(o: unknown): string[] | undefined {
  if (!o || typeof o !== 'object') return undefined;
  const names = (o as Record<string, unknown>).class_names;
  return Array.isArray(names) ? names.map(String) : undefined;
}
