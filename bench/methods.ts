// Method step-time benchmark (issue 5): each method on the default config (same model, batch and data)
// through `locus pretrain`, one after another; median wall and CPU seconds per step after warm-up,
// relative to DINO's. CPU seconds (this process, all threads) are the number to trust on a busy machine.
//
// Usage: node dist/bench/methods.js [--steps 12] [--warmup 3] [--methods dino,loca,...] [--set key=value ...]
// Last line: one JSON object.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { methodNames } from '../src/methods/index.js';
import { readMetrics } from '../src/train/run.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '3' },
    methods: { type: 'string' },
    set: { type: 'string', multiple: true, default: [] },
  },
});
const steps = Number(values.steps);
const warmup = Number(values.warmup);
const methods = values.methods ? values.methods.split(',') : methodNames();
if (!methods.includes('dino')) methods.unshift('dino');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const rows: { method: string; step_s: number; cpu_s: number; load_at_start: number }[] = [];
for (const method of methods) {
  const dir = mkdtempSync(join(tmpdir(), 'locus-methods-'));
  const args = ['bin/locus.js', 'pretrain', '--method', method, '--steps', String(steps), '--out', join(dir, 'run')];
  for (const s of ['train.progress="none"', `train.ckptEvery=${steps}`, ...(values.set as string[])])
    args.push('--set', s);
  const load = loadavg()[0] as number;
  const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${method} failed: ${r.stderr.trim().split('\n').at(-1)}`);
  const m = readMetrics(join(dir, 'run')).slice(warmup);
  rmSync(dir, { recursive: true, force: true });
  const row = {
    method,
    step_s: median(m.map((x) => x.step_s as number)),
    cpu_s: median(m.map((x) => x.cpu_s as number)),
    load_at_start: load,
  };
  rows.push(row);
  process.stderr.write(`[methods] ${method}: ${row.step_s.toFixed(2)} s/step, ${row.cpu_s.toFixed(2)} CPU-s/step\n`);
}
const dino = rows.find((r) => r.method === 'dino') as (typeof rows)[number];
const table = rows.map((r) => ({
  ...r,
  vs_dino_wall: r.step_s / dino.step_s,
  vs_dino_cpu: r.cpu_s / dino.cpu_s,
}));
process.stderr.write(
  `${['| method | s/step | CPU-s/step | × DINO (wall) | × DINO (CPU) |', '|---|---:|---:|---:|---:|', ...table.map((r) => `| ${r.method} | ${r.step_s.toFixed(2)} | ${r.cpu_s.toFixed(2)} | ${r.vs_dino_wall.toFixed(2)} | ${r.vs_dino_cpu.toFixed(2)} |`)].join('\n')}\n`,
);
process.stdout.write(`${JSON.stringify({ bench: 'methods', steps, warmup, rows: table })}\n`);
