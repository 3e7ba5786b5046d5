// DDP overhead benchmark (issue 7): the default DINO config trained with the same total batch by
// 1 process (all cores) and by N processes over c10d Gloo on loopback (cores split between them), both
// through `locus pretrain`. Reports the median step time of each, the overhead ratio, and the share of
// the N-process step spent in the gradient all-reduce (allreduce_s in metrics.jsonl).
//
// Usage: node dist/bench/ddp.js [--steps 20] [--batch 64] [--nproc 2] [--warmup 3] [--set key=value ...]
// Last line: one JSON object.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readMetrics } from '../src/train/run.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '20' },
    batch: { type: 'string', default: '64' },
    nproc: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '3' },
    set: { type: 'string', multiple: true, default: [] },
  },
});
const steps = Number(values.steps);
const batch = Number(values.batch);
const nproc = Number(values.nproc);
const warmup = Number(values.warmup);
const cores = availableParallelism();
if (batch % nproc !== 0) throw new Error(`--batch ${batch} must divide by --nproc ${nproc}`);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function run(procs: number): { step_s: number; allreduce_s: number; threads: number; loss: number } {
  const dir = mkdtempSync(join(tmpdir(), `locus-ddp-${procs}-`));
  const threads = Math.max(1, Math.floor(cores / procs));
  const args = [
    'bin/locus.js',
    'pretrain',
    '--steps',
    String(steps),
    '--out',
    join(dir, 'run'),
    '--nproc',
    String(procs),
  ];
  const sets = [
    `optim.batchSize=${batch / procs}`,
    `train.threads=${threads}`,
    'train.progress="none"',
    `train.ckptEvery=${steps}`,
    ...(values.set as string[]),
  ];
  for (const s of sets) args.push('--set', s);
  process.stderr.write(`[ddp] ${procs} process(es) × ${threads} thread(s), batch ${batch / procs} each\n`);
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pretrain --nproc ${procs} failed: ${r.stderr.trim().split('\n').at(-1)}`);
  const rows = readMetrics(join(dir, 'run')).slice(warmup);
  rmSync(dir, { recursive: true, force: true });
  return {
    step_s: median(rows.map((x) => x.step_s as number)),
    allreduce_s: median(rows.map((x) => (x.allreduce_s as number | undefined) ?? 0)),
    threads,
    loss: rows.at(-1)?.loss as number,
  };
}

const one = run(1);
const many = run(nproc);
const result = {
  bench: 'ddp',
  steps,
  warmup,
  total_batch: batch,
  cores,
  one_process: one,
  n_processes: { nproc, ...many },
  overhead: many.step_s / one.step_s, // > 1: N processes are slower than one on the same total batch
  allreduce_share: many.allreduce_s / many.step_s,
};
process.stderr.write(
  `[ddp] 1 process: ${one.step_s.toFixed(3)} s/step; ${nproc} processes: ${many.step_s.toFixed(3)} s/step ` +
    `(ratio ${result.overhead.toFixed(3)}), all-reduce ${(many.allreduce_s * 1000).toFixed(1)} ms/step ` +
    `= ${(100 * result.allreduce_share).toFixed(1)}% of the step\n`,
);
process.stdout.write(`${JSON.stringify(result)}\n`);
