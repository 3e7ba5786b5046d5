// `locus eval KIND --checkpoint PATH`: evaluate a checkpoint's eval backbone (or a random init).
import type { Command } from 'commander';
import { EVALS, type EvalTarget, evalKinds, loadEvalTarget, randomEvalTarget, runEval } from '../eval/dispatch.js';
import { checkpointConfig, resolveCheckpoint, runDirOf } from '../train/checkpoint.js';
import { type Config, loadConfig, parseSet, resolveConfig, setPath } from '../train/config.js';
import { holdsRun, writeEval } from '../train/run.js';
import { action, collect, printJson } from './common.js';

interface EvalFlags {
  checkpoint?: string;
  randomInit?: boolean;
  config?: string;
  set: string[];
  json?: boolean;
  save: boolean;
}

function withSets(c: Config, sets: string[]): Config {
  let raw = c as Record<string, unknown>;
  for (const s of sets) {
    const [path, value] = parseSet(s);
    raw = setPath(raw, path, value);
  }
  return resolveConfig(raw);
}

/** Evaluates and, when the checkpoint belongs to a run directory, saves <run>/evals/<name>.json. */
export async function evaluate(
  kind: string,
  t: EvalTarget,
  save: boolean,
  name = kind,
): Promise<{ result: Record<string, unknown>; saved: string | null }> {
  const result = await runEval(kind, t);
  let saved: string | null = null;
  if (save && t.checkpoint) {
    const run = runDirOf(t.checkpoint);
    if (holdsRun(run)) saved = writeEval(run, name, result);
  }
  return { result, saved };
}

export function registerEval(program: Command): void {
  const kinds = evalKinds()
    .map((k) => `  ${k.padEnd(8)} ${EVALS[k]?.summary}`)
    .join('\n');
  program
    .command('eval')
    .description('evaluate a pretrained checkpoint (frozen features)')
    .argument('<kind>', `what to evaluate (${evalKinds().join(', ')})`)
    .option('--checkpoint <path>', 'checkpoint file, or a run directory (its latest checkpoint)')
    .option(
      '--random-init',
      "evaluate a randomly initialised backbone instead (the checkpoint's or the config's architecture)",
    )
    .option('--config <file>', 'config for --random-init without --checkpoint')
    .option('--set <key=value>', 'override a config field, e.g. eval.knn.k=10 (repeatable)', collect, [])
    .option('--no-save', "don't write <run>/evals/<kind>.json")
    .option('--json', 'print the result as one JSON object on the last line')
    .addHelpText(
      'after',
      `
Kinds:
${kinds}

Examples:
  $ locus eval knn --checkpoint runs/dino-20250101-120000
  $ locus eval knn --checkpoint runs/x/checkpoints/step-000600.safetensors --json
  $ locus eval knn --checkpoint runs/x --random-init      # the same architecture, untrained
  $ locus eval knn --checkpoint runs/x --set eval.knn.testItems=10000`,
    )
    .action(
      action(async (kind: string, f: EvalFlags) => {
        if (!EVALS[kind]) throw new Error(`unknown eval kind '${kind}' (allowed: ${evalKinds().join(', ')})`);
        if (!f.checkpoint && !f.randomInit) throw new Error('eval needs --checkpoint PATH (or --random-init)');
        let result: Record<string, unknown>;
        let saved: string | null = null;
        if (f.randomInit) {
          const ck = f.checkpoint ? resolveCheckpoint(f.checkpoint) : null;
          const base = ck ? checkpointConfig(ck) : loadConfig({ file: f.config });
          ({ result } = await evaluate(kind, randomEvalTarget(withSets(base, f.set)), false));
          if (f.save && ck && holdsRun(runDirOf(ck))) saved = writeEval(runDirOf(ck), `${kind}_random_init`, result);
        } else {
          const t = loadEvalTarget(f.checkpoint as string, (c) => withSets(c, f.set));
          ({ result, saved } = await evaluate(kind, t, f.save));
        }
        process.stdout.write(`${kind}: ${EVALS[kind]?.describe(result)}\n`);
        if (saved) process.stdout.write(`saved ${saved}\n`);
        if (f.json) printJson(result);
        return 0;
      }),
    );
}
