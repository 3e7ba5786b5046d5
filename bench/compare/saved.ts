// What a comparison leaves beside its table (COMPARISON.json), and --from: one table from several saved
// sittings (seeds or methods run on different machines or at different times), running nothing.
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { loadConfig } from '../../src/train/config.js';
import { ALL_METHODS, type Args } from './args.js';
import { log, type RunRecord } from './runs.js';
import { markdown } from './table.js';

export interface SavedComparison {
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

export const recordsPath = (md: string) => `${md.replace(/\.md$/, '')}.json`;

/** One table from several saved comparisons: same steps and overrides, records concatenated. */
export function merge(a: Args): void {
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
