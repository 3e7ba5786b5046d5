// The zoo comparison (`npm run compare -- --weights a.pth,b.safetensors,… [--runs runs/x,runs/y]`): any set
// of off-the-shelf checkpoints (timm, DINO, iBOT, DeiT, MAE; src/train/import.ts) and Locus runs, every probe
// on each, into one table — the part-aware study's side-by-side of frozen encoders — with a random init of
// each architecture in the row beside its checkpoints. Writes bench/ZOO.md (or --md) and its records as
// ZOO.json beside it; prints a one-line JSON summary. Called from bench/compare.ts.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { EvalBackbone } from '../src/eval/features.js';
import { resolveBackbone, runEval } from '../src/eval/index.js';
import { meanStd } from '../src/eval/metrics.js';
import { importBackbone } from '../src/train/import.js';

export interface ZooArgs {
  weights: string[]; // off-the-shelf checkpoint files
  runs: string[]; // Locus run directories or checkpoints, evaluated beside them
  evals: string[];
  seeds: number[]; // probe seeds (and random-init seeds)
  heads?: number; // --heads for every weights file whose head count is not dim/64
  size?: number; // eval input side (default: each model's native imgSize)
  random: boolean;
  md: string;
  /** Probe options by kind (compare's --mini sizes), under each probe's defaults. */
  probeOptions: Record<string, Record<string, unknown>>;
  command: string;
  machine: string;
}

interface ZooRecord {
  name: string;
  source: string; // 'weights' (its layout) | 'run' (method, steps) | 'random init'
  path: string;
  arch: string; // 'dim 384 · depth 12 · heads 6 · patch 16 · 224 px'
  seed: number;
  ok: boolean;
  error?: string;
  evals: Record<string, Record<string, unknown>>;
  evalS: Record<string, number>;
}

const log = (s: string) => process.stderr.write(`[zoo] ${s}\n`);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);
const COLUMNS: { name: string; get: (e: ZooRecord['evals']) => number | undefined }[] = [
  { name: 'k-NN top-1', get: (e) => num(e.knn?.top1) },
  { name: 'linear top-1', get: (e) => num(e.linear?.top1) },
  { name: 'seg mIoU', get: (e) => num(e.seg?.miou) },
  { name: 'part mIoU', get: (e) => num(e.parts?.part_miou) },
  { name: 'object mIoU', get: (e) => num(e.parts?.object_miou) },
  { name: 'part acc', get: (e) => num(e.parts?.part_acc) },
  { name: 'object acc', get: (e) => num(e.parts?.object_acc) },
  { name: 'part mAP', get: (e) => num(e.parts?.part_map) },
  { name: 'location acc', get: (e) => num(e.location?.acc) },
];

function archOf(bb: EvalBackbone): string {
  const c = bb.vit.cfg;
  return `dim ${c.dim} · depth ${c.depth} · heads ${c.heads} · patch ${c.patchSize} · ${c.imgSize} px`;
}

async function evaluateAll(
  a: ZooArgs,
  bb: EvalBackbone | string,
  seed: number,
  extra: { randomConfig?: EvalBackbone['vit']['cfg'] } = {},
): Promise<Pick<ZooRecord, 'evals' | 'evalS'>> {
  const evals: ZooRecord['evals'] = {};
  const evalS: ZooRecord['evalS'] = {};
  for (const kind of a.evals) {
    const t0 = performance.now();
    try {
      evals[kind] = await runEval(kind, {
        checkpoint: bb,
        ...extra,
        options: {
          seed,
          progress: false,
          outDir: null, // a run's own evals/ are left as they are
          cacheDir: null,
          ...(a.size ? { size: a.size } : {}),
          ...(a.probeOptions[kind] ?? {}),
        },
      });
    } catch (e) {
      evals[kind] = { error: (e as Error).message.split('\n')[0] };
    }
    evalS[kind] = (performance.now() - t0) / 1000;
    const r = evals[kind] as Record<string, unknown>;
    log(`  ${kind}: ${r.error ? `error: ${r.error}` : `${(evalS[kind] as number).toFixed(1)} s`}`);
  }
  return { evals, evalS };
}

/** Loads one entry (weights file or run) and evaluates it; the backbone's config is returned for its random init. */
async function entry(
  a: ZooArgs,
  path: string,
  kind: 'weights' | 'run',
  seed: number,
): Promise<{ rec: ZooRecord; cfg: EvalBackbone['vit']['cfg'] | null }> {
  const rec: ZooRecord = { name: basename(path), source: kind, path, arch: '', seed, ok: false, evals: {}, evalS: {} };
  let bb: EvalBackbone | null = null;
  try {
    if (!existsSync(path)) throw new Error(`'${path}' does not exist`);
    if (kind === 'weights') bb = importBackbone(path, { heads: a.heads });
    else bb = await resolveBackbone(path);
    rec.arch = archOf(bb);
    rec.source = kind === 'weights' ? (bb.method ?? 'weights') : `${bb.method} run, ${bb.step ?? '?'} steps`;
    log(`${rec.name} (${rec.source}; ${rec.arch}) seed ${seed}: evaluating`);
    Object.assign(rec, await evaluateAll(a, bb, seed));
    rec.ok = true;
    return { rec, cfg: { ...bb.vit.cfg } };
  } catch (e) {
    rec.error = (e as Error).message.split('\n')[0];
    log(`${rec.name}: ${rec.error}`);
    return { rec, cfg: null };
  } finally {
    bb?.dispose?.();
  }
}

function cell(xs: (number | undefined)[]): string {
  const ok = xs.filter((x): x is number => x !== undefined);
  if (ok.length === 0) return '–';
  const { mean, std, n } = meanStd(ok);
  return n > 1 ? `${(100 * mean).toFixed(1)} ± ${(100 * std).toFixed(1)}` : (100 * mean).toFixed(1);
}

function markdown(a: ZooArgs, rows: ZooRecord[][], totalS: number): string {
  const head = `| checkpoint | source | architecture | seeds | ${COLUMNS.map((c) => c.name).join(' | ')} |`;
  const sep = `|---|---|---|---|${COLUMNS.map(() => '---:').join('|')}|`;
  const lines = rows.map((rs) => {
    const r = rs[0] as ZooRecord;
    const ok = rs.filter((x) => x.ok);
    const name = r.source === 'random init' ? '*random init*' : `\`${r.name}\``;
    if (ok.length === 0)
      return `| ${name} | ${r.source} | ${r.arch || '–'} | 0 | failed: ${r.error ?? '?'} |${COLUMNS.slice(1)
        .map(() => '')
        .join(' |')} |`;
    return `| ${name} | ${r.source} | ${r.arch} | ${ok.length} | ${COLUMNS.map((c) => cell(ok.map((x) => c.get(x.evals)))).join(' | ')} |`;
  });
  const errors = rows.flat().flatMap((r) =>
    Object.entries(r.evals)
      .filter(([, v]) => v.error)
      .map(([k, v]) => `${r.name} ${k}: ${v.error}`),
  );
  return [
    '# Zoo comparison: off-the-shelf checkpoints and Locus runs, every probe',
    '',
    `Generated ${new Date().toISOString()} by \`bench/zoo.ts\` in ${(totalS / 60).toFixed(1)} min.`,
    '',
    `- Command: \`${a.command}\``,
    `- Machine: ${a.machine}`,
    `- Probes (defaults of \`src/eval\`${Object.keys(a.probeOptions).length ? ', miniature sizes (--mini): not meaningful' : ''}): ${a.evals.join(', ')}; seeds ${a.seeds.join(', ')}; input: ${a.size ? `${a.size} px` : "each model's native size"}`,
    '',
    'Cells: mean ± sample standard deviation over probe seeds, in %. k-NN/linear: Fashion-MNIST items (CLS token); seg: linear probe on frozen patch tokens, scenes; part/object: the part-aware protocol on the part-structured set; location: patch grid position from the token. *random init* rows: the architecture above them, untrained.',
    '',
    head,
    sep,
    ...lines,
    '',
    errors.length ? `Probe errors: ${errors.join('; ')}` : 'Every probe ran on every checkpoint.',
    '',
  ].join('\n');
}

/** Runs the zoo comparison; returns the process exit code. */
export async function zoo(a: ZooArgs): Promise<number> {
  const t0 = performance.now();
  const entries = [
    ...a.weights.map((p) => ({ p: resolve(p), kind: 'weights' as const })),
    ...a.runs.map((p) => ({ p: resolve(p), kind: 'run' as const })),
  ];
  const rows: ZooRecord[][] = [];
  const archs = new Map<string, { cfg: EvalBackbone['vit']['cfg']; after: number }>();
  for (const e of entries) {
    const rs: ZooRecord[] = [];
    let cfg: EvalBackbone['vit']['cfg'] | null = null;
    for (const seed of a.seeds) {
      const r = await entry(a, e.p, e.kind, seed);
      rs.push(r.rec);
      cfg ??= r.cfg;
    }
    rows.push(rs);
    if (cfg) {
      const key = rs[0]?.arch as string;
      archs.set(key, { cfg: { ...cfg, dropPathRate: 0 }, after: rows.length - 1 }); // the last row of that architecture
    }
  }
  if (a.random) {
    // one random-init row per architecture, right after its last checkpoint row
    const inserts = [...archs].sort((x, y) => y[1].after - x[1].after);
    for (const [arch, { cfg, after }] of inserts) {
      const rs: ZooRecord[] = [];
      for (const seed of a.seeds) {
        log(`random init (${arch}) seed ${seed}: evaluating`);
        const rec: ZooRecord = {
          name: 'random init',
          source: 'random init',
          path: `random:${seed}`,
          arch,
          seed,
          ok: true,
          ...(await evaluateAll(a, `random:${seed}`, seed, { randomConfig: cfg })),
        };
        rs.push(rec);
      }
      rows.splice(after + 1, 0, rs);
    }
  }
  const totalS = (performance.now() - t0) / 1000;
  mkdirSync(dirname(a.md), { recursive: true });
  writeFileSync(a.md, markdown(a, rows, totalS));
  writeFileSync(a.md.replace(/\.md$/, '') + '.json', `${JSON.stringify({ command: a.command, rows })}\n`);
  log(`wrote ${relative(process.cwd(), a.md)} (${(totalS / 60).toFixed(1)} min)`);
  process.stdout.write(
    `${JSON.stringify({
      md: a.md,
      rows: rows.map((rs) => ({
        name: rs[0]?.name,
        source: rs[0]?.source,
        arch: rs[0]?.arch,
        ok: rs.every((r) => r.ok),
        error: rs.find((r) => r.error)?.error,
        evals: Object.fromEntries(COLUMNS.map((c) => [c.name, cell(rs.map((r) => c.get(r.evals)))])),
      })),
    })}\n`,
  );
  return rows.some((rs) => rs.some((r) => r.source !== 'random init' && r.ok)) ? 0 : 1;
}
