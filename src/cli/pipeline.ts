// `locus main` (npm start): pretrain the default, evaluate (k-NN of the trained and of a randomly
// initialised backbone), write the report into the run directory.
import type { Command } from 'commander';
import { loadEvalTarget, randomEvalTarget } from '../eval/dispatch.js';
import { writeEval } from '../train/run.js';
import { action, printJson } from './common.js';
import { evaluate } from './eval.js';
import { addPretrainOptions, type PretrainFlags, runPretrain } from './pretrain.js';
import { writeReport } from './report.js';

export function registerMain(program: Command): void {
  addPretrainOptions(
    program
      .command('main')
      .description('the main job: pretrain (default: DINO), k-NN eval vs random init, HTML report'),
  )
    .addHelpText(
      'after',
      `
Takes the pretrain options. Writes <run>/evals/knn.json, <run>/evals/knn_random_init.json and <run>/report.html.

Examples:
  $ npm start                      # = locus main: the default run, about 10 minutes on 2 cores
  $ locus main --steps 50 --out runs/smoke`,
    )
    .action(
      action(async (f: PretrainFlags) => {
        const r = await runPretrain({ ...f, json: false });
        if (typeof r === 'number') return r;
        if (r.stopped) return 0; // interrupted: the checkpoint is written; evaluate after --resume
        const trained = await evaluate('knn', loadEvalTarget(r.finalCheckpoint), true);
        process.stdout.write(`k-NN (trained teacher CLS): top-1 ${trained.result.top1}%\n`);
        const random = await evaluate('knn', randomEvalTarget(r.config), false);
        writeEval(r.runDir, 'knn_random_init', random.result);
        process.stdout.write(`k-NN (random init):         top-1 ${random.result.top1}%\n`);
        const report = await writeReport([r.runDir], `${r.runDir}/report.html`, {
          title: `Locus: ${r.config.method} on the default data`,
        });
        process.stdout.write(`report: ${report}\n`);
        if (f.json)
          printJson({
            run_dir: r.runDir,
            checkpoint: r.finalCheckpoint,
            knn_top1: trained.result.top1,
            knn_random_init_top1: random.result.top1,
            report,
            train_seconds: Number(r.seconds.toFixed(1)),
          });
        return 0;
      }),
    );
}
