// `locus eval KIND --checkpoint PATH`: one frozen-feature probe (src/eval) on a checkpoint's eval
// backbone, an exported backbone, or a random init of the same architecture.
import type { Command } from 'commander';
import { describeResult, EVAL_DEFAULTS, EVAL_KINDS, runDirFor, runEval, vitConfigOf } from '../eval/index.js';
import { checkpointConfig, resolveCheckpoint, runDirOf } from '../train/checkpoint.js';
import { loadConfig, parseSet, setPath } from '../train/config.js';
import { evalFileName } from '../train/evalfiles.js';
import { importBackbone, isForeignWeights } from '../train/import.js';
import { holdsRun, writeEval } from '../train/run.js';
import { action, collect, parseIntOption, printJson } from './common.js';

interface EvalFlags {
  checkpoint?: string;
  weights?: string;
  heads?: number;
  randomInit?: boolean;
  config?: string;
  seed?: string;
  backbone?: string;
  set: string[];
  json?: boolean;
  save: boolean;
}

const SUMMARY: Record<string, string> = {
  knn: 'weighted k-NN (DINO: k=20, T=0.07) on L2-normalised CLS features of Fashion-MNIST items',
  linear: 'linear classifier on frozen CLS features (lr/wd sweep on a validation split), Fashion-MNIST items',
  seg: 'linear segmentation probe on frozen patch tokens (mIoU, pixel accuracy, per-class IoU), scenes',
  nnseg: 'training-free patch nearest-neighbour label retrieval (Hummingbird-style), mIoU and per-class IoU, scenes',
  parts: 'part-aware protocol: part vs object retrieval, classification and segmentation on part-structured objects',
  location: "linear probe predicting each patch's grid position from its token",
};

/** `--set key=value` pairs as a nested options object (values parsed as JSON where they parse). */
export function probeOptions(sets: string[]): Record<string, unknown> {
  let o: Record<string, unknown> = {};
  for (const s of sets) {
    const [path, value] = parseSet(s);
    o = setPath(o, path, value);
  }
  return o;
}

export function registerEval(program: Command): void {
  const kinds = EVAL_KINDS.map((k) => `  ${k.padEnd(9)} ${SUMMARY[k]}`).join('\n');
  program
    .command('eval')
    .description('evaluate a pretrained checkpoint with a probe on frozen features')
    .argument('<kind>', `the probe (${EVAL_KINDS.join(', ')})`)
    .option('--checkpoint <path>', 'run checkpoint, run directory (its latest checkpoint), or exported backbone')
    .option('--weights <file>', 'an off-the-shelf ViT: timm/DINO/iBOT/DeiT/MAE state dict (.pth, .pt, .safetensors)')
    .option('--heads <n>', 'attention heads of --weights (default: its metadata, else dim/64)', parseIntOption(1))
    .option('--random-init', 'evaluate a randomly initialised backbone of the same architecture instead')
    .option('--config <file>', 'run config giving the architecture for --random-init without --checkpoint')
    .option(
      '--backbone <net>',
      "which network of a run: 'teacher' (EMA) or 'student' (default: the method's reference)",
    )
    .option('--seed <n>', 'probe seed (and the random init seed)', '0')
    .option('--set <key=value>', 'a probe option, e.g. train.length=500 or steps=200 (repeatable)', collect, [])
    .option('--no-save', "don't write <run>/evals/<kind>@<dataset>.json")
    .option('--json', 'print the result as one JSON object on the last line')
    .addHelpText(
      'after',
      `
Kinds:
${kinds}

Each probe's options and defaults (override with --set):
${EVAL_KINDS.map((k) => `  ${k.padEnd(9)} ${Object.keys(EVAL_DEFAULTS[k]).join(', ')}`).join('\n')}
  common    size, batchSize, cacheDir, outDir

Examples:
  $ locus eval knn --checkpoint runs/dino-20250101-120000
  $ locus eval seg --checkpoint runs/x/checkpoints/step-000300.safetensors --json
  $ locus eval parts --checkpoint runs/x --set train.length=200 --set seg.steps=100
  $ locus eval knn --checkpoint runs/x --random-init      # the same architecture, untrained
  $ locus eval linear --checkpoint exported/backbone.safetensors
  $ locus eval knn --weights dino_deitsmall16_pretrain.pth       # an off-the-shelf ViT (timm, DINO, iBOT, DeiT, MAE)
  $ locus eval seg --weights vit_small.safetensors --heads 6 --random-init   # its architecture, untrained`,
    )
    .action(
      action(async (kind: string, f: EvalFlags) => {
        if (!(EVAL_KINDS as readonly string[]).includes(kind))
          throw new Error(`unknown eval kind '${kind}' (allowed: ${EVAL_KINDS.join(', ')})`);
        if (f.weights && f.checkpoint) throw new Error('give --checkpoint or --weights, not both');
        // a foreign file given as --checkpoint is read as --weights (its architecture for --random-init too)
        if (f.checkpoint && isForeignWeights(f.checkpoint)) [f.weights, f.checkpoint] = [f.checkpoint, undefined];
        if (!f.checkpoint && !f.weights && !f.randomInit)
          throw new Error('eval needs --checkpoint PATH or --weights FILE (or --random-init)');
        const seed = Number(f.seed);
        if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed must be an integer ≥ 0 (got '${f.seed}')`);
        // with --weights, `--set model.heads=N` is --heads N (as for pretrain --init)
        const headsSet = f.weights ? f.set.find((x) => /^model\.heads=\d+$/.test(x)) : undefined;
        if (headsSet) f.heads ??= Number(headsSet.split('=')[1]);
        const sets = f.set.filter((x) => x !== headsSet);
        const options = { ...probeOptions(sets), seed, ...(f.save ? {} : { outDir: null }) };
        let result: Record<string, unknown>;
        let saved: string | null = null;
        if (f.weights) {
          const bb = importBackbone(f.weights, { heads: f.heads });
          try {
            result = await runEval(kind, {
              checkpoint: f.randomInit ? `random:${seed}` : bb,
              randomConfig: bb.vit.cfg,
              options: { outDir: null, ...options },
            });
          } finally {
            bb.dispose();
          }
        } else if (f.randomInit) {
          const ck = f.checkpoint ? resolveCheckpoint(f.checkpoint) : null;
          const config = ck ? checkpointConfig(ck) : loadConfig({ file: f.config });
          result = await runEval(kind, {
            checkpoint: `random:${seed}`,
            randomConfig: vitConfigOf(config),
            options: { ...options, outDir: null },
          });
          if (f.save && ck && holdsRun(runDirOf(ck))) saved = writeEval(runDirOf(ck), `${kind}_random_init`, result);
        } else {
          result = await runEval(kind, { checkpoint: f.checkpoint as string, options, backbone: f.backbone });
          const run = f.save ? runDirFor(f.checkpoint as string) : null;
          if (run) saved = `${run}/evals/${evalFileName(f.backbone ? `${kind}_${f.backbone}` : kind, result)}`;
        }
        process.stdout.write(`${kind}: ${describeResult(kind, result)}\n`);
        if (saved) process.stdout.write(`saved ${saved}\n`);
        if (f.json) printJson(result);
        return 0;
      }),
    );
}
