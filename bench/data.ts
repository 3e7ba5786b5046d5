// Data-loader throughput for the default DINO multi-crop (2 global 32 px + 6 local 16 px from 64x64
// Fashion-MNIST scenes, batch 64) with 0 (in-process), 1 and 2 worker threads, against what the
// default pretraining step consumes. Last line: one JSON object.
//
// Usage: node dist/bench/data.js [--step-seconds S] [--batches N] [--warmup N]
//        node dist/bench/data.js --photos [DIR] ...   DINO's recipe on photos vs torchvision (data_photos.ts)
// step seconds: --step-seconds, else $LOCUS_STEP_SECONDS, else bench/step-time.json
// {"dino_default_step_s": x}, else 1.0 (said so in the output).
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Loader } from '../src/data/loader.js';
import { multiCrop } from '../src/data/views.js';

if (process.argv.includes('--photos')) {
  await (await import('./data_photos.js')).photosBench();
  process.exit(0);
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function stepSeconds(): { s: number; source: string } {
  const flag = arg('step-seconds');
  if (flag !== undefined) return { s: Number(flag), source: '--step-seconds' };
  const env = process.env.LOCUS_STEP_SECONDS;
  if (env) return { s: Number(env), source: 'LOCUS_STEP_SECONDS' };
  // bench/step-time.json at the repository root (this file runs as dist/bench/data.js)
  const path = fileURLToPath(new URL('../../bench/step-time.json', import.meta.url));
  if (existsSync(path)) {
    const x = (JSON.parse(readFileSync(path, 'utf8')) as { dino_default_step_s?: number }).dino_default_step_s;
    if (typeof x === 'number' && x > 0) return { s: x, source: path };
  }
  return { s: 1.0, source: 'default 1.0 s (no --step-seconds, LOCUS_STEP_SECONDS or bench/step-time.json)' };
}

const BATCH = 64;
const recipe = multiCrop();
const viewsPerSample = recipe.globalCount + recipe.localCount;
const timed = Number(arg('batches') ?? 60);
const warmup = Number(arg('warmup') ?? 6);

/** Views per wall second, and per CPU second of the whole process (all threads: load-independent). */
async function throughput(workers: number): Promise<{ wall: number; cpu: number }> {
  const loader = new Loader({
    dataset: { kind: 'scenes', split: 'train', length: BATCH * (warmup + timed), size: 64 },
    views: recipe,
    batchSize: BATCH,
    seed: 0,
    workers,
  });
  try {
    let k = 0;
    let t0 = 0;
    let c0 = process.cpuUsage();
    for await (const b of loader.epoch(0)) {
      if (b.indices.length !== BATCH) throw new Error('short batch');
      if (++k === warmup) {
        t0 = performance.now();
        c0 = process.cpuUsage();
      }
    }
    const s = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    const views = (k - warmup) * BATCH * viewsPerSample;
    return { wall: views / s, cpu: views / ((c.user + c.system) / 1e6) };
  } finally {
    await loader.close();
  }
}

const step = stepSeconds();
if (!(step.s > 0)) throw new Error(`step seconds must be > 0 (got ${step.s} from ${step.source})`);
console.log(
  `data bench: multi-crop 2x32 + 6x16 px from 64x64 scenes, batch ${BATCH}, ${warmup} warm-up + ${timed} timed batches`,
);
const [load1] = loadavg();
const r0 = await throughput(0);
console.log(`in-process (0 workers): ${r0.wall.toFixed(0)} views/s`);
const r1 = await throughput(1);
console.log(`1 worker:  ${r1.wall.toFixed(0)} views/s`);
const r2 = await throughput(2);
console.log(`2 workers: ${r2.wall.toFixed(0)} views/s (${r2.cpu.toFixed(0)} views per CPU-second)`);
const [v0, v1, v2] = [r0.wall, r1.wall, r2.wall];
const cores = availableParallelism();
if ((load1 as number) > cores / 2) {
  console.log(
    `note: 1-min load average was ${(load1 as number).toFixed(1)} on ${cores} cores: other processes share the CPU`,
  );
}
const consumed = (BATCH * viewsPerSample) / step.s;
console.log(`step time ${step.s} s (${step.source}) → the step consumes ${consumed.toFixed(0)} views/s`);
const ratio = v2 / consumed;
console.log(`consumption ratio (2 workers / consumed): ${ratio.toFixed(2)} (target ≥ 3)`);
console.log(
  JSON.stringify({
    views_per_s_0w: Math.round(v0),
    views_per_s_1w: Math.round(v1),
    views_per_s_2w: Math.round(v2),
    consumed_views_per_s: Math.round(consumed),
    consumption_ratio: Number(ratio.toFixed(3)),
    step_seconds: step.s,
    step_seconds_source: step.source,
    batch_size: BATCH,
    views_per_step: BATCH * viewsPerSample,
    views_per_cpu_s_2w: Math.round(r2.cpu),
    load_avg_1m: Number((load1 as number).toFixed(2)),
    cores,
  }),
);
