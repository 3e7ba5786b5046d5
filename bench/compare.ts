// The method comparison (`npm run compare`): pretrain every method with the same budget (steps, batch,
// model, data) on Fashion-MNIST scenes through the CLI, for several seeds; evaluate every run with every
// probe (plus a random-init backbone of the same architecture); write bench/COMPARISON.md (method ×
// {k-NN, linear, seg mIoU, part mIoU, object acc, location acc, s/step}, mean ± sample std over seeds)
// and one HTML report of all runs.
//
// Usage: node dist/bench/compare.js [--steps N] [--seeds 0,1] [--methods dino,loca,...] [--evals knn,seg,...]
//        [--out DIR] [--md FILE] [--html FILE] [--set key=value ...] [--mini] [--fresh] [--no-report] [--no-random]
//        node dist/bench/compare.js --from A.json,B.json [--md FILE]
//        node dist/bench/compare.js --weights a.pth,b.safetensors [--runs runs/x,…] [--heads N] [--size PX]
//          [--evals …] [--seeds …] [--mini] [--md FILE]: off-the-shelf checkpoints beside runs (bench/zoo.ts, ZOO.md)
// Every run also writes its records next to the table (COMPARISON.json); --from renders one table from
// several such files (seeds or methods run on different machines or in several sittings), running nothing.
// --mini: CI miniature (2 methods, 1 seed, a few steps, a small model, tiny probes; ~1–2 min).
// Runs are reused when their directory already holds a finished run of the same steps (--fresh: redo).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cudaAvailable } from '../src/engine/index.js';
import { EVAL_KINDS, runEval, vitConfigOf } from '../src/eval/index.js';
import { meanStd } from '../src/eval/metrics.js';
import { methodNames } from '../src/methods/index.js';
import { collectRun } from '../src/report/collect.js';
import { type ReportRun, renderReport } from '../src/report/html.js';
import { listCheckpoints } from '../src/train/checkpoint.js';
import { type Config, loadConfig } from '../src/train/config.js';
import { readMetrics, readRunConfig } from '../src/train/run.js';
import { type ZooArgs, zoo } from './zoo.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url)); // dist/bench → repository root
const ALL_METHODS = ['dino', 'selfpatch', 'loca', 'scrl', 'gtsa', 'mim', 'dino+mim'];
const LOCATION_AWARE = ['selfpatch', 'loca', 'scrl', 'gtsa'];

// Probe sizes for --mini (the full comparison uses each probe's defaults, stated in every result JSON).
const MINI_EVAL: Record<string, Record<string, unknown>> = {
  knn: {
    train: { kind: 'fashion-mnist', split: 'train', length: 300 },
    test: { kind: 'fashion-mnist', split: 'test', length: 100 },
  },
  linear: {
    train: { kind: 'fashion-mnist', split: 'train', length: 300 },
    test: { kind: 'fashion-mnist', split: 'test', length: 100 },
    epochs: 20,
  },
  seg: {
    train: { kind: 'scenes', split: 'train', length: 40 },
    test: { kind: 'scenes', split: 'eval', length: 20 },
    steps: 60,
  },
  parts: {
    train: { kind: 'parts', split: 'train', length: 16 },
    test: { kind: 'parts', split: 'eval', length: 8 },
    seg: { steps: 40, batchSize: 8, lr: 0.003, wd: 1e-4, seed: 0 },
    linear: { lrs: [0.1, 1], wds: [0], valFraction: 0.2, epochs: 20, batchSize: 256, momentum: 0.9, seed: 0 },
  },
  location: {
    train: { kind: 'scenes', split: 'train', length: 20 },
    test: { kind: 'scenes', split: 'eval', length: 10 },
    epochs: 5,
  },
};

interface Args {
  steps: number;
  seeds: number[];
  methods: string[];
  evals: string[];
  out: string;
  md: string;
  html: string | null;
  sets: string[];
  mini: boolean;
  fresh: boolean;
  random: boolean;
  from: string[];
  zoo: Pick<ZooArgs, 'weights' | 'runs' | 'heads' | 'size' | 'seeds' | 'md'> | null;
}

function parse(): Args {
  const { values } = parseArgs({
    options: {
      steps: { type: 'string' },
      seeds: { type: 'string' },
      methods: { type: 'string' },
      evals: { type: 'string' },
      out: { type: 'string' },
      md: { type: 'string' },
      html: { type: 'string' },
      set: { type: 'string', multiple: true },
      mini: { type: 'boolean', default: false },
      fresh: { type: 'boolean', default: false },
      'no-report': { type: 'boolean', default: false },
      'no-random': { type: 'boolean', default: false }, // no random-init row (another sitting evaluates it)
      from: { type: 'string' },
      weights: { type: 'string' }, // bench/zoo.ts
      runs: { type: 'string' },
      heads: { type: 'string' },
      size: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      `${readFileSync(fileURLToPath(import.meta.url), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('//'))
        .join('\n')}\n`,
    );
    process.exit(0);
  }
  const mini = values.mini ?? false;
  const list = (s: string | undefined, d: string[]) =>
    s
      ? s
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean)
      : d;
  const methods = list(values.methods, mini ? ['dino', 'loca'] : ALL_METHODS);
  const evals = list(values.evals, [...EVAL_KINDS]);
  for (const e of evals)
    if (!(EVAL_KINDS as readonly string[]).includes(e))
      throw new Error(`--evals: unknown probe '${e}' (allowed: ${EVAL_KINDS.join(', ')})`);
  const seeds = list(values.seeds, mini ? ['0'] : ['0', '1']).map(Number);
  if (seeds.some((s) => !Number.isInteger(s) || s < 0))
    throw new Error(`--seeds must be non-negative integers, got ${values.seeds}`);
  const steps = Number(values.steps ?? (mini ? 4 : 300));
  if (!(Number.isInteger(steps) && steps > 0))
    throw new Error(`--steps must be a positive integer, got ${values.steps}`);
  // under bench/runs/ (git-ignored): run directories, and the miniature's outputs too
  const out = resolve(values.out ?? join(ROOT, 'bench', 'runs', mini ? 'mini' : 'full'));
  const sets = values.set ?? (mini ? ['model.depth=2', 'model.dim=96', 'optim.batchSize=16'] : []);
  return {
    steps,
    seeds,
    methods,
    evals,
    out,
    md: resolve(values.md ?? join(mini ? out : join(ROOT, 'bench'), 'COMPARISON.md')),
    html: values['no-report']
      ? null
      : resolve(values.html ?? join(mini ? out : join(ROOT, 'bench'), 'comparison.html')),
    sets,
    mini,
    fresh: values.fresh ?? false,
    random: !values['no-random'],
    from: list(values.from, []).map((f) => resolve(f)),
    zoo:
      values.weights || values.runs
        ? {
            weights: list(values.weights, []),
            runs: list(values.runs, []),
            heads: values.heads ? Number(values.heads) : undefined,
            size: values.size ? Number(values.size) : undefined,
            seeds: list(values.seeds, ['0']).map(Number),
            md: resolve(values.md ?? join(mini ? out : join(ROOT, 'bench'), 'ZOO.md')),
          }
        : null,
  };
}

const log = (s: string) => process.stderr.write(`[compare] ${s}\n`);

interface RunRecord {
  method: string;
  seed: number;
  dir: string;
  ok: boolean;
  error?: string;
  pretrainS?: number;
  stepS?: number; // median seconds per step (after 3 warm-up steps)
  evals: Record<string, Record<string, unknown>>;
  evalS: Record<string, number>;
}

function finished(dir: string, steps: number): boolean {
  return listCheckpoints(dir).some((c) => c.step === steps);
}

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function stepSeconds(dir: string): number {
  const rows = readMetrics(dir).filter((r) => typeof r.step_s === 'number');
  return median(rows.slice(Math.min(3, Math.max(0, rows.length - 1))).map((r) => r.step_s as number));
}

function pretrain(
  a: Args,
  method: string,
  seed: number,
  dir: string,
): { ok: boolean; error?: string; seconds: number } {
  if (!a.fresh && finished(dir, a.steps)) {
    log(`${method} seed ${seed}: reusing ${relative(process.cwd(), dir)}`);
    return { ok: true, seconds: Number.NaN };
  }
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  const args = [
    'bin/locus.js',
    'pretrain',
    '--method',
    method,
    '--steps',
    String(a.steps),
    '--seed',
    String(seed),
    '--out',
    dir,
  ];
  for (const s of a.sets) args.push('--set', s);
  args.push('--set', 'train.progress="plain"', '--set', `train.printEvery=${Math.max(1, Math.round(a.steps / 10))}`);
  log(`${method} seed ${seed}: node ${args.join(' ')}`);
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, {
    cwd: ROOT,
    stdio: ['ignore', 2, 'pipe'],
    env: { ...process.env, MALLOC_ARENA_MAX: '1' },
  });
  const seconds = (performance.now() - t0) / 1000;
  const err = r.stderr?.toString() ?? '';
  process.stderr.write(err);
  if (r.status !== 0 || !finished(dir, a.steps)) {
    const line = err.trim().split('\n').filter(Boolean).at(-1) ?? `exit ${r.status}`;
    return { ok: false, error: line.slice(0, 300), seconds };
  }
  return { ok: true, seconds };
}

async function evaluate(
  a: Args,
  checkpoint: string,
  seed: number,
  extra: Record<string, unknown> = {},
): Promise<{ evals: Record<string, Record<string, unknown>>; evalS: Record<string, number> }> {
  const evals: Record<string, Record<string, unknown>> = {};
  const evalS: Record<string, number> = {};
  for (const kind of a.evals) {
    const t0 = performance.now();
    try {
      evals[kind] = await runEval(kind, {
        checkpoint,
        ...extra,
        options: { seed, progress: false, ...(a.mini ? MINI_EVAL[kind] : {}), ...((extra.options as object) ?? {}) },
      });
    } catch (e) {
      evals[kind] = { error: (e as Error).message.split('\n')[0] };
      log(`  ${kind} failed: ${(e as Error).message.split('\n')[0]}`);
    }
    evalS[kind] = (performance.now() - t0) / 1000;
    log(`  ${kind}: ${summary(kind, evals[kind] as Record<string, unknown>)} (${evalS[kind]?.toFixed(1)} s)`);
  }
  return { evals, evalS };
}

function summary(kind: string, r: Record<string, unknown>): string {
  if (r.error) return `error: ${r.error}`;
  const pct = (v: unknown) => (typeof v === 'number' ? `${(100 * v).toFixed(1)}%` : '–');
  switch (kind) {
    case 'knn':
      return `top-1 ${pct(r.top1)}`;
    case 'linear':
      return `top-1 ${pct(r.top1)}`;
    case 'seg':
      return `mIoU ${pct(r.miou)}`;
    case 'parts':
      return `part mIoU ${pct(r.part_miou)}, object acc ${pct(r.object_acc)}, part acc ${pct(r.part_acc)}`;
    case 'location':
      return `acc ${pct(r.acc)}`;
    default:
      return '';
  }
}

// ---------------------------------------------------------------- the table

interface Column {
  name: string;
  get(r: RunRecord): number | undefined;
  pct: boolean;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

const COLUMNS: Column[] = [
  { name: 'k-NN top-1', get: (r) => num(r.evals.knn?.top1), pct: true },
  { name: 'linear top-1', get: (r) => num(r.evals.linear?.top1), pct: true },
  { name: 'seg mIoU', get: (r) => num(r.evals.seg?.miou), pct: true },
  { name: 'part mIoU', get: (r) => num(r.evals.parts?.part_miou), pct: true },
  { name: 'object mIoU', get: (r) => num(r.evals.parts?.object_miou), pct: true },
  { name: 'part acc', get: (r) => num(r.evals.parts?.part_acc), pct: true },
  { name: 'object acc', get: (r) => num(r.evals.parts?.object_acc), pct: true },
  { name: 'part mAP', get: (r) => num(r.evals.parts?.part_map), pct: true },
  { name: 'location acc', get: (r) => num(r.evals.location?.acc), pct: true },
  { name: 's/step', get: (r) => num(r.stepS), pct: false },
];

function cell(xs: (number | undefined)[], pct: boolean): string {
  const ok = xs.filter((x): x is number => x !== undefined);
  if (ok.length === 0) return '–';
  const { mean, std, n } = meanStd(ok);
  const f = (v: number) => (pct ? (100 * v).toFixed(1) : v.toFixed(2));
  return n > 1 ? `${f(mean)} ± ${f(std)}` : f(mean);
}

function stats(rs: RunRecord[], col: Column): { mean: number; std: number; n: number } {
  return meanStd(rs.map((r) => col.get(r)).filter((x): x is number => x !== undefined));
}

/** Location-aware method vs DINO on the dense/part measures: difference of means against the seeds' spread. */
function claimLines(groups: Map<string, RunRecord[]>, asked: string[]): string[] {
  const dino = groups.get('dino');
  const lines: string[] = [];
  if (!dino || dino.every((r) => !r.ok)) return ['DINO did not run, so the claim cannot be checked.'];
  const dense = COLUMNS.filter((c) => ['seg mIoU', 'part mIoU', 'part acc', 'part mAP'].includes(c.name));
  for (const m of LOCATION_AWARE) {
    const rs = groups.get(m);
    if (!asked.includes(m)) {
      lines.push(`- **${m}**: not in this comparison (--methods).`);
      continue;
    }
    if (!rs || rs.every((r) => !r.ok)) {
      lines.push(`- **${m}**: no finished run (${rs?.find((r) => r.error)?.error ?? 'failed'}).`);
      continue;
    }
    const parts = dense.map((c) => {
      const a = stats(rs, c);
      const b = stats(dino, c);
      if (a.n === 0 || b.n === 0) return `${c.name} n/a`;
      const d = 100 * (a.mean - b.mean);
      // "beyond noise": the difference exceeds the larger of the two seed spreads (needs ≥ 2 seeds each)
      const spread = 100 * Math.max(a.std, b.std);
      const verdict =
        a.n < 2 || b.n < 2
          ? 'one seed: no spread'
          : Math.abs(d) > spread
            ? d > 0
              ? 'better'
              : 'worse'
            : 'within the spread';
      return `${c.name} ${d >= 0 ? '+' : ''}${d.toFixed(1)} (spread ${spread.toFixed(1)}; ${verdict})`;
    });
    lines.push(`- **${m} − dino**: ${parts.join('; ')}`);
  }
  return lines;
}

function machine(): string {
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

function markdown(
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
  for (const r of records) groups.set(r.method, [...(groups.get(r.method) ?? []), r]);
  const head = `| method | seeds | ${COLUMNS.map((c) => c.name).join(' | ')} |`;
  const sep = `|---|---|${COLUMNS.map(() => '---:').join('|')}|`;
  const rows = [...groups].map(([m, rs]) => {
    const ok = rs.filter((r) => r.ok);
    if (ok.length === 0)
      return `| ${m} | 0 | failed: ${rs[0]?.error ?? '?'} |${COLUMNS.slice(1)
        .map(() => '')
        .join(' |')} |`;
    return `| ${m} | ${ok.length} | ${COLUMNS.map((c) =>
      cell(
        ok.map((r) => c.get(r)),
        c.pct,
      ),
    ).join(' | ')} |`;
  });
  if (random.length > 0)
    rows.push(
      `| *random init* | ${random.length} | ${COLUMNS.map((c) =>
        c.name === 's/step'
          ? '–'
          : cell(
              random.map((r) => c.get(r)),
              c.pct,
            ),
      ).join(' | ')} |`,
    );
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
    'Cells: mean ± sample standard deviation over seeds, in % (s/step in seconds, median over steps). k-NN/linear: Fashion-MNIST items (object level); seg: linear probe on frozen patch tokens, scenes; part/object: the part-aware protocol on the part-structured set (mIoU of frozen linear part-type / object-class segmentation; acc: linear classifier on keypoint-centred part crops / object crops; mAP: part retrieval with mean-patch features); location: patch grid position from the token.',
    '',
    head,
    sep,
    ...rows,
    '',
    '## Does location-aware pretraining beat DINO on dense and part-level tasks here?',
    '',
    'Difference of means in points (location-aware method minus DINO); "better"/"worse" only when the difference exceeds the larger seed spread.',
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

/** What a comparison run leaves beside its table, for --from. */
interface SavedComparison {
  command: string;
  machine: string;
  startLoad: number[];
  totalS: number;
  steps: number;
  seeds: number[];
  methods: string[];
  evals: string[];
  sets: string[];
  records: RunRecord[];
  random: RunRecord[];
}

const recordsPath = (md: string) => md.replace(/\.md$/, '') + '.json';

/** One table from several saved comparisons: same steps and overrides, records concatenated. */
function merge(a: Args): void {
  const saved = a.from.map((f) => JSON.parse(readFileSync(f, 'utf8')) as SavedComparison);
  const first = saved[0];
  if (!first) throw new Error('--from: no files');
  for (const [i, s] of saved.entries())
    if (s.steps !== first.steps || s.sets.join(' ') !== first.sets.join(' '))
      throw new Error(
        `--from: ${a.from[i]} ran ${s.steps} steps with '${s.sets.join(' ')}', ${a.from[0]} ${first.steps} with '${first.sets.join(' ')}': not one budget`,
      );
  const union = <T>(xs: T[][]) => [...new Set(xs.flat())];
  const rank = (m: string) => (ALL_METHODS.includes(m) ? ALL_METHODS.indexOf(m) : ALL_METHODS.length);
  const methods = union(saved.map((s) => s.methods)).sort((x, y) => rank(x) - rank(y));
  // records of one method together, in method order
  const records = methods.flatMap((m) => saved.flatMap((s) => s.records.filter((r) => r.method === m)));
  const merged: Args = {
    ...a,
    steps: first.steps,
    seeds: union(saved.map((s) => s.seeds)).sort((x, y) => x - y),
    methods,
    evals: union(saved.map((s) => s.evals)),
    sets: first.sets,
    html: null,
    mini: false,
  };
  const machines = union(saved.map((s) => [s.machine]));
  const md = markdown(
    merged,
    records,
    // one random-init row per seed (several files may each have evaluated it)
    [...new Map(saved.flatMap((s) => s.random).map((r) => [r.seed, r])).values()],
    first.startLoad,
    saved.reduce((t, s) => t + s.totalS, 0),
    saved.map((s) => s.command).join(' ; '),
    machines.join('; '),
    loadConfig({ steps: first.steps, sets: first.sets }), // the run directories may be elsewhere
  );
  // the sittings may have run side by side: their minutes add up to more than the wall time
  writeFileSync(
    a.md,
    md.replace(
      /by `bench\/compare.ts` in ([0-9.]+) min/,
      `by \`bench/compare.ts --from\` from ${saved.length} saved sittings ($1 min added up)`,
    ),
  );
  log(`wrote ${relative(process.cwd(), a.md)} from ${a.from.length} files`);
}

async function main(): Promise<void> {
  const a = parse();
  if (a.from.length > 0) return merge(a);
  if (a.zoo) {
    const command = `npm run compare -- ${process.argv.slice(2).join(' ')}`.trim();
    const probeOptions = a.mini ? MINI_EVAL : {};
    process.exitCode = await zoo({
      ...a.zoo,
      evals: a.evals,
      random: a.random,
      probeOptions,
      command,
      machine: machine(),
    });
    return;
  }
  const startLoad = loadavg();
  const t0 = performance.now();
  const command = `npm run compare -- ${process.argv.slice(2).join(' ')}`.trim();
  const available = new Set(methodNames());
  mkdirSync(a.out, { recursive: true });
  const records: RunRecord[] = [];
  for (const method of a.methods) {
    for (const seed of a.seeds) {
      const dir = join(a.out, `${method.replace(/[^A-Za-z0-9_.-]/g, '_')}-seed${seed}`);
      const rec: RunRecord = { method, seed, dir, ok: false, evals: {}, evalS: {} };
      records.push(rec);
      if (!available.has(method)) {
        rec.error = `method '${method}' is not registered (have: ${[...available].join(', ')})`;
        log(rec.error);
        continue;
      }
      const p = pretrain(a, method, seed, dir);
      rec.ok = p.ok;
      rec.error = p.error;
      rec.pretrainS = p.seconds;
      if (!p.ok) {
        log(`${method} seed ${seed} failed: ${p.error}`);
        continue;
      }
      rec.stepS = stepSeconds(dir);
      log(`${method} seed ${seed}: ${rec.stepS.toFixed(2)} s/step; evaluating`);
      const te = performance.now();
      Object.assign(rec, await evaluate(a, dir, seed));
      if (records.length === 1) {
        // A projection from the first run (methods differ in step cost: a rough guide only).
        const per = (Number.isFinite(p.seconds) ? p.seconds : a.steps * rec.stepS) + (performance.now() - te) / 1000;
        const total = per * (a.methods.length * a.seeds.length + a.seeds.length * 0.3);
        log(
          `projected total ≈ ${(total / 60).toFixed(0)} min for ${a.methods.length} methods × ${a.seeds.length} seeds (first run ${(per / 60).toFixed(1)} min)`,
        );
      }
    }
  }
  // The untrained baseline: the same architecture, random weights, one per seed.
  const random: RunRecord[] = [];
  const first = records.find((r) => r.ok);
  const runConfig = first ? readRunConfig(first.dir) : null;
  if (runConfig && a.random) {
    const cfg = vitConfigOf(runConfig);
    for (const seed of a.seeds) {
      log(`random init seed ${seed}: evaluating`);
      const rec: RunRecord = { method: 'random', seed, dir: '', ok: true, evals: {}, evalS: {} };
      Object.assign(rec, await evaluate(a, `random:${seed}`, seed, { randomConfig: cfg }));
      random.push(rec);
    }
  }
  if (a.html) {
    const runs: ReportRun[] = [];
    for (const r of records.filter((x) => x.ok)) {
      try {
        runs.push(await collectRun(r.dir, { name: `${r.method}-seed${r.seed}` }));
      } catch (e) {
        log(`report: ${r.dir}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    writeFileSync(
      a.html,
      await renderReport(runs, { title: `Locus method comparison (${a.steps} steps, seeds ${a.seeds.join(',')})` }),
    );
    log(`wrote ${relative(process.cwd(), a.html)}`);
  }
  const totalS = (performance.now() - t0) / 1000;
  mkdirSync(resolve(a.md, '..'), { recursive: true });
  const host = machine();
  writeFileSync(a.md, markdown(a, records, random, startLoad, totalS, command, host, runConfig));
  const saved: SavedComparison = {
    command,
    machine: host,
    startLoad,
    totalS,
    steps: a.steps,
    seeds: a.seeds,
    methods: a.methods,
    evals: a.evals,
    sets: a.sets,
    records,
    random,
  };
  writeFileSync(recordsPath(a.md), `${JSON.stringify(saved)}\n`);
  log(`wrote ${relative(process.cwd(), a.md)} (${(totalS / 60).toFixed(1)} min)`);
  const summaryJson = {
    md: a.md,
    html: a.html,
    minutes: totalS / 60,
    runs: records.map((r) => ({
      method: r.method,
      seed: r.seed,
      ok: r.ok,
      error: r.error,
      step_s: r.stepS,
      evals: Object.fromEntries(Object.entries(r.evals).map(([k, v]) => [k, summary(k, v)])),
    })),
  };
  process.stdout.write(`${JSON.stringify(summaryJson)}\n`);
  if (records.every((r) => !r.ok)) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`compare: ${(e as Error).message}\n`);
  process.exit(1);
});
