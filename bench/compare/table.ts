// The comparison table (bench/COMPARISON.md): one row per method and network, the random-init row, the
// supervised − random gap of every probe (its sensitivity), and the claim section, where a difference is
// called better/worse only when it exceeds both the seeds' spread and the 95% bootstrap intervals.
import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { cudaAvailable } from '../../src/engine/index.js';
import { meanStd } from '../../src/eval/metrics.js';
import type { Config } from '../../src/train/config.js';
import { type Args, LOCATION_AWARE, ROOT } from './args.js';
import { median, type RunRecord } from './runs.js';

type Ci = [number, number];
interface Column {
  name: string;
  get(r: RunRecord): number | undefined;
  ci?(r: RunRecord): Ci | undefined;
  pct: boolean;
  dense?: boolean; // a dense or part probe (the sensitivity target: supervised − random ≥ 10 points)
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const ci = (v: unknown): Ci | undefined =>
  Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'number' ? [v[0], v[1]] : undefined;
type Rec = Record<string, unknown>;
const at = (o: unknown, ...path: string[]): unknown =>
  path.reduce<unknown>((x, k) => (x && typeof x === 'object' ? (x as Rec)[k] : undefined), o);

/** A classification probe's readout: its by_feature entry (CLS or mean patch token). */
const feat = (probe: string, f: string, name: string): Column => ({
  name,
  get: (r) => num(at(r.evals[probe], 'by_feature', f, 'top1')),
  ci: (r) => ci(at(r.evals[probe], 'by_feature', f, 'top1_ci')),
  pct: true,
});

/** Mean IoU of the item classes (all but background 0) of a seg-type result. */
function itemIou(r: Rec | undefined): number | undefined {
  const v = r?.per_class_iou;
  if (!Array.isArray(v)) return undefined;
  const items = v.slice(1).filter((x): x is number => typeof x === 'number');
  return items.length ? items.reduce((a, b) => a + b, 0) / items.length : undefined;
}

export const COLUMNS: Column[] = [
  feat('knn', 'cls', 'k-NN FM cls'),
  feat('knn', 'mean', 'k-NN FM mean'),
  feat('linear', 'cls', 'linear FM cls'),
  feat('linear', 'mean', 'linear FM mean'),
  feat('knn-items', 'cls', 'k-NN items cls'),
  feat('knn-items', 'mean', 'k-NN items mean'),
  feat('linear-items', 'cls', 'linear items cls'),
  feat('linear-items', 'mean', 'linear items mean'),
  {
    name: 'seg mIoU',
    get: (r) => num(r.evals.seg?.miou),
    ci: (r) => ci(r.evals.seg?.miou_ci),
    pct: true,
    dense: true,
  },
  { name: 'seg item IoU', get: (r) => itemIou(r.evals.seg), pct: true, dense: true },
  {
    name: 'nnseg mIoU',
    get: (r) => num(r.evals.nnseg?.miou),
    ci: (r) => ci(r.evals.nnseg?.miou_ci),
    pct: true,
    dense: true,
  },
  {
    name: 'part mIoU',
    get: (r) => num(r.evals.parts?.part_miou),
    ci: (r) => ci(r.evals.parts?.part_miou_ci),
    pct: true,
    dense: true,
  },
  {
    name: 'object mIoU',
    get: (r) => num(r.evals.parts?.object_miou),
    ci: (r) => ci(r.evals.parts?.object_miou_ci),
    pct: true,
    dense: true,
  },
  {
    name: 'part acc',
    get: (r) => num(r.evals.parts?.part_acc),
    ci: (r) => ci(r.evals.parts?.part_acc_ci),
    pct: true,
    dense: true,
  },
  {
    name: 'object acc',
    get: (r) => num(r.evals.parts?.object_acc),
    ci: (r) => ci(r.evals.parts?.object_acc_ci),
    pct: true,
  },
  { name: 'part mAP', get: (r) => num(r.evals.parts?.part_map), pct: true, dense: true },
  {
    name: 'location acc',
    get: (r) => num(r.evals.location?.acc),
    ci: (r) => ci(r.evals.location?.acc_ci),
    pct: true,
    dense: true,
  },
  { name: 's/step', get: (r) => num(r.stepS), pct: false },
];

interface Stat {
  mean: number;
  std: number;
  n: number;
  half: number; // mean 95%-interval half-width over the records (NaN without intervals)
}

function stats(rs: RunRecord[], col: Column): Stat {
  const vals = rs.map((r) => col.get(r)).filter((x): x is number => x !== undefined);
  const halves = rs
    .map((r) => col.ci?.(r))
    .filter((x): x is Ci => x !== undefined)
    .map(([lo, hi]) => (hi - lo) / 2);
  return { ...meanStd(vals), half: halves.length ? halves.reduce((a, b) => a + b, 0) / halves.length : Number.NaN };
}

/** mean (± seed std when several seeds) and the 95% interval half-width in parentheses. */
export function cell(rs: RunRecord[], col: Column): string {
  const s = stats(rs, col);
  if (s.n === 0) return '–';
  const f = (v: number) => (col.pct ? (100 * v).toFixed(1) : v.toFixed(2));
  const spread = s.n > 1 ? ` ± ${f(s.std)}` : '';
  const half = Number.isFinite(s.half) ? ` (±${f(s.half)})` : '';
  return `${f(s.mean)}${spread}${half}`;
}

/** a − b in points with a verdict only beyond both the larger seed spread and the intervals of the two means. */
export function verdict(a: Stat, b: Stat): { d: number; text: string } {
  const d = 100 * (a.mean - b.mean);
  const spread = 100 * Math.max(a.std, b.std);
  const interval = 100 * Math.hypot(Number.isFinite(a.half) ? a.half : 0, Number.isFinite(b.half) ? b.half : 0);
  const tag =
    Math.abs(d) <= interval
      ? 'within the intervals'
      : a.n < 2 || b.n < 2
        ? 'beyond the intervals, one seed: no spread'
        : Math.abs(d) > spread
          ? d > 0
            ? 'better'
            : 'worse'
          : 'within the spread';
  return {
    d,
    text: `${d >= 0 ? '+' : ''}${d.toFixed(1)} (spread ${spread.toFixed(1)}, interval ±${interval.toFixed(1)}; ${tag})`,
  };
}

function claimLines(groups: Map<string, RunRecord[]>, asked: string[]): string[] {
  const ref = (m: string) => [...groups].find(([, rs]) => rs[0]?.method === m && rs[0]?.reference !== false)?.[1];
  const dino = ref('dino');
  const lines: string[] = [];
  const dense = COLUMNS.filter((c) => ['seg mIoU', 'nnseg mIoU', 'part mIoU', 'part acc', 'part mAP'].includes(c.name));
  const compare = (m: string, base: string, rsB: RunRecord[] | undefined) => {
    const rs = ref(m);
    if (!asked.includes(m)) return `- **${m}**: not in this comparison (--methods).`;
    if (!rs || rs.every((r) => !r.ok))
      return `- **${m}**: no finished run (${rs?.find((r) => r.error)?.error ?? 'failed'}).`;
    if (!rsB || rsB.every((r) => !r.ok)) return `- **${m} − ${base}**: ${base} did not run.`;
    const parts = dense.map((c) => {
      const a = stats(
        rs.filter((r) => r.ok),
        c,
      );
      const b = stats(
        rsB.filter((r) => r.ok),
        c,
      );
      return a.n === 0 || b.n === 0 ? `${c.name} n/a` : `${c.name} ${verdict(a, b).text}`;
    });
    return `- **${m} − ${base}**: ${parts.join('; ')}`;
  };
  if (!dino || dino.every((r) => !r.ok)) lines.push('DINO did not run, so the location-aware claim cannot be checked.');
  else for (const m of LOCATION_AWARE) lines.push(compare(m, 'dino', dino));
  if (asked.includes('scrl') && asked.includes('byol')) lines.push(compare('scrl', 'byol', ref('byol')));
  return lines;
}

/** supervised − random init per column: the probe's sensitivity (issue 11: ≥ 10 points on dense and part probes). */
function gapRow(groups: Map<string, RunRecord[]>, random: RunRecord[]): { row: string; weak: string[] } | null {
  const sup = [...groups].find(([, rs]) => rs[0]?.method === 'supervised')?.[1]?.filter((r) => r.ok);
  if (!sup?.length || random.length === 0) return null;
  const weak: string[] = [];
  const cells = COLUMNS.map((c) => {
    if (!c.pct) return '–';
    const a = stats(sup, c);
    const b = stats(random, c);
    if (a.n === 0 || b.n === 0) return '–';
    const d = 100 * (a.mean - b.mean);
    if (c.dense && d < 10) weak.push(`${c.name} (${d.toFixed(1)})`);
    return `${d >= 0 ? '+' : ''}${d.toFixed(1)}`;
  });
  return { row: `| **supervised − random init** (points) | | ${cells.join(' | ')} |`, weak };
}

export function machine(): string {
  let model = cpus()[0]?.model ?? 'unknown CPU';
  try {
    model =
      execFileSync('sh', ['-c', "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], { encoding: 'utf8' }).trim() ||
      model;
  } catch {
    // keep os.cpus()'s name
  }
  let gpu = '';
  if (cudaAvailable())
    try {
      const names = execFileSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' });
      gpu = `, GPU: ${names.trim().split('\n').join(' + ')}`;
    } catch {
      gpu = ', a CUDA GPU';
    }
  return `${availableParallelism()} cores (nproc), ${model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM${gpu}, Node ${process.version}`;
}

/** The row label of a record: the method, and its network when the method has two (ref = what its reference evaluates). */
export function rowLabel(r: RunRecord): string {
  if (r.method === 'random') return 'random init';
  if (!r.network || r.reference === undefined) return r.method;
  return `${r.method} (${r.network}${r.reference ? ', ref' : ''})`;
}

export function markdown(
  a: Args,
  records: RunRecord[],
  random: RunRecord[],
  startLoad: number[],
  totalS: number,
  command: string,
  host: string,
  cfg: Config | null, // the runs' resolved config (model and batch for the header)
): string {
  const groups = new Map<string, RunRecord[]>();
  for (const r of records) groups.set(rowLabel(r), [...(groups.get(rowLabel(r)) ?? []), r]);
  const head = `| method | seeds | ${COLUMNS.map((c) => c.name).join(' | ')} |`;
  const sep = `|---|---|${COLUMNS.map(() => '---:').join('|')}|`;
  const rows = [...groups].map(([label, rs]) => {
    const ok = rs.filter((r) => r.ok);
    if (ok.length === 0)
      return `| ${label} | 0 | failed: ${rs[0]?.error ?? '?'} |${COLUMNS.slice(1)
        .map(() => '')
        .join(' |')} |`;
    return `| ${label} | ${ok.length} | ${COLUMNS.map((c) => cell(ok, c)).join(' | ')} |`;
  });
  if (random.length > 0)
    rows.push(
      `| random init | ${random.length} | ${COLUMNS.map((c) => (c.name === 's/step' ? '–' : cell(random, c))).join(' | ')} |`,
    );
  const gap = gapRow(groups, random);
  if (gap) rows.push(gap.row);
  const model = cfg ? (cfg.model as Record<string, unknown>) : {};
  const optim = cfg ? (cfg.optim as Record<string, unknown>) : {};
  const failed = records.filter((r) => !r.ok);
  const evalTimes = a.evals.map(
    (k) =>
      `${k} ${median(
        records
          .filter((r) => r.ok)
          .map((r) => r.evalS[k] ?? Number.NaN)
          .filter(Number.isFinite),
      ).toFixed(0)} s`,
  );
  return [
    `# Method comparison${a.mini ? ' (miniature: CI smoke run, numbers are not meaningful)' : ''}`,
    '',
    `Generated ${new Date().toISOString()} by \`bench/compare.ts\` in ${(totalS / 60).toFixed(1)} min.`,
    '',
    `- Command: \`${command}\``,
    `- Methods: ${a.methods.join(', ')}; seeds: ${a.seeds.join(', ')}; same budget for all: ${a.steps} steps, batch ${optim.batchSize ?? '?'}, model dim ${model.dim ?? '?'} depth ${model.depth ?? '?'} heads ${model.heads ?? '?'}, patch ${model.patchSize ?? '?'}, input ${model.imgSize ?? '?'} px, data: Fashion-MNIST scenes (64 px)${a.sets.length ? `; overrides: ${a.sets.join(' ')}` : ''}`,
    `- Machine: ${host}; load average at start ${startLoad.map((x) => x.toFixed(1)).join(' / ')} (other jobs on the machine slow every number in s/step)`,
    `- Probes (defaults of \`src/eval\`, every hyper-parameter in each run's \`evals/*.json\`): ${a.evals.join(', ')}; median eval time per run: ${evalTimes.join(', ')}`,
    '',
    'Cells: mean (± sample standard deviation over seeds when there are several) and, in parentheses, the half-width of the 95% bootstrap interval over test samples, in % (s/step in seconds, median over steps). Rows: a method with an EMA network appears twice, teacher and student; "ref" marks the network its reference evaluates. FM: Fashion-MNIST items on black (out of domain); items: item crops with context cut from the scenes by their boxes (in domain); cls / mean: the CLS token / the mean patch token; seg: linear probe on frozen patch tokens, scenes (item IoU: mean IoU of the 10 item classes); nnseg: training-free patch nearest-neighbour label retrieval; part/object: the part-aware protocol on the part-structured set; location: patch grid position from the token. The last row is each probe\'s sensitivity: supervised − random init in points.',
    '',
    head,
    sep,
    ...rows,
    '',
    gap
      ? gap.weak.length
        ? `Dense/part probes under the 10-point sensitivity target here: ${gap.weak.join(', ')}.`
        : 'Every dense and part probe separates supervised from random init by ≥ 10 points here.'
      : 'No supervised and random-init rows: probe sensitivity not measured in this table.',
    '',
    '## Does location-aware pretraining beat DINO on dense and part-level tasks here?',
    '',
    'Difference of means in points (method minus baseline; each at the network its reference evaluates); "better"/"worse" only when the difference exceeds both the larger seed spread and the combined 95% intervals of the two means (√(h₁² + h₂²)).',
    '',
    ...claimLines(groups, a.methods),
    '',
    failed.length
      ? `Failed runs: ${failed.map((r) => `${r.method}/seed ${r.seed}: ${r.error}`).join('; ')}`
      : 'All runs finished.',
    '',
    a.html
      ? `Report of all runs: \`${relative(join(ROOT, 'bench'), a.html)}\`; run directories under \`${relative(ROOT, a.out)}\`.`
      : '',
    '',
  ].join('\n');
}
