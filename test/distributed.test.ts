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
            env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(n), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), LOCUS_THREADS: '1' },
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
