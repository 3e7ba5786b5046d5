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
// Usage: node dist/bench/engine.js [--rounds 3] [--threads 2] [--steps 10] [--warmup 3]
// Last line: one JSON object (ratio = PyTorch step / Locus step: ≥ 1 means Locus is faster).
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
const ROUNDS = arg('rounds', 3);
const THREADS = arg('threads', 2);
const STEPS = arg('steps', 10);
const WARMUP = arg('warmup', 3);

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

  class Net extends Module {
    readonly backbone = this.child('backbone', createVit({ imgSize: 32, patchSize: 4, dim: 192, depth: 6, heads: 3 }));
    readonly head = this.child('head', new Mlp(192, 384, 256));
    forward(x: InstanceType<typeof E.Tensor>) {
      return this.head.forward(this.backbone.forward(x).cls);
    }
  }
  const net = new Net();
  const file = loadTensors(init);
  net.loadStateDict(new Map([...file].filter(([k]) => k.startsWith('w.')).map(([k, v]) => [k.slice(2), v])));
  const x = file.get('x')!;
  const target = file.get('target')!;
  for (const [k, v] of file) if (k.startsWith('w.')) v.dispose();
  const opt = new AdamW([{ params: net.parameters(), lr: 1e-4, weightDecay: 0.04 }], {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
  });

  const times: number[] = [];
  const losses: number[] = [];
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < WARMUP + STEPS; i++) {
    const t0 = performance.now();
    opt.zeroGrad();
    // the forward pass in a scope: every intermediate handle is freed before backward (the autograd
    // graph keeps what backward needs)
    const loss = E.tidy(() => E.crossEntropy(net.forward(x).div(0.1), target));
    loss.backward();
    opt.step();
    losses.push(loss.item());
    loss.dispose();
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
    params: net.numParameters(),
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
  const backbone = createVit({ imgSize: 32, patchSize: 4, dim: 192, depth: 6, heads: 3 });
  const head = new Mlp(192, 384, 256);
  const x = E.randn([64, 3, 32, 32]);
  const target = E.randn([64, 256]).softmax(-1);
  const tensors = new Map<string, InstanceType<typeof E.Tensor>>([
    ['x', x],
    ['target', target],
  ]);
  for (const [k, v] of backbone.stateDict()) tensors.set(`w.backbone.${k}`, v);
  for (const [k, v] of head.stateDict()) tensors.set(`w.head.${k}`, v);
  saveTensors(init, tensors);
  const params = backbone.numParameters() + head.numParameters();
  backbone.dispose();
  head.dispose();
  const info = E.engineInfo();

  console.log(
    `engine benchmark: ViT-Tiny-like 32x32/4, dim 192, depth 6, 3 heads, head 192→384→256, batch 64, AdamW, float32`,
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
    `ratio PyTorch/Locus ${(torchStep / locusStep).toFixed(3)} (target ≥ 0.95); RSS Locus/PyTorch ${(locusRss / torchRss).toFixed(3)} (target ≤ 1.3)`,
  );
  console.log(
    `same computation: loss after ${L[0].losses.length} steps ${lossL} (Locus) vs ${lossT} (PyTorch), rel. diff ${lossRel.toExponential(2)}`,
  );
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  console.log(
    JSON.stringify({
      ratio: r3(torchStep / locusStep),
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
