// `locus main` (npm start): pretrain the default, evaluate the trained eval backbone with every probe
// (and a random init of the same architecture, the baseline it must beat), write the HTML report.
import type { Command } from 'commander';
import { describeResult, runEval, vitConfigOf } from '../eval/index.js';
import { writeEval } from '../train/run.js';
import { action, printJson } from './common.js';
import { addPretrainOptions, type PretrainFlags, runPretrain } from './pretrain.js';
import { writeReport } from './report.js';

export function registerMain(program: Command): void {
  addPretrainOptions(
    program
      .command('main')
      .description('the main job: pretrain (default: DINO), every probe vs a random init, HTML report'),
  )
    .addHelpText(
      'after',
      `
Takes the pretrain options. Writes <run>/evals/<kind>@<dataset>.json and <kind>_random_init@<dataset>.json for each probe in
eval.kinds (knn, linear, seg, nnseg, parts, location), and <run>/report.html. Probe options: --set eval.<kind>.<option>=V.

Examples:
  $ npm start                      # = locus main: the default run (pretraining, probes, report)
  $ locus main --steps 50 --out runs/smoke --set eval.kinds='["knn","seg"]'`,
    )
    .action(
      action(async (f: PretrainFlags) => {
        const r = await runPretrain({ ...f, json: false });
        if (typeof r === 'number') return r;
        if (r.stopped) return 0; // interrupted: the checkpoint is written; evaluate after --resume
        const c = r.config;
        const summary: Record<string, unknown> = {};
        const probes: Record<string, ProbeHeadline> = {};
        for (const kind of c.eval.kinds) {
          const options = { seed: c.seed, ...c.eval[kind] };
          const t0 = performance.now();
          const trained = await runEval(kind, { checkpoint: r.finalCheckpoint, options });
          let line = `${kind.padEnd(8)} trained: ${describeResult(kind, trained)}`;
          summary[kind] = headline(kind, trained);
          if (c.eval.randomInit) {
            const random = await runEval(kind, {
              checkpoint: `random:${c.seed}`,
              randomConfig: vitConfigOf(c),
              options: { ...options, outDir: null },
            });
            writeEval(r.runDir, `${kind}_random_init`, random);
            line += ` | random init: ${describeResult(kind, random)}`;
            summary[`${kind}_random_init`] = headline(kind, random);
            const key = HEADLINE[kind];
            const pct = (v: unknown) => (typeof v === 'number' ? Number((100 * v).toFixed(2)) : null);
            // one seed: no seed spread (the comparison, npm run compare --seeds, measures it)
            if (key)
              probes[`${kind}.${key}`] = {
                trained: pct(trained[key]),
                random: pct(random[key]),
                spread: null,
                unit: '%',
              };
          }
          process.stdout.write(`${line} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
        }
        const report = await writeReport([r.runDir], `${r.runDir}/report.html`, {
          title: `Locus: ${c.method} on the default data`,
        });
        process.stdout.write(`report: ${report}\n`);
        if (f.json)
          printJson({
            run_dir: r.runDir,
            checkpoint: r.finalCheckpoint,
            evals: summary,
            report,
            method: c.method,
            steps: c.optim.steps,
            probes,
            train_seconds: Number(r.seconds.toFixed(1)),
          });
        return 0;
      }),
    );
}

/** The one number per probe that `probes` in the --json summary holds (trained vs random init). */
const HEADLINE: Record<string, string> = {
  knn: 'top1',
  linear: 'top1',
  seg: 'miou',
  nnseg: 'miou',
  parts: 'part_miou',
  location: 'acc',
};

interface ProbeHeadline {
  trained: number | null;
  random: number | null;
  spread: number | null;
  unit: '%';
}

/** The headline number(s) of a probe result, for the JSON summary. */
function headline(kind: string, r: Record<string, unknown>): Record<string, unknown> {
  const keys: Record<string, string[]> = {
    knn: ['top1', 'top5'],
    linear: ['top1', 'top5'],
    seg: ['miou', 'pixel_acc'],
    nnseg: ['miou', 'pixel_acc'],
    parts: ['part_miou', 'object_miou', 'part_acc', 'object_acc', 'part_map'],
    location: ['acc'],
  };
  return Object.fromEntries((keys[kind] ?? []).map((k) => [k, r[k]]));
}
