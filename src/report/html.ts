// One self-contained static HTML report for one or more runs: inline CSS, inline SVG charts,
// PNG data: URLs, no scripts; a CSP meta tag forbids any network access at view time.
import { esc, fmtValue, lineChart, runStyles, type Series } from './charts.js';
import {
  classColor,
  type GrayMap,
  heatMapTile,
  IGNORE_COLOR,
  type LabelMap,
  labelMapTile,
  type RgbMap,
  rgbMapTile,
  type Tile,
} from './images.js';

export type { GrayMap, LabelMap, RgbMap } from './images.js';

export interface ReportPicture {
  input: RgbMap;
  attention?: GrayMap[]; // one per head, last-layer CLS attention
  pca?: RgbMap; // PCA of patch features as RGB
  segPred?: LabelMap;
  segGt?: LabelMap;
}

export interface ReportRun {
  name: string; // e.g. "dino-seed0"
  method: string; // e.g. "dino", "loca"
  config: Record<string, unknown>; // resolved config
  metrics: Array<Record<string, number>>; // JSONL rows: step, loss, loss parts, lr, wd, ...
  evals: Record<string, Record<string, unknown>>; // probe kind -> result JSON
  pictures?: { images: ReportPicture[] };
}

export interface ReportOptions {
  title?: string;
  generatedAt?: Date;
  /** Display size of a picture tile in CSS px (maps are upscaled nearest-neighbour to at least this). */
  tileSize?: number;
}

// ---------- training curves ----------

const X_KEYS = new Set(['step', 'epoch', 'iter', 'time', 'timestamp', 'wall_time', 'elapsed_s']);
const SCHEDULE_ORDER = ['lr', 'wd', 'weight_decay', 'momentum'];
const GROUPS = ['Losses', 'Schedules', 'Accuracies', 'Throughput', 'Other'] as const;
type Group = (typeof GROUPS)[number];
const DESCRIPTIONS: Record<string, string> = {
  loss: 'total loss',
  lr: 'learning rate',
  wd: 'weight decay',
  weight_decay: 'weight decay',
  momentum: 'teacher EMA momentum',
  teacher_temp: 'teacher temperature',
  teacher_entropy: 'teacher output entropy',
  images_per_s: 'throughput, images/s',
  pos_acc: 'location prediction accuracy',
  rot_acc: 'rotation prediction accuracy',
  grad_norm: 'gradient norm',
};

function metricGroup(key: string): Group {
  if (key.startsWith('loss')) return 'Losses';
  if (SCHEDULE_ORDER.includes(key) || /^(lr|wd)_|temp|momentum/.test(key)) return 'Schedules';
  if (/acc/.test(key)) return 'Accuracies';
  if (/per_s(ec)?$|per_step|throughput|step_time|_ms$/.test(key)) return 'Throughput';
  return 'Other';
}

function metricOrder(a: string, b: string): number {
  const rank = (k: string) => (k === 'loss' ? -2 : SCHEDULE_ORDER.includes(k) ? SCHEDULE_ORDER.indexOf(k) - 10 : 0);
  return rank(a) - rank(b) || a.localeCompare(b);
}

function curvesSection(runs: ReportRun[], st: Style[]): string {
  const keys = new Set<string>();
  for (const r of runs) {
    for (const row of r.metrics ?? [])
      for (const [k, v] of Object.entries(row)) if (!X_KEYS.has(k) && typeof v === 'number') keys.add(k);
  }
  if (keys.size === 0) return '<p class="muted">No training metrics were logged.</p>';
  const byGroup = new Map<Group, string[]>();
  for (const k of [...keys].sort(metricOrder)) {
    const g = metricGroup(k);
    byGroup.set(g, [...(byGroup.get(g) ?? []), k]);
  }
  const out: string[] = ['<div class="charts">'];
  for (const g of GROUPS) {
    for (const k of byGroup.get(g) ?? []) {
      const series: Series[] = [];
      runs.forEach((r, i) => {
        const points: Array<[number, number]> = [];
        (r.metrics ?? []).forEach((row, j) => {
          const v = row[k];
          if (typeof v !== 'number') return;
          const step = row.step;
          points.push([typeof step === 'number' && Number.isFinite(step) ? step : j, v]);
        });
        if (points.length > 0) series.push({ name: r.name, ...(st[i] as Style), points });
      });
      const chart = lineChart({ series, xLabel: 'step', smooth: g !== 'Schedules' });
      const desc = DESCRIPTIONS[k] ?? (k.startsWith('loss_') ? `loss term: ${k.slice(5)}` : '');
      out.push(
        `<figure class="card chart-card"><figcaption><code>${esc(k)}</code> <span class="muted">${esc(desc)}</span><span class="tag">${g}</span></figcaption>${chart}</figure>`,
      );
    }
  }
  out.push('</div>');
  return out.join('\n');
}

// ---------- evaluation tables ----------

const PROBE_ORDER = ['knn', 'linear', 'seg', 'parts', 'location'];
const METRIC_RE =
  /(^|_)(top\d+|acc|accuracy|miou|iou|map|ap|gap|f1|auc|nmi|ari|loss|error|err|score|r2)(_|$)|^(map|ap|acc)\w*/i;

type Direction = 'max' | 'min' | null;
function direction(path: string[]): Direction {
  const leaf = (path[path.length - 1] ?? '').toLowerCase();
  if (/gap/.test(leaf) || path.some((p) => /gap/i.test(p))) return null; // sign convention varies
  return /loss|err/.test(leaf) ? 'min' : 'max';
}

interface Leaf {
  path: string[];
  value: unknown;
}

function leaves(obj: unknown, path: string[] = []): Leaf[] {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return [{ path, value: obj }];
  return Object.entries(obj as Record<string, unknown>).flatMap(([k, v]) => leaves(v, [...path, k]));
}

function probeOrder(a: string, b: string): number {
  const ia = PROBE_ORDER.indexOf(a);
  const ib = PROBE_ORDER.indexOf(b);
  return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
}

export function fmtNumber(v: unknown): string {
  if (typeof v !== 'number') return v === undefined ? '' : String(v);
  if (Number.isNaN(v)) return 'NaN';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return v.toFixed(a >= 100 ? 1 : a >= 10 ? 2 : 4);
}

function bestOf(values: Array<number | undefined>, dir: Direction): number | undefined {
  const ok = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (dir === null || ok.length < 2 || ok.every((v) => v === ok[0])) return undefined;
  return dir === 'max' ? Math.max(...ok) : Math.min(...ok);
}

/** A number cell; `meter` adds a small bar for values on a 0..1 scale (IoU). */
function valueCell(v: number | undefined, best: number | undefined, meter = false): string {
  if (v === undefined) return '<td class="num na">–</td>';
  const cls = best !== undefined && v === best ? 'num best' : 'num';
  const w = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) * 100 : 0;
  const bar = meter ? `<span class="meter"><span style="width:${w.toFixed(1)}%"></span></span>` : '';
  const text = meter ? `<span class="v">${esc(fmtNumber(v))}</span>` : esc(fmtNumber(v));
  return `<td class="${cls}" title="${esc(String(v))}">${bar}${text}</td>`;
}

function evalSection(runs: ReportRun[], st: Style[]): string {
  const kinds = [...new Set(runs.flatMap((r) => Object.keys(r.evals ?? {})))].sort(probeOrder);
  if (kinds.length === 0) return '<p class="muted">No evaluation results.</p>';
  // Columns: numeric metric leaves, grouped by probe kind; other leaves go to the per-run settings.
  const cols: Array<{ kind: string; path: string[] }> = [];
  const seen = new Set<string>();
  for (const kind of kinds) {
    for (const r of runs) {
      for (const { path, value } of leaves(r.evals?.[kind] ?? {})) {
        const id = JSON.stringify([kind, ...path]);
        if (typeof value !== 'number' || !METRIC_RE.test(path[path.length - 1] ?? '') || seen.has(id)) continue;
        seen.add(id);
        cols.push({ kind, path });
      }
    }
  }
  const get = (r: ReportRun, kind: string, path: string[]): number | undefined => {
    let v: unknown = r.evals?.[kind];
    for (const p of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
    return typeof v === 'number' ? v : undefined;
  };
  const out: string[] = [];
  if (cols.length > 0) {
    const spans = kinds.map((k) => [k, cols.filter((c) => c.kind === k).length] as const).filter(([, n]) => n > 0);
    out.push('<div class="scroll"><table class="evals"><thead><tr><th rowspan="2">run</th>');
    for (const [k, n] of spans) out.push(`<th colspan="${n}" class="group">${esc(k)}</th>`);
    out.push('</tr><tr>');
    for (const c of cols) {
      const dir = direction(c.path);
      const arrow = dir === 'max' ? ' ↑' : dir === 'min' ? ' ↓' : '';
      out.push(`<th class="num">${esc(c.path.join(' · '))}<span class="muted">${arrow}</span></th>`);
    }
    out.push('</tr></thead><tbody>');
    const colVals = cols.map((c) => runs.map((r) => get(r, c.kind, c.path)));
    const bests = cols.map((c, j) => bestOf(colVals[j] as Array<number | undefined>, direction(c.path)));
    runs.forEach((r, i) => {
      out.push(`<tr><th class="run">${swatch(st[i])}${esc(r.name)}</th>`);
      cols.forEach((_c, j) => {
        out.push(valueCell(colVals[j]?.[i], bests[j]));
      });
      out.push('</tr>');
    });
    out.push('</tbody></table></div>');
    out.push('<p class="note">Best value per column in bold (↑ higher is better, ↓ lower is better).</p>');
  }
  out.push(perClassTables(runs, kinds, st));
  out.push(evalSettings(runs, kinds, st));
  return out.join('\n');
}

/** Tables for every `per_class_iou` array found in the eval results (seg, parts · part, ...). */
function perClassTables(runs: ReportRun[], kinds: string[], st: Style[]): string {
  const found = new Map<string, { title: string; perRun: Array<number[] | undefined>; names?: string[] }>();
  for (const kind of kinds) {
    runs.forEach((r, i) => {
      const visit = (o: unknown, path: string[]) => {
        if (!o || typeof o !== 'object' || Array.isArray(o)) return;
        const rec = o as Record<string, unknown>;
        const iou = rec.per_class_iou;
        if (Array.isArray(iou) && iou.every((v) => typeof v === 'number' || v === null)) {
          const id = JSON.stringify(path);
          const e = found.get(id) ?? { title: path.join(' · '), perRun: runs.map(() => undefined) };
          e.perRun[i] = iou.map((v) => (typeof v === 'number' ? v : Number.NaN));
          if (!e.names && Array.isArray(rec.class_names)) e.names = rec.class_names.map(String);
          found.set(id, e);
        }
        for (const [k, v] of Object.entries(rec)) visit(v, [...path, k]);
      };
      visit(r.evals?.[kind], [kind]);
    });
  }
  const out: string[] = [];
  for (const { title, perRun, names } of found.values()) {
    const n = Math.max(...perRun.map((a) => a?.length ?? 0));
    const idx = runs.map((_, i) => i).filter((i) => perRun[i]);
    out.push(
      `<h3>Per-class IoU: ${esc(title)}</h3><div class="scroll"><table class="perclass"><thead><tr><th>class</th>`,
    );
    for (const i of idx) out.push(`<th class="num">${swatch(st[i])}${esc(runs[i]?.name)}</th>`);
    out.push('</tr></thead><tbody>');
    for (let c = 0; c < n; c++) {
      const vals = idx.map((i) => perRun[i]?.[c]);
      const best = bestOf(vals, 'max');
      const label = names?.[c] ?? `class ${c}`;
      out.push(`<tr><th><span class="chip" style="background:${classColor(c)}"></span>${esc(label)}</th>`);
      for (const v of vals) out.push(valueCell(v, best, true));
      out.push('</tr>');
    }
    out.push('</tbody></table></div>');
  }
  return out.join('\n');
}

/** Non-metric leaves (k, T, seeds, checkpoint hashes, ...) per run, collapsed. */
function evalSettings(runs: ReportRun[], kinds: string[], st: Style[]): string {
  const rows: string[] = [];
  runs.forEach((r, i) => {
    for (const kind of kinds) {
      for (const { path, value } of leaves(r.evals?.[kind] ?? {})) {
        const leaf = path[path.length - 1] ?? '';
        if ((typeof value === 'number' && METRIC_RE.test(leaf)) || /per_class_iou|class_names/.test(leaf)) continue;
        const shown = Array.isArray(value)
          ? `[${value.length} values]`
          : typeof value === 'number'
            ? fmtNumber(value)
            : String(value);
        rows.push(
          `<tr><td>${swatch(st[i])}${esc(r.name)}</td><td>${esc([kind, ...path].join(' · '))}</td><td>${esc(shown)}</td></tr>`,
        );
      }
    }
  });
  if (rows.length === 0) return '';
  return `<details><summary>Evaluation settings (${rows.length})</summary><div class="scroll"><table class="settings"><thead><tr><th>run</th><th>key</th><th>value</th></tr></thead><tbody>${rows.join('')}</tbody></table></div></details>`;
}

// ---------- pictures ----------

async function tileHtml(make: () => Promise<Tile>, alt: string, size: number): Promise<string> {
  try {
    const t = await make();
    const h = Math.round((size * t.height) / t.width);
    return `<img src="${t.src}" width="${size}" height="${h}" alt="${esc(alt)}" title="${esc(alt)}">`;
  } catch (err) {
    return `<div class="bad" style="width:${size}px">${esc((err as Error).message)}</div>`;
  }
}

async function picturesSection(runs: ReportRun[], st: Style[], size: number): Promise<string> {
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
  const names = findClassNames(r.evals?.seg);
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

// ---------- config ----------

function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2) ?? String(v);
  } catch {
    return String(v);
  }
}

function configSection(runs: ReportRun[], st: Style[]): string {
  const out: string[] = [];
  if (runs.length > 1) {
    const flat = runs.map((r) => new Map(leaves(r.config ?? {}).map((l) => [l.path.join('.'), safeJson(l.value)])));
    const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
    const differ = keys.filter((k) => new Set(flat.map((m) => m.get(k) ?? '∅')).size > 1);
    if (differ.length > 0) {
      out.push('<h3>Differences between runs</h3><div class="scroll"><table class="settings"><thead><tr><th>key</th>');
      out.push(...runs.map((r, i) => `<th>${swatch(st[i])}${esc(r.name)}</th>`));
      out.push('</tr></thead><tbody>');
      for (const k of differ)
        out.push(
          `<tr><td><code>${esc(k)}</code></td>${flat.map((m) => `<td><code>${esc(m.get(k) ?? '–')}</code></td>`).join('')}</tr>`,
        );
      out.push('</tbody></table></div>');
    } else {
      out.push('<p class="muted">All runs share the same resolved config.</p>');
    }
  }
  runs.forEach((r, i) => {
    out.push(
      `<details><summary>${swatch(st[i])}${esc(r.name)} — resolved config</summary><pre>${esc(safeJson(r.config ?? {}))}</pre></details>`,
    );
  });
  return out.join('\n');
}

// ---------- page ----------

type Style = { color: string; dash: string };

function swatch(s: Style | undefined): string {
  if (!s) return '';
  // Dashed runs get a striped swatch, echoing their dashed line in the charts.
  const bg = s.dash ? `repeating-linear-gradient(90deg,${s.color} 0 3px,transparent 3px 5px)` : s.color;
  return `<span class="swatch" style="background:${bg}"></span>`;
}

function lastStep(r: ReportRun): string {
  for (let j = (r.metrics?.length ?? 0) - 1; j >= 0; j--) {
    const s = r.metrics[j]?.step;
    if (typeof s === 'number') return fmtValue(s);
  }
  return '–';
}

const CSS = `
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f7f8fa;--card:#fff;--accent:#2563eb;--best:#ecfdf5}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 24px 64px}
header h1{margin:0 0 4px;font-size:26px;letter-spacing:-.01em}
h2{font-size:19px;margin:36px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:22px 0 10px}
nav{display:flex;gap:16px;margin:10px 0 0;font-size:13px}
nav a{color:var(--accent);text-decoration:none}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
pre{background:#f3f4f6;border:1px solid var(--line);border-radius:6px;padding:12px;overflow:auto;max-height:480px}
.muted{color:var(--muted);font-weight:normal}
.note{color:var(--muted);font-size:12px;margin:6px 0 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:0 0 16px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.chart-card{margin:0;padding:8px 10px 4px}
figcaption{font-size:13px;margin:0 0 2px;display:flex;gap:8px;align-items:baseline}
figcaption code{font-weight:600}
.tag{margin-left:auto;font-size:10.5px;text-transform:uppercase;letter-spacing:.05em;color:#9ca3af}
svg.chart{width:100%;height:auto;display:block}
svg.chart text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#4b5563}
svg.chart .grid line{stroke:#eef0f3;stroke-width:1}
svg.chart .grid line.xt{stroke:#9ca3af}
svg.chart .axis{stroke:#9ca3af;stroke-width:1}
svg.chart .xlabel{fill:var(--muted)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:var(--card);font-size:13px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
thead th{background:#f3f4f6;font-weight:600}
th.group{text-align:center;border-left:1px solid var(--line);text-transform:uppercase;font-size:11.5px;letter-spacing:.04em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.meter{display:inline-block;width:56px;height:6px;margin-right:10px;background:#eef0f3;border-radius:3px;vertical-align:1px;overflow:hidden}
.meter span{display:block;height:100%;background:#93c5fd}
.v{display:inline-block;min-width:4.8em}
td.best{font-weight:700;color:#065f46}
td.na{color:#c0c4cc}
table.evals,table.runs{min-width:50%}
table.pics{background:transparent}
table.pics td,table.pics th{border:0;padding:3px;text-align:center;vertical-align:middle}
table.pics thead th{background:transparent;font-size:12px;color:var(--muted);font-weight:500}
table.pics img{display:block;image-rendering:pixelated;border-radius:3px;box-shadow:0 0 0 1px rgba(0,0,0,.08)}
.rowhead{color:var(--muted);font-weight:500}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:7px;vertical-align:0}
.chip{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px;box-shadow:0 0 0 1px rgba(0,0,0,.15)}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin:10px 0 2px}
.legend .absent{opacity:.45}
.bad{font-size:11px;color:#b91c1c;white-space:normal}
details{margin:8px 0}
summary{cursor:pointer;font-weight:600}
`;

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
      const kinds = Object.keys(r.evals ?? {}).sort(probeOrder);
      const pics = r.pictures?.images.length ?? 0;
      return `<tr><th class="run">${swatch(st[i])}${esc(r.name)}</th><td>${esc(r.method)}</td><td class="num">${lastStep(r)}</td><td class="num">${r.metrics?.length ?? 0}</td><td>${esc(kinds.join(', ') || '–')}</td><td class="num">${pics}</td></tr>`;
    })
    .join('');
  const body = [
    `<header><h1>${esc(title)}</h1>`,
    `<div class="muted">${runs.length} run${runs.length === 1 ? '' : 's'} · methods: ${esc(methods.join(', ') || '–')} · generated ${esc(date)}</div>`,
    '<nav><a href="#runs">Runs</a><a href="#curves">Training curves</a><a href="#evals">Evaluation</a><a href="#pictures">Pictures</a><a href="#config">Config</a></nav></header>',
    '<h2 id="runs">Runs</h2>',
    runs.length === 0
      ? '<p class="muted">No runs.</p>'
      : `<div class="scroll"><table class="runs"><thead><tr><th>run</th><th>method</th><th class="num">last step</th><th class="num">metric rows</th><th>evals</th><th class="num">pictures</th></tr></thead><tbody>${runRows}</tbody></table></div>`,
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
