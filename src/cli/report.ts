// `locus report RUN_DIR... --out FILE.html`: one self-contained HTML page from run directories
// (config, metrics, evals, and pictures from each run's latest checkpoint).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { collectRun } from '../report/collect.js';
import { type ReportRun, renderReport } from '../report/html.js';
import { refuseRunOwned, writeTextAtomic } from '../train/run.js';
import { action, printJson } from './common.js';

export async function writeReport(
  dirs: string[],
  out: string,
  o: { title?: string; pictures?: boolean } = {},
): Promise<string> {
  refuseRunOwned(out); // never over a run's own files (config.json, checkpoints/, evals/, …)
  const runs: ReportRun[] = [];
  for (const d of dirs) runs.push(await collectRun(d, { pictures: o.pictures === false ? 0 : 4 }));
  const html = await renderReport(runs, { title: o.title });
  const path = resolve(out);
  writeTextAtomic(path, html, 'cannot write the report');
  return path;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write one self-contained HTML report for run directories')
    .argument('<runDirs...>', 'run directories (config.json, metrics.jsonl, evals/, checkpoints/)')
    .requiredOption('--out <file>', 'the HTML file to write')
    .option('--title <text>', 'page title', 'Locus report')
    .option('--no-pictures', "skip attention/PCA pictures (they need each run's latest checkpoint)")
    .option('--json', 'print {"report": path, "runs": n} as the last line')
    .addHelpText(
      'after',
      `
Examples:
  $ locus report runs/dino-20250101-120000 --out report.html
  $ locus report runs/dino-a runs/loca-b --out compare.html --title "DINO vs LOCA"`,
    )
    .action(
      action(async (dirs: string[], f: { out: string; title: string; pictures: boolean; json?: boolean }) => {
        const path = await writeReport(dirs, f.out, { title: f.title, pictures: f.pictures });
        process.stdout.write(`report: ${path}\n`);
        if (f.json) printJson({ report: path, runs: dirs.length });
        return 0;
      }),
    );
}
