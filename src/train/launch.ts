// `--nproc N`: starts N local worker processes of the same command as ranks of one c10d group.
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';

/** A free TCP port on loopback for the rendezvous store. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs `script args` as ranks 0..n-1 (env RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT; cores split
 * between them). Resolves with the exit code: 0 if all ranks succeed, else the first failure's code.
 * When a rank fails, the others get `graceMs` to notice (they name the lost rank) before being killed.
 */
export async function launchLocal(script: string, args: string[], n: number, graceMs = 20_000): Promise<number> {
  const port = await freePort();
  const threads = Math.max(1, Math.floor(availableParallelism() / n));
  const children: ChildProcess[] = [];
  const exits: Promise<number>[] = [];
  for (let rank = 0; rank < n; rank++) {
    const child = spawn(process.execPath, [script, ...args], {
      stdio: 'inherit',
      env: {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(n),
        LOCAL_RANK: String(rank),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        LOCUS_THREADS: String(threads),
        MALLOC_ARENA_MAX: '1',
      },
    });
    children.push(child);
    exits.push(
      new Promise((resolve) =>
        child.on('exit', (code, signal) => {
          if (code !== 0) console.error(`locus: rank ${rank} exited with ${signal ?? `code ${code}`}`);
          resolve(code ?? 128);
        }),
      ),
    );
  }
  const forward = (sig: NodeJS.Signals) => () => {
    for (const c of children) if (c.exitCode === null) c.kill(sig);
  };
  process.on('SIGINT', forward('SIGINT'));
  process.on('SIGTERM', forward('SIGTERM'));
  // The first failure starts the grace period for the others.
  const firstFailure = Promise.race(exits.map((p) => p.then((c) => (c === 0 ? new Promise<number>(() => {}) : c))));
  const all = Promise.all(exits).then((codes) => codes.find((c) => c !== 0) ?? 0);
  const failed = await Promise.race([all, firstFailure]);
  if (failed === 0) return 0;
  const timer = setTimeout(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }, graceMs);
  await Promise.all(exits);
  clearTimeout(timer);
  return failed;
}
