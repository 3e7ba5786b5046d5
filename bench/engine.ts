// Engine benchmark (issue 2): one training step of the ViT-Tiny-like model of research/engine-bench.md in
// Locus and in PyTorch (Debian's /usr/bin/python3, bench/engine.py), from the same weights and batch,
// alternated in one run (A B B A A B ...) to average out this VM's ±20% run-to-run noise.
//
// Workload: 32x32x3 input, patch 4 (DINO's stride-4 conv), dim 192, depth 6, 3 heads, MLP 768, pre-norm,
// exact GELU, CLS token, learned position embedding; head Linear(192→384)–GELU–Linear(384→256);
// cross-entropy of softmax(student/0.1) against a fixed random target distribution; fixed random batch
// of 64; AdamW lr 1e-4, weight decay 0.04; float32; median of 10 steps after 3 warm-up steps.
// Each engine runs in its own process (Locus with MALLOC_ARENA_MAX=1); peak RSS is that process's maxrss.
//
// `--model vit_small_patch16_224` (issue 14): ViT-S/16 at 224 px (dim 384, depth 12, 6 heads, MLP 1536)
// with the head Linear(384→768)–GELU–Linear(768→256), same loss and optimiser; `--mode eval` times the
// no-grad forward of the backbone instead (`torch.no_grad()` on the PyTorch side) and reports the mean
// of the CLS features' first 4 channels as the check value. `--precision bf16|fp16` runs both sides under autocast
// (fp16 with a loss scaler); `--device cuda` runs both on the GPU (LOCUS_TORCH_PYTHON: a CUDA PyTorch).
//
// Usage: node dist/bench/engine.js [--model tiny|vit_small_patch16_224] [--mode train|eval] [--batch N]
//   [--precision fp32|bf16|fp16] [--device cpu|cuda] [--rounds R] [--threads 2] [--steps S] [--warmup W]
// Last line: one JSON object (ratio = PyTorch step / Locus step: ≥ 1 means Locus is faster; rss_ratio =
// Locus peak RSS / PyTorch's).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PYTHON = process.env.LOCUS_TORCH_PYTHON ?? '/usr/bin/python3';
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}
function sarg<T extends string>(name: string, allowed: readonly T[], dflt: T): T {
  const i = process.argv.indexOf(`--${name}`);
  const v = (i >= 0 ? process.argv[i + 1] : dflt) as T;
  if (!allowed.includes(v)) {
    process.stderr.write(`bench engine: --${name} '${v}' is not allowed (allowed: ${allowed.join(', ')})\n`);
    process.exit(2);
  }
  return v;
}
// The benchmark models: the small one of research/engine-bench.md, and timm's vit_small_patch16_224.
const MODELS = {
  tiny: { img: 32, patch: 4, dim: 192, depth: 6, heads: 3, batch: 64, rounds: 3, steps: 10, warmup: 3 },
  vit_small_patch16_224: {
    img: 224,
    patch: 16,
    dim: 384,
    depth: 12,
    heads: 6,
    batch: 8,
    rounds: 2,
    steps: 5,
    warmup: 2,
  },
} as const;
type ModelName = keyof typeof MODELS;
const MODEL = sarg('model', Object.keys(MODELS) as ModelName[], 'tiny');
const MODE = sarg('mode', ['train', 'eval'] as const, 'train');
const PRECISION = sarg('precision', ['fp32', 'bf16', 'fp16'] as const, 'fp32');
const DEVICE = sarg('device', ['cpu', 'cuda'] as const, 'cpu');
const M = MODELS[MODEL];
const EVAL_BIG = MODE === 'eval' && MODEL !== 'tiny'; // a ViT-S forward at batch 64 takes ~10 s on 2 cores
const BATCH = arg('batch', MODE === 'eval' ? 64 : M.batch);
const ROUNDS = arg('rounds', M.rounds);
const THREADS = arg('threads', 2);
const STEPS = arg('steps', EVAL_BIG ? 2 : M.steps);
const WARMUP = arg('warmup', EVAL_BIG ? 1 : M.warmup);
const HEAD = [M.dim, 2 * M.dim, 256] as const; // tiny: 192→384→256, as before

interface Run {
  engine: string;
  threads: number;
  step_s: number;
  times: number[];
  losses: number[];
  peak_rss_mb: number;
  cpu_s: number;
  total_cpu_s: number;
  loop_s: number;
  params: number;
  matmul_gflops: number;
  others_cores?: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

// ---- the Locus worker (a child process of the driver)

async function worker(init: string): Promise<void> {
  const E = await import('../src/engine/index.js');
  const { loadTensors } = await import('../src/engine/io.js');
  const { AdamW, Mlp, Module, createVit } = await import('../src/nn/index.js');
  E.setNumThreads(THREADS);

  const vit = () => createVit({ imgSize: M.img, patchSize: M.patch, dim: M.dim, depth: M.depth, heads: M.heads });
  class Net extends Module {
    readonly backbone = this.child('backbone', vit());
    readonly head = this.child('head', new Mlp(HEAD[0], HEAD[1], HEAD[2]));
    forward(x: InstanceType<typeof E.Tensor>) {
      return this.head.forward(this.backbone.forward(x).cls);
    }
  }
  const net = new Net();
  const file = loadTensors(init);
  net.loadStateDict(new Map([...file].filter(([k]) => k.startsWith('w.')).map(([k, v]) => [k.slice(2), v])));
  for (const [k, v] of file) if (k.startsWith('w.')) v.dispose();
  let x = file.get('x')!;
  let target = file.get('target')!;
  if (DEVICE === 'cuda') {
    net.to(undefined, 'cuda');
    [x, target] = [x.to(undefined, 'cuda'), target.to(undefined, 'cuda')];
  }
  const sync = () => DEVICE === 'cuda' && E.cudaSynchronize();
  const opt =
    MODE === 'train'
      ? new AdamW([{ params: net.parameters(), lr: 1e-4, weightDecay: 0.04 }], { beta1: 0.9, beta2: 0.999, eps: 1e-8 })
      : null;
  const scaler = PRECISION === 'fp16' ? new E.GradScaler() : null;
  const params = net.parameters();
  if (MODE === 'eval') net.eval();

  const times: number[] = [];
  const losses: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < WARMUP + STEPS; i++) {
    sync();
    const t0 = performance.now();
    if (opt) {
      opt.zeroGrad();
      // the forward pass in a scope: every intermediate handle is freed before backward (the autograd
      // graph keeps what backward needs)
      const loss = E.tidy(() =>
        E.autocast(PRECISION, DEVICE, () => E.crossEntropy(net.forward(x).float().div(0.1), target)),
      );
      if (scaler) {
        const scaled = scaler.scaleLoss(loss);
        scaled.backward();
        scaled.dispose();
        const inf = scaler.unscale(params);
        if (!inf) opt.step();
        scaler.update(inf);
      } else {
        loss.backward();
        opt.step();
      }
      losses.push(loss.item());
      loss.dispose();
    } else {
      // eval: the backbone's no-grad forward (block by block, so only one block's activations live)
      const check = E.noGrad(() =>
        E.tidy(() => E.autocast(PRECISION, DEVICE, () => net.backbone.forward(x).cls.float().narrow(1, 0, 4).mean())),
      );
      losses.push(check.item());
      check.dispose();
    }
    sync();
    times.push((performance.now() - t0) / 1000);
  }
  const cpu = process.cpuUsage(cpu0);
  const peak = process.resourceUsage().maxRSS / 1024; // KiB → MiB
  // matmul 1024³, median of 5 (after the peak-RSS reading)
  const a = E.randn([1024, 1024]);
  const b = E.randn([1024, 1024]);
  E.tidy(() => a.mm(b));
  const mt: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    E.tidy(() => a.mm(b));
    mt.push((performance.now() - t0) / 1000);
  }
  const run: Run = {
    engine: 'locus',
    threads: E.getNumThreads(),
    step_s: median(times.slice(WARMUP)),
    times,
    losses,
    peak_rss_mb: peak,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    loop_s: times.reduce((s, t) => s + t, 0),
    params: MODE === 'eval' ? net.backbone.numParameters() : net.numParameters(),
    matmul_gflops: (2 * 1024 ** 3) / median(mt) / 1e9,
    total_cpu_s: 0,
  };
  const all = process.cpuUsage();
  run.total_cpu_s = (all.user + all.system) / 1e6;
  console.log(JSON.stringify(run));
}

// ---- the driver

/** Busy CPU time of the whole machine, in seconds (from /proc/stat), to estimate other processes' load. */
function machineBusy(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return (user + nice + system + irq + softirq + (steal ?? 0)) / 100; // USER_HZ = 100
  } catch {
    return Number.NaN;
  }
}

function runChild(engine: 'locus' | 'pytorch', init: string): Run {
  const common = ['--threads', String(THREADS), '--steps', String(STEPS), '--warmup', String(WARMUP)];
  common.push('--model', MODEL, '--mode', MODE, '--batch', String(BATCH), '--precision', PRECISION, '--device', DEVICE);
  const [cmd, args, env] =
    engine === 'locus'
      ? [
          process.execPath,
          [fileURLToPath(import.meta.url), '--worker', init, ...common],
          { ...process.env, MALLOC_ARENA_MAX: '1', LOCUS_THREADS: String(THREADS), OMP_NUM_THREADS: String(THREADS) },
        ]
      : [
          PYTHON,
          [join(ROOT, 'bench/engine.py'), '--init', init, ...common],
          { ...process.env, OMP_NUM_THREADS: String(THREADS) },
        ];
  const busy0 = machineBusy();
  const w0 = performance.now();
  const r = spawnSync(cmd, args as string[], { env, encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 24 });
  const wall = (performance.now() - w0) / 1000;
  const busy = machineBusy() - busy0;
  if (r.status !== 0)
    throw new Error(`${engine} run failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message}`);
  const run = JSON.parse(r.stdout.trim().split('\n').pop()!) as Run;
  // CPU that other processes used while this run lasted, in cores (noise control: should be ~0)
  run.others_cores = Math.max(0, (busy - run.total_cpu_s) / wall);
  return run;
}

async function driver(): Promise<void> {
  const torchOk = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
  if (!torchOk) throw new Error(`${PYTHON} cannot import torch: install Debian's python3-torch to run the comparison`);
  const E = await import('../src/engine/index.js');
  const { saveTensors } = await import('../src/engine/io.js');
  const { Mlp, createVit } = await import('../src/nn/index.js');

  // Shared starting point: weights (timm/DINO init, seed 0), a fixed random batch and fixed random targets.
  const dir = mkdtempSync(join(tmpdir(), 'locus-bench-'));
  const init = join(dir, 'init.safetensors');
  E.manualSeed(0);
  const backbone = createVit({ imgSize: M.img, patchSize: M.patch, dim: M.dim, depth: M.depth, heads: M.heads });
  const head = new Mlp(HEAD[0], HEAD[1], HEAD[2]);
  const x = E.randn([BATCH, 3, M.img, M.img]);
  const target = E.randn([BATCH, 256]).softmax(-1);
  const tensors = new Map<string, InstanceType<typeof E.Tensor>>([
    ['x', x],
    ['target', target],
  ]);
  for (const [k, v] of backbone.stateDict()) tensors.set(`w.backbone.${k}`, v);
  for (const [k, v] of head.stateDict()) tensors.set(`w.head.${k}`, v);
  saveTensors(init, tensors);
  const params = backbone.numParameters() + (MODE === 'train' ? head.numParameters() : 0);
  backbone.dispose();
  head.dispose();
  x.dispose();
  target.dispose();
  const info = E.engineInfo();

  console.log(
    `engine benchmark: ${MODEL} (${M.img}x${M.img}/${M.patch}, dim ${M.dim}, depth ${M.depth}, ${M.heads} heads), ${MODE === 'train' ? `head ${HEAD.join('→')}, fwd+bwd+AdamW` : 'no-grad forward'}, batch ${BATCH}, ${PRECISION}, ${DEVICE}`,
  );
  console.log(
    `${params.toLocaleString('en-US')} parameters; ${THREADS} threads; median of ${STEPS} steps after ${WARMUP} warm-up; ${ROUNDS} rounds A/B alternated`,
  );
  const blas = existsSync(info.blasLibrary) ? realpathSync(info.blasLibrary) : info.blasLibrary;
  console.log(`libtorch ${info.torchVersion}, BLAS ${blas}`);
  const runs: Run[] = [];
  try {
    for (let r = 0; r < ROUNDS; r++) {
      const order: ('locus' | 'pytorch')[] = r % 2 === 0 ? ['locus', 'pytorch'] : ['pytorch', 'locus'];
      for (const eng of order) {
        const run = runChild(eng, init);
        runs.push(run);
        console.log(
          `round ${r + 1} ${eng.padEnd(7)} step ${run.step_s.toFixed(3)} s (min ${Math.min(...run.times.slice(WARMUP)).toFixed(3)}, max ${Math.max(...run.times.slice(WARMUP)).toFixed(3)})  peak RSS ${run.peak_rss_mb.toFixed(0)} MB  matmul ${run.matmul_gflops.toFixed(1)} GFLOP/s  CPU ${(run.cpu_s / run.times.length).toFixed(3)} s/step  other load ${run.others_cores!.toFixed(2)} cores  loss@${run.losses.length} ${run.losses.at(-1)!.toFixed(6)}`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // Noise control (as in research/engine-bench.md): runs during which other processes used more than
  // 0.1 core are left out of the medians, as long as each engine keeps at least one clean run.
  const CLEAN = 0.1;
  const of = (e: string) => runs.filter((r) => r.engine === e);
  const clean = (rs: Run[]) => rs.filter((r) => (r.others_cores ?? 0) <= CLEAN);
  const useClean = clean(of('locus')).length > 0 && clean(of('pytorch')).length > 0;
  const L = useClean ? clean(of('locus')) : of('locus');
  const T = useClean ? clean(of('pytorch')) : of('pytorch');
  console.log(
    useClean
      ? `medians over the ${L.length} + ${T.length} runs with other load ≤ ${CLEAN} core (of ${runs.length})`
      : `WARNING: every run had other load > ${CLEAN} core (this VM is shared): timings are not reliable`,
  );
  const locusStep = median(L.map((r) => r.step_s));
  const torchStep = median(T.map((r) => r.step_s));
  const locusRss = Math.max(...L.map((r) => r.peak_rss_mb));
  const torchRss = Math.max(...T.map((r) => r.peak_rss_mb));
  const lossL = L[0].losses.at(-1)!;
  const lossT = T[0].losses.at(-1)!;
  const lossRel = Math.abs(lossL - lossT) / Math.abs(lossT);
  const range = (rs: Run[]) =>
    `${Math.min(...rs.map((r) => r.step_s)).toFixed(3)}–${Math.max(...rs.map((r) => r.step_s)).toFixed(3)}`;
  console.log(
    `Locus   median step ${locusStep.toFixed(3)} s (${range(L)}), peak RSS ${locusRss.toFixed(0)} MB, matmul ${median(L.map((r) => r.matmul_gflops)).toFixed(1)} GFLOP/s`,
  );
  console.log(
    `PyTorch median step ${torchStep.toFixed(3)} s (${range(T)}), peak RSS ${torchRss.toFixed(0)} MB, matmul ${median(T.map((r) => r.matmul_gflops)).toFixed(1)} GFLOP/s`,
  );
  console.log(
    `ratio PyTorch/Locus ${(torchStep / locusStep).toFixed(3)} (issue 14: ≥ 1.10 small model, ≥ 1.0 ViT-S train, ≥ 0.95 eval); RSS Locus/PyTorch ${(locusRss / torchRss).toFixed(3)}`,
  );
  console.log(
    `same computation: ${MODE === 'train' ? 'loss' : 'mean of CLS[:, :4]'} after ${L[0].losses.length} steps ${lossL} (Locus) vs ${lossT} (PyTorch), rel. diff ${lossRel.toExponential(2)}`,
  );
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  console.log(
    JSON.stringify({
      model: MODEL,
      mode: MODE,
      batch: BATCH,
      precision: PRECISION,
      device: DEVICE,
      ratio: r3(torchStep / locusStep),
      // train: the loss after the last step; eval: the mean of the CLS features' first 4 channels
      locus_loss: lossL,
      pytorch_loss: lossT,
      locus_losses: L[0].losses,
      pytorch_losses: T[0].losses,
      locus_step_s: r3(locusStep),
      torch_step_s: r3(torchStep),
      locus_peak_rss_mb: Math.round(locusRss),
      torch_peak_rss_mb: Math.round(torchRss),
      rss_ratio: r3(locusRss / torchRss),
      // peak RSS above is the largest over the runs; the median run's peak, for scale
      locus_peak_rss_median_mb: Math.round(median(L.map((r) => r.peak_rss_mb))),
      torch_peak_rss_median_mb: Math.round(median(T.map((r) => r.peak_rss_mb))),
      threads: THREADS,
      // issue 2's names for the same figures
      locus_s: r3(locusStep),
      pytorch_s: r3(torchStep),
      locus_rss_mb: Math.round(locusRss),
      pytorch_rss_mb: Math.round(torchRss),
      locus_matmul_gflops: Math.round(median(L.map((r) => r.matmul_gflops)) * 10) / 10,
      torch_matmul_gflops: Math.round(median(T.map((r) => r.matmul_gflops)) * 10) / 10,
      locus_runs_s: L.map((r) => r3(r.step_s)),
      torch_runs_s: T.map((r) => r3(r.step_s)),
      // CPU seconds per step (all threads, warm-up included): less sensitive than wall time to other load
      locus_cpu_step_s: r3(median(L.map((r) => r.cpu_s / r.times.length))),
      torch_cpu_step_s: r3(median(T.map((r) => r.cpu_s / r.times.length))),
      others_cores_max: r3(Math.max(...[...L, ...T].map((r) => r.others_cores ?? 0))),
      clean_runs: useClean,
      runs_used: L.length + T.length,
      runs_total: runs.length,
      blas,
      loss_rel_diff: Number(lossRel.toExponential(2)),
      rounds: ROUNDS,
      steps: STEPS,
      warmup: WARMUP,
      params,
    }),
  );
}

const wi = process.argv.indexOf('--worker');
if (wi >= 0) await worker(process.argv[wi + 1]);
else await driver();
