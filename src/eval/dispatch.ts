// `locus eval KIND`: what can be evaluated (a checkpoint's eval backbone, or a random init of a config)
// and the registry of eval kinds. Add a kind with one entry in EVALS.
import { createHash } from 'node:crypto';
import type { VisionTransformer } from '../nn/index.js';
import { disposeCheckpoint, loadCheckpoint } from '../train/checkpoint.js';
import { type Config, resolveConfig } from '../train/config.js';
import { buildMethod } from '../train/loop.js';
import { quickKnn } from './knn_quick.js';

/** A frozen backbone and where it came from (fits src/eval/features.ts EvalBackbone). */
export interface EvalTarget {
  vit: VisionTransformer;
  hash: string; // checkpoint SHA-256, or 'random-<seed>'
  checkpoint?: string;
  method: string;
  step: number | null; // training steps behind it (null: random init)
  config: Config;
}

export interface EvalKind {
  summary: string;
  /** Runs the probe; the result is a JSON object (written to <run>/evals/<kind>.json). */
  run(t: EvalTarget, c: Config): Promise<Record<string, unknown>>;
  /** One human line for the terminal. */
  describe(r: Record<string, unknown>): string;
}

export const EVALS: Record<string, EvalKind> = {
  knn: {
    summary: "quick weighted k-NN (k=20, T=0.07) of the eval backbone's CLS on Fashion-MNIST items",
    run: async (t, c) => ({ ...quickKnn(t.vit, c.eval.knn) }),
    describe: (r) =>
      `k-NN top-1 ${r.top1}% (top-5 ${r.top5}%), k=${r.k}, ${r.train_items} train / ${r.test_items} test items`,
  },
};

export function evalKinds(): string[] {
  return Object.keys(EVALS);
}

/** Loads a checkpoint (file or run directory) into its method and returns the method's eval backbone. */
export function loadEvalTarget(path: string, overrides?: (c: Config) => Config): EvalTarget {
  const ck = loadCheckpoint(path);
  try {
    const config = overrides ? overrides(ck.config) : ck.config;
    const method = buildMethod(ck.config);
    method.student.loadStateDict(ck.student);
    if (method.teacher) method.teacher.loadStateDict(ck.teacher);
    const vit = method.evalBackbone();
    return { vit, hash: ck.sha256, checkpoint: ck.path, method: ck.info.method, step: ck.info.step, config };
  } finally {
    disposeCheckpoint(ck);
  }
}

/** A randomly initialised eval backbone of a config (the baseline a trained one must beat). */
export function randomEvalTarget(config: Config): EvalTarget {
  const c = resolveConfig(config);
  const method = buildMethod(c);
  const hash = `random-${c.seed}-${createHash('sha256').update(JSON.stringify(c.model)).digest('hex').slice(0, 12)}`;
  return { vit: method.evalBackbone(), hash, method: c.method, step: null, config: c };
}

/** Runs an eval kind and returns the result with its provenance (every result records its inputs). */
export async function runEval(kind: string, t: EvalTarget): Promise<Record<string, unknown>> {
  const k = EVALS[kind];
  if (!k) throw new Error(`unknown eval kind '${kind}' (allowed: ${evalKinds().join(', ')})`);
  const r = await k.run(t, t.config);
  return {
    ...r,
    kind,
    method: t.method,
    checkpoint: t.checkpoint ?? null,
    checkpoint_sha256: t.hash,
    step: t.step,
    seed: t.config.seed,
    eval_config: t.config.eval,
  };
}
