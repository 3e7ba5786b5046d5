// Training curves: one inline SVG chart per logged metric, grouped (losses, schedules, accuracies,
// throughput, other), every run overlaid.
import { esc, lineChart, type Series } from './charts.js';
import type { Style } from './style.js';
import type { ReportRun } from './types.js';

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

export function curvesSection(runs: ReportRun[], st: Style[]): string {
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
