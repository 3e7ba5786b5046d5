// Eval records as the report tables read them: each one's probe, dataset, run and whether it is the run's
// random-init baseline; the headline number of each probe; 95% intervals where a record has them; which
// leaves are metrics, which way is better, and which are train- or validation-set numbers (never "best").
import { datasetKey, datasetLabel, evalDataset, parseEvalName } from '../train/evalfiles.js';
import { leaves } from './style.js';
import type { ReportRun } from './types.js';

export interface EvalEntry {
  run: number; // index into the runs
  stem: string; // the key in ReportRun.evals
  probe: string;
  dataset: string; // dataset key (as in the file name)
  datasetLabel: string;
  datasetSpec: Record<string, unknown> | null;
  baseline: boolean; // random init of the run's architecture
  record: Record<string, unknown>;
}

export const PROBE_ORDER = ['knn', 'linear', 'seg', 'parts', 'location'];

export function probeOrder(a: string, b: string): number {
  const ia = PROBE_ORDER.indexOf(a);
  const ib = PROBE_ORDER.indexOf(b);
  return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || a.localeCompare(b);
}

/** Every eval record of every run, ordered by probe, dataset, run, and each baseline right after its run. */
export function evalEntries(runs: ReportRun[]): EvalEntry[] {
  const out: EvalEntry[] = [];
  runs.forEach((r, run) => {
    for (const [stem, record] of Object.entries(r.evals ?? {})) {
      if (!record || typeof record !== 'object') continue;
      const name = parseEvalName(stem);
      const spec = evalDataset(record);
      const ck = record.checkpoint as { method?: unknown } | undefined;
      out.push({
        run,
        stem,
        probe: typeof record.kind === 'string' ? record.kind : name.probe,
        dataset: spec ? datasetKey(spec) : (name.dataset ?? 'unknown'),
        datasetLabel: spec ? datasetLabel(spec) : (name.dataset ?? '–'),
        datasetSpec: spec,
        baseline: name.randomInit || ck?.method === 'random',
        record,
      });
    }
  });
  return out.sort(
    (a, b) =>
      probeOrder(a.probe, b.probe) ||
      a.datasetLabel.localeCompare(b.datasetLabel) ||
      a.dataset.localeCompare(b.dataset) ||
      a.run - b.run ||
      Number(a.baseline) - Number(b.baseline),
  );
}

/** Entries grouped by a key, groups in first-seen order. */
export function groupBy<T>(xs: T[], key: (x: T) => string): T[][] {
  const m = new Map<string, T[]>();
  for (const x of xs) m.set(key(x), [...(m.get(key(x)) ?? []), x]);
  return [...m.values()];
}

const HEADLINES: Record<string, Array<[key: string, label: string]>> = {
  knn: [['top1', 'top-1']],
  linear: [['top1', 'top-1']],
  seg: [['miou', 'mIoU']],
  parts: [
    ['part_miou', 'part mIoU'],
    ['part_map', 'part mAP'],
    ['part_acc', 'part top-1'],
  ],
  location: [['acc', 'accuracy']],
};
const GENERIC: Array<[string, string]> = [
  ['top1', 'top-1'],
  ['acc', 'accuracy'],
  ['miou', 'mIoU'],
  ['map', 'mAP'],
  ['ap', 'AP'],
];

/** The headline metric of a probe: the first of its candidates that some record has as a top-level number. */
export function headline(probe: string, records: Record<string, unknown>[]): { key: string; label: string } | null {
  for (const [key, label] of [...(HEADLINES[probe] ?? []), ...GENERIC])
    if (records.some((r) => typeof r[key] === 'number')) return { key, label };
  return null;
}

const pair = (v: unknown): [number, number] | null => {
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x)))
    return [v[0] as number, v[1] as number];
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    for (const [lo, hi] of [
      ['lo', 'hi'],
      ['low', 'high'],
      ['lower', 'upper'],
    ] as const)
      if (typeof o[lo] === 'number' && typeof o[hi] === 'number') return [o[lo] as number, o[hi] as number];
  }
  return null;
};

/**
 * The 95% interval a record gives for the metric at `path`: a sibling `<leaf>_ci` (or `_ci95`) as
 * [lo, hi] or {lo, hi} / {low, high} / {lower, upper}, `ci.<leaf>` / `ci95.<leaf>` / `intervals.<leaf>`
 * beside it, or `<leaf>_ci_lo` + `<leaf>_ci_hi`; null when absent.
 */
export function intervalOf(record: Record<string, unknown>, path: string[]): [number, number] | null {
  let parent: unknown = record;
  for (const p of path.slice(0, -1)) parent = parent && typeof parent === 'object' ? (parent as never)[p] : undefined;
  if (!parent || typeof parent !== 'object') return null;
  const o = parent as Record<string, unknown>;
  const leaf = path[path.length - 1] as string;
  const nested = (k: string) =>
    o[k] && typeof o[k] === 'object' ? (o[k] as Record<string, unknown>)[leaf] : undefined;
  for (const v of [o[`${leaf}_ci`], o[`${leaf}_ci95`], nested('ci'), nested('ci95'), nested('intervals')]) {
    const p = pair(v);
    if (p) return p;
  }
  for (const [lo, hi] of [
    [`${leaf}_ci_lo`, `${leaf}_ci_hi`],
    [`${leaf}_lo`, `${leaf}_hi`],
  ] as const)
    if (typeof o[lo] === 'number' && typeof o[hi] === 'number') return [o[lo] as number, o[hi] as number];
  return null;
}

export const METRIC_RE =
  /(^|_)(top\d+|acc|accuracy|miou|iou|map|ap|gap|f1|auc|nmi|ari|loss|error|err|score|r2)(_|$)|^(map|ap|acc)\w*/i;
/** Record sections whose numbers are settings or bookkeeping, never results. */
const NOT_RESULTS = new Set(['hyper', 'timing', 'machine', 'model', 'input', 'data', 'checkpoint', 'provenance']);

export type Direction = 'max' | 'min' | null;
export function direction(path: string[]): Direction {
  const leaf = (path[path.length - 1] ?? '').toLowerCase();
  if (path.some((p) => /gap/i.test(p))) return null; // sign convention varies
  return /loss|err/.test(leaf) ? 'min' : 'max';
}

/** A number measured on the train or validation set (shown, never bolded as best). */
export function isTrainOrVal(path: string[]): boolean {
  return path.some((p) => /(^|_)(train|val|valid|validation)(_|$)/i.test(p));
}

const isCi = (p: string) => /(_ci(95)?(_lo|_hi)?$|^ci(95)?$|^intervals$)/.test(p);

/** The result metrics of a record: numeric leaves named like metrics, outside settings, intervals aside. */
export function metricLeaves(record: Record<string, unknown>): string[][] {
  return leaves(record)
    .filter(
      ({ path, value }) =>
        typeof value === 'number' &&
        !NOT_RESULTS.has(path[0] ?? '') &&
        !path.some(isCi) &&
        METRIC_RE.test(path[path.length - 1] ?? ''),
    )
    .map((l) => l.path);
}

export function numberAt(record: Record<string, unknown> | undefined, path: string[]): number | undefined {
  let v: unknown = record;
  for (const p of path) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[p] : undefined;
  return typeof v === 'number' ? v : undefined;
}

/** The best of some values in a direction; undefined when fewer than two differ (nothing to single out). */
export function bestOf(values: Array<number | undefined>, dir: Direction): number | undefined {
  const ok = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (dir === null || ok.length < 2 || ok.every((v) => v === ok[0])) return undefined;
  return dir === 'max' ? Math.max(...ok) : Math.min(...ok);
}
