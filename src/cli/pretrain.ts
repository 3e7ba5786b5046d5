// `locus pretrain` (and the options `locus main` shares).
import { type Command, Option } from 'commander';
import { METHODS, methodNames } from '../methods/index.js';
import type { ConfigSources } from '../train/config.js';
import { loadConfig, resolveDevice } from '../train/config.js';
import { Distributed, distFromEnv } from '../train/distributed.js';
import { checkInitFits, initSets } from '../train/import.js';
import { launchLocal } from '../train/launch.js';
import { type PretrainResult, pretrain } from '../train/pretrain.js';
import { defaultRunDir, readRunConfig } from '../train/run.js';
import { action, collect, parseIntOption, printJson } from './common.js';

export interface PretrainFlags {
  method?: string;
  steps?: number;
  out?: string;
  config?: string;
  set: string[];
  resume?: string;
  init?: string;
  nproc: number;
  seed?: number;
  json?: boolean;
}

export function addPretrainOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--method <name>', `pretraining method (${methodNames().join(', ')}); default dino`))
    .option('--steps <n>', 'optimizer steps (optim.steps)', parseIntOption(1))
    .option('--out <dir>', 'run directory (default runs/<method>-<timestamp>; must not hold a run)')
    .option('--config <file>', 'config file (JSON or YAML)')
    .option('--set <key=value>', 'override a config field by dotted path (repeatable; JSON values)', collect, [])
    .option('--resume <dir>', 'continue the run in <dir> exactly from its latest checkpoint')
    .option('--init <file>', 'start the backbone from an off-the-shelf ViT (.pth/.pt/.safetensors; its architecture)')
    .option('--nproc <n>', 'data-parallel processes on this machine (c10d: Gloo, NCCL on cuda)', parseIntOption(1), 1)
    .option('--seed <n>', 'run seed (seed)', parseIntOption(0))
    .option('--json', 'print one JSON object with the results as the last line');
}

/** `--set model.heads=N` given with --init (the head count is not in a state dict). */
function initHeads(f: PretrainFlags): number | undefined {
  const h = f.set.map((s) => /^model\.heads=(\d+)$/.exec(s)?.[1]).find((v) => v !== undefined);
  return h === undefined ? undefined : Number(h);
}

export function sources(f: PretrainFlags): ConfigSources {
  if (f.init && f.resume) throw new Error('--init starts a new run; it cannot be combined with --resume');
  // --init: the file's architecture (and model.init) before the user's --set, which win
  const sets = f.init ? [...initSets(f.init, initHeads(f)).sets, ...f.set] : f.set;
  return { file: f.config, sets, method: f.method, steps: f.steps, seed: f.seed };
}

/** The argv of this command minus --nproc, plus an explicit --out (every rank must agree on it). */
function rankArgs(argv: string[], out: string | undefined): string[] {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--nproc') i++;
    else if (!a.startsWith('--nproc=')) args.push(a);
  }
  if (out && !args.includes('--out') && !args.includes('--resume')) args.push('--out', out);
  return args;
}

/** Runs pretraining in this process, or launches --nproc ranks; prints the run directory and checkpoint. */
export async function runPretrain(f: PretrainFlags): Promise<PretrainResult | number> {
  if (f.init) {
    // the file's shapes against the config, before a run directory exists
    checkInitFits(loadConfig(sources(f)).model, f.init, initHeads(f));
    if (!process.env.WORLD_SIZE)
      for (const n of initSets(f.init, initHeads(f)).notes) process.stderr.write(`locus: ${n}\n`);
  }
  if (f.nproc > 1 && !process.env.WORLD_SIZE) {
    const out = f.resume ? undefined : (f.out ?? defaultRunDir(loadConfig(sources(f)).method));
    return launchLocal(process.argv[1] as string, rankArgs(process.argv.slice(2), out), f.nproc);
  }
  const d = distFromEnv();
  // The run's device picks the c10d backend (NCCL for CUDA tensors when the build has it, else Gloo).
  const device = d ? resolveDevice(loadConfig(sources(f), f.resume ? readRunConfig(f.resume) : undefined)) : 'cpu';
  const dist = d ? new Distributed({ ...d, device }) : null;
  try {
    const r = await pretrain({ sources: sources(f), out: f.out, resume: f.resume, dist });
    if (dist && !dist.isMain) return r;
    if (r.alreadyComplete)
      process.stderr.write(`locus: ${r.runDir} is already complete (step ${r.step}/${r.totalSteps})\n`);
    else if (r.stopped)
      process.stderr.write(
        `locus: stopped at step ${r.step}/${r.totalSteps}; continue with: locus pretrain --resume ${r.runDir}\n`,
      );
    process.stdout.write(`run directory: ${r.runDir}\nfinal checkpoint: ${r.finalCheckpoint}\n`);
    if (r.skippedImages > 0)
      // own-data: the bad-image count in the summary
      process.stdout.write(`skipped images: ${r.skippedImages} (listed in ${r.runDir}/skipped.jsonl)\n`);
    if (f.json)
      printJson({
        run_dir: r.runDir,
        checkpoint: r.finalCheckpoint,
        method: r.config.method,
        step: r.step,
        total_steps: r.totalSteps,
        stopped: r.stopped,
        loss: r.lastLoss,
        seconds: Number(r.seconds.toFixed(1)),
        skipped_images: r.skippedImages,
      });
    return r;
  } finally {
    dist?.close();
  }
}

export function registerPretrain(program: Command): void {
  const lines = methodNames().map((n) => `  ${n.padEnd(10)} ${METHODS[n]?.summary}`);
  addPretrainOptions(program.command('pretrain').description('pretrain a ViT with a self-supervised method'))
    .addHelpText(
      'after',
      `
Methods:
${lines.join('\n')}

Examples:
  $ locus pretrain                                   # the default: DINO, ViT on 64x64 Fashion-MNIST scenes (~10 min on 2 cores)
  $ locus pretrain --method dino --steps 200 --out runs/dino-short
  $ locus pretrain --config my.yaml --set optim.lr=0.001 --set model.depth=6
  $ locus pretrain --resume runs/dino-short          # continue exactly after Ctrl-C
  $ locus pretrain --init dino_deitsmall16_pretrain.pth --steps 100   # continue from an off-the-shelf ViT
  $ locus pretrain --nproc 2 --steps 100             # data-parallel over 2 local processes

Ctrl-C (SIGINT) or SIGTERM finishes the current step, writes a checkpoint and exits 0.`,
    )
    .action(
      action(async (f: PretrainFlags) => {
        const r = await runPretrain(f);
        return typeof r === 'number' ? r : 0;
      }),
    );
}
