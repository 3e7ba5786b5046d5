// `locus bench data --photos [DIR]`: DINO's recipe on real photos (2x224 + 8x96 crops, batch 64,
// 2 workers each), Locus's loader against torchvision's DataLoader with PIL (bench/data_torchvision.py,
// run with /usr/bin/python3; its transforms follow facebookresearch/dino's DataAugmentationDINO).
// Without DIR, 400 JPEGs at 500x375 / 375x500 are made from Debian python3-skimage's sample photos.
// Rounds alternate Locus and torchvision; each side's best round is reported. Last line: one JSON object.
//
// Flags: --photos [DIR] --batches N (timed, default 20) --warmup N (default 3) --workers W (default 2)
//        --rounds R (default 1)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Loader } from '../src/data/loader.js';
import { multiCrop } from '../src/data/views.js';

const PY = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../bench/data_torchvision.py', import.meta.url));
const BATCH = 64;

function flag(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!(Number.isInteger(v) && v >= 0))
    throw new Error(`--${name} must be an integer ≥ 0 (got '${process.argv[i + 1]}')`);
  return v;
}

function photosDir(): string {
  const i = process.argv.indexOf('--photos');
  const given = process.argv[i + 1];
  if (given && !given.startsWith('--')) {
    if (!existsSync(given)) throw new Error(`--photos ${given}: no such directory`);
    return given;
  }
  const dir = join(tmpdir(), 'locus-bench-photos');
  if (existsSync(dir) && readdirSync(dir).filter((f) => f.endsWith('.jpg')).length >= 400) return dir;
  const r = spawnSync(PY, [SCRIPT, 'make', dir, '400'], { encoding: 'utf8' });
  if (r.status !== 0)
    throw new Error(
      `could not make the photos with ${PY} (needs Debian python3-skimage, python3-pil): ${r.stderr.trim()}`,
    );
  return dir;
}

const recipe = multiCrop({
  globalSize: 224,
  globalScale: [0.4, 1],
  localCount: 8,
  localSize: 96,
  localScale: [0.05, 0.4],
});

interface Side {
  ips: number; // images per wall second (timed batches)
  cpuMs: number; // CPU ms per image over the whole run, warm-up included (all threads / processes)
}

async function locus(root: string, batches: number, warmup: number, workers: number): Promise<Side> {
  const c0 = process.cpuUsage();
  const loader = new Loader({ dataset: { kind: 'folder', root }, views: recipe, batchSize: BATCH, seed: 0, workers });
  try {
    let k = 0;
    let t0 = performance.now();
    for (let epoch = 0; k < warmup + batches; epoch++) {
      for await (const b of loader.epoch(epoch)) {
        if (b.views.length !== 10 || b.views[0]?.shape[2] !== 224 || b.views[9]?.shape[2] !== 96)
          throw new Error('unexpected batch layout');
        if (++k === warmup) t0 = performance.now();
        if (k === warmup + batches) break;
      }
    }
    const ips = (batches * BATCH) / ((performance.now() - t0) / 1000);
    const c = process.cpuUsage(c0);
    return { ips, cpuMs: (c.user + c.system) / 1000 / ((warmup + batches) * BATCH) };
  } finally {
    await loader.close();
  }
}

function torchvision(root: string, batches: number, warmup: number, workers: number): Side {
  const args = [SCRIPT, 'bench', root, '--batches', `${batches}`, '--warmup', `${warmup}`, '--workers', `${workers}`];
  const r = spawnSync(PY, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`torchvision side failed (needs Debian python3-torchvision): ${r.stderr.trim()}`);
  const last = r.stdout.trim().split('\n').at(-1) as string;
  const j = JSON.parse(last) as { torchvision_images_per_s: number; torchvision_cpu_ms_per_image: number };
  return { ips: j.torchvision_images_per_s, cpuMs: j.torchvision_cpu_ms_per_image };
}

export async function photosBench(): Promise<void> {
  const batches = flag('batches', 20);
  const warmup = flag('warmup', 3);
  const workers = flag('workers', 2);
  const rounds = Math.max(1, flag('rounds', 1));
  const root = photosDir();
  console.log(
    `data bench (photos): DINO multi-crop 2x224 + 8x96 from ${root}, batch ${BATCH}, ${workers} workers, ${warmup} warm-up + ${batches} timed batches, ${rounds} round(s)`,
  );
  const [load1] = loadavg();
  let best = { locus: 0, tv: 0, locusCpu: Number.POSITIVE_INFINITY, tvCpu: Number.POSITIVE_INFINITY };
  for (let r = 0; r < rounds; r++) {
    const l = await locus(root, batches, warmup, workers);
    console.log(`round ${r + 1}: locus ${l.ips.toFixed(1)} images/s, ${l.cpuMs.toFixed(1)} CPU ms per image`);
    const t = torchvision(root, batches, warmup, workers);
    console.log(`round ${r + 1}: torchvision ${t.ips.toFixed(1)} images/s, ${t.cpuMs.toFixed(1)} CPU ms per image`);
    best = {
      locus: Math.max(best.locus, l.ips),
      tv: Math.max(best.tv, t.ips),
      locusCpu: Math.min(best.locusCpu, l.cpuMs),
      tvCpu: Math.min(best.tvCpu, t.cpuMs),
    };
  }
  const cores = availableParallelism();
  if ((load1 as number) > cores / 2)
    console.log(`note: 1-min load average was ${(load1 as number).toFixed(1)} on ${cores} cores: not a quiet machine`);
  const ratio = best.locus / best.tv;
  console.log(`ratio locus / torchvision: ${ratio.toFixed(2)} (target ≥ 1.5)`);
  console.log(
    JSON.stringify({
      locus_images_per_s: Number(best.locus.toFixed(2)),
      torchvision_images_per_s: Number(best.tv.toFixed(2)),
      ratio: Number(ratio.toFixed(3)),
      // load-robust companion figure: torchvision CPU time per image / Locus's (all threads and processes)
      locus_cpu_ms_per_image: Number(best.locusCpu.toFixed(2)),
      torchvision_cpu_ms_per_image: Number(best.tvCpu.toFixed(2)),
      cpu_ratio: Number((best.tvCpu / best.locusCpu).toFixed(3)),
      photos: root,
      batch_size: BATCH,
      workers,
      batches,
      warmup,
      rounds,
      load_avg_1m: Number((load1 as number).toFixed(2)),
      cores,
    }),
  );
}
