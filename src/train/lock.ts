// One writer per run: a lock file (pid, host, start time) that a process holds while it writes a run
// directory. It is created atomically with its content (temp file + link, which fails if the lock
// exists); a second writer refuses with one line naming the holder; a lock whose process is gone (same
// host, pid not running or reused by another process) is taken over, and that is said.
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';

export interface LockInfo {
  pid: number;
  host: string;
  started: string; // ISO time the lock was taken
  procStart: string | null; // /proc/<pid>/stat start time (tells a reused pid apart), null off Linux
  command: string;
}

export class LockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LockError';
  }
}

/** Is a process with this pid running (EPERM: it exists but belongs to someone else)? */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); null where there is no /proc. */
function procStart(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function holderAlive(h: LockInfo): boolean {
  if (!pidAlive(h.pid)) return false;
  const now = procStart(h.pid);
  return h.procStart === null || now === null || now === h.procStart;
}

export function myLockInfo(): LockInfo {
  return {
    pid: process.pid,
    host: hostname(),
    started: new Date().toISOString(),
    procStart: procStart(process.pid),
    command: process.argv.slice(2).join(' ').slice(0, 200),
  };
}

/** Creates the lock file with its content in one step; throws EEXIST when a lock is there. */
export function writeLockFile(path: string, info: LockInfo = myLockInfo()): void {
  const tmp = join(dirname(path), `.lock.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(info)}\n`);
  try {
    linkSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}

function readLock(path: string): { raw: string; info: LockInfo | null } | null {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch {
    return null; // gone meanwhile
  }
  try {
    const info = JSON.parse(raw) as LockInfo;
    return { raw, info: typeof info.pid === 'number' && typeof info.host === 'string' ? info : null };
  } catch {
    return { raw, info: null };
  }
}

export interface RunLock {
  path: string;
  release(): void;
}

/** Releases the lock (only if it is still this process's) when the process exits, whichever way. */
export function holdLock(path: string): RunLock {
  const release = () => {
    process.off('exit', release);
    const l = readLock(path);
    if (l?.info?.pid === process.pid && l.info.host === hostname()) rmSync(path, { force: true });
  };
  process.on('exit', release);
  return { path, release };
}

/** Takes the run's lock or throws LockError naming its holder. */
export function acquireLock(
  path: string,
  what: string,
  log: (m: string) => void = (m) => process.stderr.write(`${m}\n`),
): RunLock {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeLockFile(path);
      return holdLock(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const l = readLock(path);
    if (!l) continue; // released meanwhile: try again
    const h = l.info;
    if (h && h.pid === process.pid && h.host === hostname()) return holdLock(path);
    if (h && h.host !== hostname())
      throw new LockError(
        `${what} is locked by pid ${h.pid} on another host, ${h.host} (since ${h.started}), which this machine cannot check; if no locus process there is writing it, remove the lock file ${path}`,
      );
    if (h && holderAlive(h))
      throw new LockError(
        `${what} is locked by pid ${h.pid} on ${h.host} (since ${h.started}): another locus process is writing it; wait for it or stop it (lock file ${path})`,
      );
    // stale: its process is gone (or the file is not a lock we can read); take it over if unchanged
    const again = readLock(path);
    if (again?.raw !== l.raw) continue;
    rmSync(path, { force: true });
    log(
      h
        ? `locus: taking over the lock of ${what} from pid ${h.pid} on ${h.host} (since ${h.started}), which is no longer running`
        : `locus: taking over the unreadable lock file ${path}`,
    );
  }
  throw new LockError(`${what}: could not take the lock ${path} (it keeps changing); is another locus starting?`);
}
