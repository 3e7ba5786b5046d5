// Memory discipline: 1,000 training steps of a small ViT (forward in a tidy scope, backward, clipping,
// AdamW, EMA teacher) hold RSS flat (step 1000 within 5% of step 100) and leak no tensor handles.
// The loop runs in a child process started with MALLOC_ARENA_MAX=1 (as in production) and --expose-gc: a
// full GC before each sample takes V8's young-generation sizing out of the figure, so what is left is
// native memory. One libtorch thread: the figure does not depend on it, and this shared 2-core VM's
// OpenMP spin-waits make 2-thread timings erratic under load.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  crossEntropy,
  emaUpdate,
  liveTensors,
  manualSeed,
  noGrad,
  randn,
  type Tensor,
  tidy,
} from '../src/engine/index.js';
import { AdamW, clipGradGlobal, createVit, decayGroups, Linear } from '../src/nn/index.js';

// MEM_STEPS (diagnostics only) runs a longer loop with a sample every 200 steps.
const STEPS = Number(process.env.MEM_STEPS ?? 1000);
const MARKS = process.env.MEM_STEPS
  ? Array.from({ length: 30 }, (_, i) => (i + 1) * 200)
  : [1, 100, 250, 500, 750, 1000];

interface Sample {
  step: number;
  rssMb: number;
  live: number;
  anonMb?: number;
  fileMb?: number;
  heapMb: number;
}

/** Anonymous (heap) and file-backed (code pages of libtorch and friends) parts of RSS, from /proc. */
function rssParts(): { anonMb?: number; fileMb?: number; heapMb: number } {
  const heapMb = process.memoryUsage().heapTotal / 2 ** 20;
  try {
    const st = readFileSync('/proc/self/status', 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(st)?.[1]) / 1024;
    return { anonMb: kb('RssAnon'), fileMb: kb('RssFile'), heapMb };
  } catch {
    return { heapMb };
  }
}

/** The training loop; prints one JSON line with RSS and live-tensor samples. */
function child(): void {
  manualSeed(0);
  const cfg = { imgSize: 16, patchSize: 4, dim: 64, depth: 2, heads: 2 };
  const student = createVit(cfg);
  const teacher = createVit(cfg);
  teacher.loadStateDict(student.stateDict());
  teacher.requiresGrad_(false);
  const head = new Linear(64, 128);
  const named: [string, Tensor][] = [
    ...student.namedParameters(),
    ...head.namedParameters().map(([n, p]) => [`head.${n}`, p] as [string, Tensor]),
  ];
  const { decay, noDecay } = decayGroups(named);
  const opt = new AdamW([
    { params: decay.map(([, p]) => p), lr: 1e-4, weightDecay: 0.04 },
    { params: noDecay.map(([, p]) => p), lr: 1e-4, weightDecay: 0, wdScale: 0 },
  ]);
  const studentParams = student.parameters();
  const teacherParams = teacher.parameters();
  const samples: Sample[] = [];
  const t0 = Date.now();
  for (let step = 1; step <= STEPS; step++) {
    const loss = tidy(() => {
      const x = randn([16, 3, 16, 16]);
      const target = noGrad(() => head.forward(teacher.forward(x).cls).div(0.04).softmax(-1));
      const logits = head.forward(student.forward(x).cls).div(0.1);
      return crossEntropy(logits, target);
    });
    opt.zeroGrad();
    loss.backward();
    loss.dispose();
    clipGradGlobal(
      opt.groups.flatMap((g) => g.params),
      3.0,
    );
    opt.step();
    emaUpdate(teacherParams, studentParams, 0.996);
    if (MARKS.includes(step)) {
      (globalThis as { gc?: () => void }).gc?.();
      samples.push({ step, rssMb: process.memoryUsage.rss() / 2 ** 20, live: liveTensors(), ...rssParts() });
    }
  }
  console.log(JSON.stringify({ samples, seconds: (Date.now() - t0) / 1000 }));
}

if (process.env.LOCUS_MEMORY_CHILD === '1') {
  child();
} else {
  test(`${STEPS} training steps hold RSS and live tensors flat after step 100`, () => {
    const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url)], {
      env: {
        ...process.env,
        NODE_TEST_CONTEXT: undefined,
        LOCUS_MEMORY_CHILD: '1',
        MALLOC_ARENA_MAX: '1',
        LOCUS_THREADS: '1',
      },
      encoding: 'utf8',
      timeout: 180_000,
    });
    assert.equal(r.status, 0, `child failed: ${r.stderr}`);
    const { samples, seconds } = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      samples: Sample[];
      seconds: number;
    };
    const at = (s: number) => samples.find((x) => x.step === s)!;
    const mb = (v?: number) => (v === undefined ? '?' : v.toFixed(1));
    const line = samples
      .map((s) => `step ${s.step}: ${mb(s.rssMb)} MB (anon ${mb(s.anonMb)}, file ${mb(s.fileMb)}), ${s.live} live`)
      .join('; ');
    console.log(`engine_memory (${seconds.toFixed(1)} s): ${line}`);
    const growth = at(STEPS).rssMb / at(100).rssMb - 1;
    assert.ok(growth < 0.05, `RSS grew ${(growth * 100).toFixed(1)}% from step 100 to ${STEPS} (${line})`);
    for (const s of samples) assert.equal(s.live, at(1).live, `live tensors constant (${line})`);
  });

  test('the finaliser frees forgotten tensors during a synchronous loop (no event-loop turn needed)', () => {
    const before = liveTensors();
    for (let i = 0; i < 200_000; i++) randn([64]).add(1); // never disposed, never yields
    const live = liveTensors() - before;
    assert.ok(live < 100_000, `${live} of 400,000 forgotten handles still alive: finalisers are not running in GC`);
  });
}
