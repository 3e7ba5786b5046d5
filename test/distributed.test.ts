// Data parallelism over c10d Gloo on loopback: collectives, and a lost rank named by the survivor.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/train/launch.js';

const worker = fileURLToPath(new URL('./fixtures/dist_worker.js', import.meta.url));

async function ranks(mode: string, n: number): Promise<{ code: number; out: string; err: string; secs: number }[]> {
  const port = await freePort();
  const t0 = Date.now();
  return Promise.all(
    [...Array(n).keys()].map(
      (rank) =>
        new Promise<{ code: number; out: string; err: string; secs: number }>((resolve) => {
          const c = spawn(process.execPath, [worker, mode], {
            env: {
              ...process.env,
              RANK: String(rank),
              WORLD_SIZE: String(n),
              MASTER_ADDR: '127.0.0.1',
              MASTER_PORT: String(port),
              LOCUS_THREADS: '1',
            },
          });
          let out = '';
          let err = '';
          c.stdout.on('data', (d) => (out += d));
          c.stderr.on('data', (d) => (err += d));
          c.on('exit', (code) => resolve({ code: code ?? 128, out, err, secs: (Date.now() - t0) / 1000 }));
        }),
    ),
  );
}

test('2 ranks: all-reduce mean, broadcast of parameters, bucketed gradient averaging', async () => {
  const res = await ranks('collectives', 2);
  const outs = res.map((r) => {
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out.trim().split('\n').pop()!);
  });
  for (const o of outs) {
    assert.deepEqual(o.mean, [1.5, 15]); // (1+2)/2, (10+20)/2
    assert.deepEqual(o.g, Array(6).fill(1.5));
  }
  assert.deepEqual(outs[0].w, outs[1].w, 'rank 1 got rank 0 parameters');
});

test('a rank that dies makes the survivor exit non-zero naming the lost rank, within the timeout', async () => {
  const [r0, r1] = await ranks('die', 2);
  assert.equal(r1.code, 3);
  assert.equal(r0.code, 2, r0.err);
  assert.match(r0.err, /lost rank 1\b/);
  assert.ok(r0.secs < 15, `survivor took ${r0.secs}s`);
});

test('2 processes with batch B end with the parameters of 1 process with batch 2B on the same data', async () => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadCheckpoint } = await import('../src/train/checkpoint.js');
  const cli = fileURLToPath(new URL('../../bin/locus.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'locus-ddp-'));
  // No stochastic depth: per-sample random masks are the one thing that cannot match across layouts.
  const common = [
    '--steps',
    '3',
    '--set',
    'model.dim=32',
    '--set',
    'model.depth=2',
    '--set',
    'model.heads=2',
    '--set',
    'model.dropPath=0',
    '--set',
    'data.workers=0',
    '--set',
    'data.dataset.length=64',
  ];
  const env = { ...process.env, LOCUS_THREADS: '1' };
  execFileSync(
    process.execPath,
    [cli, 'pretrain', '--out', join(dir, 'one'), '--set', 'optim.batchSize=8', ...common],
    { env, stdio: 'pipe' },
  );
  execFileSync(
    process.execPath,
    [cli, 'pretrain', '--nproc', '2', '--out', join(dir, 'two'), '--set', 'optim.batchSize=4', ...common],
    { env, stdio: 'pipe' },
  );
  const a = loadCheckpoint(join(dir, 'one'));
  const b = loadCheckpoint(join(dir, 'two'));
  assert.equal(a.info.step, 3);
  assert.equal(b.info.step, 3);
  // Relative to the largest parameter magnitude of the model: the attention key bias has a gradient that
  // is zero in exact arithmetic (softmax ignores a constant added to every key), so AdamW turns its
  // float noise into ±lr steps that differ between layouts; per-tensor scaling would measure that noise.
  let scale = 0;
  for (const t of a.student.values()) scale = t.toFloat32().reduce((m, v) => Math.max(m, Math.abs(v)), scale);
  let worst = 0;
  for (const [k, t] of a.student) {
    const u = b.student.get(k);
    assert.ok(u, `2-process checkpoint lacks ${k}`);
    const x = t.toFloat32();
    const y = u.toFloat32();
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]) / scale);
  }
  assert.ok(worst <= 1e-5, `max relative difference ${worst}`);
});
