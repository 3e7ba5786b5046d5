// The `locus` command line (bin/locus.js imports this file).
import { Command } from 'commander';
import { registerBench } from './bench.js';
import { packageVersion } from './common.js';
import { registerEval } from './eval.js';
import { registerExport } from './export.js';
import { registerInfo } from './info.js';
import { registerMain } from './pipeline.js';
import { registerPretrain } from './pretrain.js';
import { registerReport } from './report.js';

export function buildProgram(): Command {
  const program = new Command('locus')
    .description('Location-aware self-supervised pretraining of Vision Transformers (TypeScript over libtorch)')
    .version(packageVersion())
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Examples:
  $ locus pretrain                          # DINO on 64x64 Fashion-MNIST scenes, about 10 minutes
  $ locus eval knn --checkpoint runs/dino-20250101-120000
  $ locus report runs/dino-20250101-120000 --out report.html
  $ locus main                              # pretrain + eval + report (what npm start runs)
  $ locus bench engine                      # Locus vs PyTorch training step
  $ locus info --json`,
    );
  registerPretrain(program);
  registerEval(program);
  registerReport(program);
  registerBench(program);
  registerExport(program);
  registerInfo(program);
  registerMain(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
