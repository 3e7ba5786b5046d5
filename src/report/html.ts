// One self-contained static HTML report for one or more runs: inline CSS, inline SVG charts,
// PNG data: URLs, no scripts; a CSP meta tag forbids any network access at view time. The sections live
// beside this file: curves.ts, evals.ts (summary + full probe tables), pictures.ts, configs.ts.
import { parseEvalName } from '../train/evalfiles.js';
import { fmtValue, runStyles } from './charts.js';
import { configSection } from './configs.js';
import { curvesSection } from './curves.js';
import { evalSection } from './evals.js';
import { picturesSection } from './pictures.js';
import { probeOrder } from './records.js';
import { CSS, esc, swatch } from './style.js';
import type { ReportOptions, ReportRun } from './types.js';

export { fmtNumber } from './style.js';
export type { GrayMap, LabelMap, ReportOptions, ReportPicture, ReportRun, RgbMap } from './types.js';

function lastStep(r: ReportRun): string {
  for (let j = (r.metrics?.length ?? 0) - 1; j >= 0; j--) {
    const s = r.metrics[j]?.step;
    if (typeof s === 'number') return fmtValue(s);
  }
  return '–';
}

/** Locus version, short commit, libtorch and device of a run (config.json's provenance), or dashes. */
function provenanceCells(r: ReportRun): string {
  const p = r.provenance ?? (r.config?.provenance as Record<string, unknown> | undefined) ?? {};
  const commit = typeof p.commit === 'string' ? p.commit : null;
  const cell = (v: unknown) => `<td>${v === undefined || v === null ? '–' : esc(v)}</td>`;
  return `${cell(p.locus)}<td title="${esc(commit ?? 'no git checkout recorded')}">${commit ? `<code>${esc(commit.slice(0, 10))}</code>` : '–'}</td>${cell(p.torch)}${cell(p.device)}`;
}

/** Renders runs into one self-contained HTML page. */
export async function renderReport(runs: ReportRun[], opts: ReportOptions = {}): Promise<string> {
  const title = opts.title ?? 'Locus report';
  const date = (opts.generatedAt ?? new Date())
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
  const size = opts.tileSize ?? 96;
  const methods = [...new Set(runs.map((r) => r.method))];
  const st = runStyles(runs.map((r) => r.method));
  const runRows = runs
    .map((r, i) => {
      const stems = Object.keys(r.evals ?? {});
      const kinds = [...new Set(stems.map((k) => parseEvalName(k).probe))].sort(probeOrder);
      const pics = r.pictures?.images.length ?? 0;
      return `<tr><th class="run">${swatch(st[i])}${esc(r.name)}</th><td>${esc(r.method)}</td><td class="num">${lastStep(r)}</td><td class="num">${r.metrics?.length ?? 0}</td><td>${esc(kinds.join(', ') || '–')}${stems.length > kinds.length ? ` <span class="muted">(${stems.length} records)</span>` : ''}</td><td class="num">${pics}</td>${provenanceCells(r)}</tr>`;
    })
    .join('');
  const body = [
    `<header><h1>${esc(title)}</h1>`,
    `<div class="muted">${runs.length} run${runs.length === 1 ? '' : 's'} · methods: ${esc(methods.join(', ') || '–')} · generated ${esc(date)}</div>`,
    '<nav><a href="#runs">Runs</a><a href="#curves">Training curves</a><a href="#evals">Evaluation</a><a href="#pictures">Pictures</a><a href="#config">Config</a></nav></header>',
    '<h2 id="runs">Runs</h2>',
    runs.length === 0
      ? '<p class="muted">No runs.</p>'
      : `<div class="scroll"><table class="runs"><thead><tr><th>run</th><th>method</th><th class="num">last step</th><th class="num">metric rows</th><th>evals</th><th class="num">pictures</th><th>Locus</th><th>commit</th><th>libtorch</th><th>device</th></tr></thead><tbody>${runRows}</tbody></table></div>`,
    '<h2 id="curves">Training curves</h2>',
    curvesSection(runs, st),
    '<h2 id="evals">Evaluation</h2>',
    evalSection(runs, st),
    '<h2 id="pictures">Pictures</h2>',
    '<p class="note">Attention: last-layer CLS attention per head (heat map, normalised per map). PCA: first three principal components of the patch features as RGB.</p>',
    await picturesSection(runs, st, size),
    '<h2 id="config">Config</h2>',
    configSection(runs, st),
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>${esc(title)}</title>
<style>${CSS}</style></head>
<body><main>
${body.join('\n')}
</main></body></html>
`;
}
