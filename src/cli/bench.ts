// `locus bench engine|data|methods|ddp|compare|crash`: the benchmarks under bench/ (each compares with PyTorch or prints
// its measured numbers; see bench/RESULTS.md), run as child processes with their own flags.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';

const BENCHES: Record<string, string> = {
  engine: 'ViT-Tiny DINO training step, Locus vs PyTorch (python3-torch), same model and threads',
  data: 'augmentation throughput (views/s) with 1..N loader workers vs the training step time',
  methods: "each method's step time on the default config relative to DINO's",
  ddp: '2-process DDP step time vs 1 process on the same total batch, with the all-reduce share',
  compare: 'every method, same budget, every probe, several seeds → bench/COMPARISON.md',
  crash: 'SIGKILL soak: N kills at random times and mid-checkpoint-write, each resumed and checked',
};

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`run a benchmark (${Object.keys(BENCHES).join(', ')}); extra flags go to it`)
    .argument('<name>', `the benchmark (${Object.keys(BENCHES).join(', ')})`)
    .argument('[args...]', 'flags for the benchmark (e.g. --rounds 5); use -- before them')
    .allowUnknownOption()
    .addHelpText(
      'after',
      `
Benchmarks:
${Object.entries(BENCHES)
  .map(([k, v]) => `  ${k.padEnd(8)} ${v}`)
  .join('\n')}

Examples:
  $ locus bench engine -- --rounds 5
  $ locus bench ddp -- --steps 20
  $ locus bench compare -- --steps 150 --seeds 0,1
  $ locus bench crash -- --trials 20`,
    )
    .action((name: string, args: string[]) => {
      if (!BENCHES[name]) {
        process.stderr.write(
          `locus: error: unknown benchmark '${name}' (allowed: ${Object.keys(BENCHES).join(', ')})\n`,
        );
        process.exit(1);
      }
      const script = fileURLToPath(new URL(`../../bench/${name}.js`, import.meta.url));
      if (!existsSync(script)) {
        process.stderr.write(`locus: error: ${script} is missing (run npm run build:ts)\n`);
        process.exit(1);
      }
      const r = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
      process.exit(r.status ?? 1);
    });
}
