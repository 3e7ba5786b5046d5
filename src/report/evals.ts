// The evaluation section: one compact summary table (a headline number per probe and dataset, each run's
// random-init baseline in the row below it, 95% intervals where recorded, the gap to the baseline), then
// every probe's full table, collapsed. "Best" is bolded only among test-set numbers of one probe on one
// dataset: never a train/validation number, never across datasets.
import { classColor } from './images.js';
import {
  bestOf,
  direction,
  type EvalEntry,
  evalEntries,
  groupBy,
  headline,
  intervalOf,
  isTrainOrVal,
  METRIC_RE,
  metricLeaves,
  numberAt,
} from './records.js';
import { esc, fmtNumber, leaves, type Style, safeJson, swatch } from './style.js';
import type { ReportRun } from './types.js';

const fmtCi = (ci: [number, number] | null) => (ci ? `[${fmtNumber(ci[0])}, ${fmtNumber(ci[1])}]` : '');

/** A number cell; `meter` adds a small bar for values on a 0..1 scale (IoU). */
function valueCell(
  v: number | undefined,
  best: boolean,
  o: { meter?: boolean; ci?: [number, number] | null; cls?: string } = {},
): string {
  if (v === undefined) return '<td class="num na">–</td>';
  const cls = ['num', best ? 'best' : '', o.cls ?? ''].filter(Boolean).join(' ');
  const w = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) * 100 : 0;
  const bar = o.meter ? `<span class="meter"><span style="width:${w.toFixed(1)}%"></span></span>` : '';
  const text = o.meter ? `<span class="v">${esc(fmtNumber(v))}</span>` : esc(fmtNumber(v));
  const ci = o.ci ? `<span class="ci">95% ${esc(fmtCi(o.ci))}</span>` : '';
  return `<td class="${cls}" title="${esc(String(v))}">${bar}${text}${ci}</td>`;
}

function backbone(runs: ReportRun[], st: Style[], e: EvalEntry): string {
  const r = runs[e.run] as ReportRun;
  if (!e.baseline) return `${swatch(st[e.run])}${esc(r.name)}`;
  const seed = (e.record as { seed?: unknown }).seed;
  return `<span title="random init of ${esc(r.name)}'s architecture${seed === undefined ? '' : `, seed ${esc(seed)}`}">↳ random init</span>`;
}

function datasetCell(e: EvalEntry, rowspan: number): string {
  const n = (e.record.data as { n_test?: unknown } | undefined)?.n_test;
  const title = e.datasetSpec ? safeJson(e.datasetSpec).replace(/\s+/g, ' ') : e.dataset;
  return `<td class="dataset" rowspan="${rowspan}" title="${esc(title)}">${esc(e.datasetLabel)}${typeof n === 'number' ? ` <span class="muted">n=${n}</span>` : ''}</td>`;
}

/** The summary: probe · metric · dataset · backbone · value · 95% CI · Δ vs random init. */
function summaryTable(runs: ReportRun[], st: Style[], entries: EvalEntry[]): string {
  const rows: string[] = [];
  for (const probeEntries of groupBy(entries, (e) => e.probe)) {
    const probe = (probeEntries[0] as EvalEntry).probe;
    const h = headline(
      probe,
      probeEntries.map((e) => e.record),
    );
    const groups = groupBy(probeEntries, (e) => e.dataset);
    let first = true;
    for (const g of groups) {
      const val = (e: EvalEntry) => (h ? numberAt(e.record, [h.key]) : undefined);
      const best = h ? bestOf(g.map(val), direction([h.key])) : undefined;
      g.forEach((e, j) => {
        const v = val(e);
        const cells: string[] = [];
        if (first)
          cells.push(
            `<th class="probe" rowspan="${probeEntries.length}">${esc(probe)} <span class="muted">${esc(h?.label ?? '–')}</span></th>`,
          );
        first = false;
        if (j === 0) cells.push(datasetCell(e, g.length));
        cells.push(`<th class="run">${backbone(runs, st, e)}</th>`);
        cells.push(valueCell(v, v !== undefined && v === best));
        const ci = h ? intervalOf(e.record, [h.key]) : null;
        cells.push(`<td class="num ci-col">${ci ? esc(fmtCi(ci)) : '<span class="na">–</span>'}</td>`);
        const base = e.baseline ? undefined : g.find((b) => b.baseline && b.run === e.run);
        const bv = base ? val(base) : undefined;
        if (v !== undefined && bv !== undefined) {
          const d = v - bv;
          const good = direction([h?.key ?? '']) === 'min' ? d < 0 : d > 0;
          cells.push(
            `<td class="num delta ${d === 0 ? '' : good ? 'pos' : 'neg'}">${d > 0 ? '+' : ''}${esc(fmtNumber(d))}</td>`,
          );
        } else cells.push('<td class="num na"></td>');
        const attrs = `data-probe="${esc(probe)}" data-dataset="${esc(e.dataset)}" data-run="${esc(runs[e.run]?.name)}" data-baseline="${e.baseline}"`;
        const cls = [e.baseline ? 'baseline' : '', j === 0 ? 'group-start' : ''].filter(Boolean).join(' ');
        rows.push(`<tr class="${cls}" ${attrs}>${cells.join('')}</tr>`);
      });
    }
  }
  return [
    '<div class="scroll"><table class="summary"><thead><tr><th>probe · metric</th><th>dataset (test set)</th><th>backbone</th><th class="num">value</th><th class="num">95% CI</th><th class="num">Δ vs random init</th></tr></thead><tbody>',
    rows.join('\n'),
    '</tbody></table></div>',
    '<p class="note">One headline test-set number per probe and dataset; each run\'s random init (same architecture, untrained) in the row below it. Bold: the best of one probe on one dataset. 95% CI: as recorded by the probe (– where the record has none).</p>',
  ].join('\n');
}

/** One probe's full table: every metric leaf of its records, rows grouped by dataset. */
function probeTable(runs: ReportRun[], st: Style[], probeEntries: EvalEntry[]): string {
  const cols: string[][] = [];
  const seen = new Set<string>();
  for (const e of probeEntries)
    for (const path of metricLeaves(e.record)) {
      const id = JSON.stringify(path);
      if (!seen.has(id)) {
        seen.add(id);
        cols.push(path);
      }
    }
  if (cols.length === 0) return '<p class="muted">No numeric results in these records.</p>';
  const out: string[] = [
    `<div class="scroll"><table class="evals" data-probe="${esc(probeEntries[0]?.probe)}"><thead><tr><th>dataset</th><th>backbone</th>`,
  ];
  for (const c of cols) {
    const dir = direction(c);
    const train = isTrainOrVal(c);
    const arrow = dir === 'max' ? ' ↑' : dir === 'min' ? ' ↓' : '';
    out.push(
      `<th class="num${train ? ' train' : ''}">${esc(c.join(' · '))}<span class="muted">${arrow}${train ? ' (train/val)' : ''}</span></th>`,
    );
  }
  out.push('</tr></thead><tbody>');
  for (const g of groupBy(probeEntries, (e) => e.dataset)) {
    const bests = cols.map((c) =>
      isTrainOrVal(c)
        ? undefined
        : bestOf(
            g.map((e) => numberAt(e.record, c)),
            direction(c),
          ),
    );
    g.forEach((e, j) => {
      const attrs = `data-dataset="${esc(e.dataset)}" data-run="${esc(runs[e.run]?.name)}" data-baseline="${e.baseline}"`;
      out.push(
        `<tr class="${e.baseline ? 'baseline' : ''}${j === 0 ? ' group-start' : ''}" ${attrs}>${j === 0 ? datasetCell(e, g.length) : ''}<th class="run">${backbone(runs, st, e)}</th>`,
      );
      cols.forEach((c, k) => {
        const v = numberAt(e.record, c);
        const b = bests[k];
        out.push(
          valueCell(v, b !== undefined && v === b, {
            ci: intervalOf(e.record, c),
            cls: isTrainOrVal(c) ? 'train' : '',
          }),
        );
      });
      out.push('</tr>');
    });
  }
  out.push('</tbody></table></div>');
  return out.join('');
}

/** Tables for every `per_class_iou` array in a probe's records, one per (result path, dataset). */
function perClassTables(runs: ReportRun[], st: Style[], probeEntries: EvalEntry[]): string {
  const out: string[] = [];
  for (const g of groupBy(probeEntries, (e) => e.dataset)) {
    const found = new Map<string, { title: string; per: Array<number[] | undefined>; names?: string[] }>();
    g.forEach((e, j) => {
      const visit = (o: unknown, path: string[]) => {
        if (!o || typeof o !== 'object' || Array.isArray(o)) return;
        const rec = o as Record<string, unknown>;
        const iou = rec.per_class_iou;
        if (Array.isArray(iou) && iou.every((v) => typeof v === 'number' || v === null)) {
          const id = JSON.stringify(path);
          const f = found.get(id) ?? { title: path.join(' · '), per: g.map(() => undefined) };
          f.per[j] = iou.map((v) => (typeof v === 'number' ? v : Number.NaN));
          if (!f.names && Array.isArray(rec.class_names)) f.names = rec.class_names.map(String);
          found.set(id, f);
        }
        for (const [k, v] of Object.entries(rec)) visit(v, [...path, k]);
      };
      visit(e.record, [e.probe]);
    });
    for (const { title, per, names } of found.values()) {
      const n = Math.max(...per.map((a) => a?.length ?? 0));
      const idx = g.map((_, j) => j).filter((j) => per[j]);
      out.push(
        `<h4>Per-class IoU: ${esc(title)} <span class="muted">on ${esc(g[0]?.datasetLabel)}</span></h4><div class="scroll"><table class="perclass"><thead><tr><th>class</th>`,
      );
      for (const j of idx) out.push(`<th class="num">${backbone(runs, st, g[j] as EvalEntry)}</th>`);
      out.push('</tr></thead><tbody>');
      for (let c = 0; c < n; c++) {
        const vals = idx.map((j) => per[j]?.[c]);
        const best = bestOf(vals, 'max');
        out.push(
          `<tr><th><span class="chip" style="background:${classColor(c)}"></span>${esc(names?.[c] ?? `class ${c}`)}</th>`,
        );
        for (const v of vals) out.push(valueCell(v, v !== undefined && v === best, { meter: true }));
        out.push('</tr>');
      }
      out.push('</tbody></table></div>');
    }
  }
  return out.join('\n');
}

/** Non-metric leaves (k, T, seeds, checkpoint hashes, provenance, ...) per record, collapsed. */
function evalSettings(runs: ReportRun[], st: Style[], entries: EvalEntry[]): string {
  const rows: string[] = [];
  for (const e of entries) {
    const who = `${swatch(st[e.run])}${esc(runs[e.run]?.name)}${e.baseline ? ' · random init' : ''}`;
    for (const { path, value } of leaves(e.record)) {
      const leaf = path[path.length - 1] ?? '';
      if ((typeof value === 'number' && METRIC_RE.test(leaf)) || /per_class_iou|class_names/.test(leaf)) continue;
      const shown = Array.isArray(value)
        ? value.length <= 4 && value.every((x) => typeof x === 'number')
          ? `[${value.map(fmtNumber).join(', ')}]`
          : `[${value.length} values]`
        : typeof value === 'number'
          ? fmtNumber(value)
          : String(value);
      rows.push(
        `<tr><td>${who}</td><td>${esc(e.probe)} · ${esc(e.datasetLabel)}</td><td>${esc(path.join(' · '))}</td><td>${esc(shown)}</td></tr>`,
      );
    }
  }
  if (rows.length === 0) return '';
  return `<details><summary>Evaluation settings (${rows.length})</summary><div class="scroll"><table class="settings"><thead><tr><th>backbone</th><th>probe · dataset</th><th>key</th><th>value</th></tr></thead><tbody>${rows.join('')}</tbody></table></div></details>`;
}

export function evalSection(runs: ReportRun[], st: Style[]): string {
  const entries = evalEntries(runs);
  if (entries.length === 0) return '<p class="muted">No evaluation results.</p>';
  const out = ['<h3>Summary</h3>', summaryTable(runs, st, entries), '<h3>Every probe in full</h3>'];
  for (const pe of groupBy(entries, (e) => e.probe)) {
    const probe = (pe[0] as EvalEntry).probe;
    const datasets = new Set(pe.map((e) => e.dataset)).size;
    out.push(
      `<details class="probe" id="probe-${esc(probe)}"><summary>${esc(probe)} <span class="muted">${pe.length} record${pe.length === 1 ? '' : 's'} on ${datasets} dataset${datasets === 1 ? '' : 's'}</span></summary>`,
      probeTable(runs, st, pe),
      perClassTables(runs, st, pe),
      '<p class="note">Bold: the best test-set value of a column on one dataset (↑ higher is better, ↓ lower is better); train/validation columns (grey) are never bolded.</p>',
      '</details>',
    );
  }
  out.push(evalSettings(runs, st, entries));
  return out.join('\n');
}
