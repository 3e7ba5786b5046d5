// The comparison's command line, in one place: every option, its default, and the probe list (each
// probe row = an eval kind plus options: the in-domain object probes are knn/linear on scene items).
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ZooArgs } from '../zoo.js';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url)); // dist/bench/compare → repository root
/** Every method in table order: the calibration rows (supervised above, random init below) bracket the rest. */
export const ALL_METHODS = ['supervised', 'dino', 'selfpatch', 'loca', 'scrl', 'byol', 'gtsa', 'mim', 'dino+mim'];
export const LOCATION_AWARE = ['selfpatch', 'loca', 'scrl', 'gtsa'];

/** A probe of the comparison: the eval kind it runs and the options that make it this probe. */
export interface Probe {
  name: string;
  kind: string;
  options: Record<string, unknown>;
}

export const PROBES: Probe[] = [
  { name: 'knn', kind: 'knn', options: {} }, // Fashion-MNIST items on black: out of domain
  { name: 'linear', kind: 'linear', options: {} },
  { name: 'knn-items', kind: 'knn', options: { data: 'scene-items' } }, // items cut from the scenes: in domain
  { name: 'linear-items', kind: 'linear', options: { data: 'scene-items' } },
  { name: 'seg', kind: 'seg', options: {} },
  { name: 'nnseg', kind: 'nnseg', options: {} },
  { name: 'parts', kind: 'parts', options: {} },
  { name: 'location', kind: 'location', options: {} },
];
export const PROBE_NAMES = PROBES.map((p) => p.name);

const FM = (n: number, split: string) => ({ kind: 'fashion-mnist', split, length: n });
const SC = (n: number, split: string) => ({ kind: 'scenes', split, length: n });
/** Probe sizes for --mini (the full comparison uses each probe's defaults, stated in every result JSON). */
export const MINI_EVAL: Record<string, Record<string, unknown>> = {
  knn: { train: FM(300, 'train'), test: FM(100, 'test') },
  linear: { train: FM(300, 'train'), test: FM(100, 'test'), epochs: 20 },
  'knn-items': { data: null, train: SC(30, 'train'), test: SC(30, 'eval') },
  'linear-items': { data: null, train: SC(30, 'train'), test: SC(30, 'eval'), epochs: 20 },
  seg: { train: SC(40, 'train'), test: SC(20, 'eval'), steps: 60 },
  nnseg: { train: SC(40, 'train'), test: SC(20, 'eval') },
  parts: {
    train: { kind: 'parts', split: 'train', length: 16 },
    test: { kind: 'parts', split: 'eval', length: 8 },
    seg: { steps: 40, batchSize: 8, lr: 0.003, wd: 1e-4, seed: 0 },
    linear: { lrs: [0.1, 1], wds: [0], valFraction: 0.2, epochs: 20, batchSize: 256, momentum: 0.9, seed: 0 },
  },
  location: { train: SC(20, 'train'), test: SC(10, 'eval'), epochs: 5 },
};

export interface Args {
  steps: number;
  seeds: number[];
  methods: string[];
  evals: string[]; // probe names (PROBES)
  out: string;
  md: string;
  html: string | null;
  sets: string[];
  mini: boolean;
  fresh: boolean;
  random: boolean;
  /** Evaluate the other network (student/teacher) of every EMA method too. */
  bothBackbones: boolean;
  from: string[];
  /** --weights/--runs: off-the-shelf checkpoints beside runs (bench/zoo.ts), instead of the comparison. */
  zoo: Pick<ZooArgs, 'weights' | 'runs' | 'heads' | 'size' | 'seeds' | 'md'> | null;
}

const list = (s: string | undefined, d: string[]) =>
  s
    ? s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    : d;

export function parse(argv: string[] = process.argv.slice(2)): Args {
  const { values } = parseArgs({
    args: argv,
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
      'one-backbone': { type: 'boolean', default: false }, // only the network each method's reference evaluates
      from: { type: 'string' },
      weights: { type: 'string' }, // bench/zoo.ts
      runs: { type: 'string' },
      heads: { type: 'string' },
      size: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    const entry = fileURLToPath(new URL('../compare.js', import.meta.url));
    process.stdout.write(
      `${readFileSync(entry, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('//'))
        .join('\n')}\n`,
    );
    process.exit(0);
  }
  const mini = values.mini ?? false;
  const methods = list(values.methods, mini ? ['supervised', 'dino', 'byol'] : ALL_METHODS);
  const evals = list(values.evals, PROBE_NAMES);
  for (const e of evals)
    if (!PROBE_NAMES.includes(e)) throw new Error(`--evals: unknown probe '${e}' (allowed: ${PROBE_NAMES.join(', ')})`);
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
    bothBackbones: !values['one-backbone'],
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
