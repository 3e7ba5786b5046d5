// Provenance: what produced a run, a checkpoint or an eval record — the Locus version (package.json),
// the git commit of the checkout Locus runs from (read from .git without spawning git; null outside a
// checkout), the libtorch version and the device. Stamped into config.json, checkpoint metadata and
// every eval record.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineInfo } from '../engine/index.js';

export interface Provenance {
  locus: string; // package.json version
  commit: string | null; // 40-hex git HEAD of the Locus checkout; null when not in a git checkout
  torch: string; // libtorch version the addon runs on
  device: string; // 'cpu', 'cuda', 'cuda:N'
  node: string;
}

/** The directory holding Locus's package.json (searched upwards from this module). */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string | null {
  for (let d = from; ; d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p)) {
      try {
        if ((JSON.parse(readFileSync(p, 'utf8')) as { name?: string }).name === 'locus') return d;
      } catch {
        // not ours
      }
    }
    if (dirname(d) === d) return null;
  }
}

const read = (p: string): string | null => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
};
const SHA = /^[0-9a-f]{40}$/;

/**
 * The commit HEAD names in the git checkout at `root` (`.git` a directory, or a file `gitdir: …` as in a
 * worktree or submodule; the ref loose, in the common dir, or in packed-refs); null when there is none.
 */
export function readGitCommit(root: string): string | null {
  const dotGit = join(root, '.git');
  let gitDir: string;
  try {
    if (statSync(dotGit).isDirectory()) gitDir = dotGit;
    else {
      const m = /^gitdir:\s*(.+)$/m.exec(read(dotGit) ?? '');
      if (!m) return null;
      const g = (m[1] as string).trim();
      gitDir = isAbsolute(g) ? g : resolve(root, g);
    }
  } catch {
    return null;
  }
  const head = read(join(gitDir, 'HEAD'))?.trim();
  if (!head) return null;
  if (SHA.test(head)) return head; // detached
  const ref = /^ref:\s*(\S+)$/.exec(head)?.[1];
  if (!ref) return null;
  const common = read(join(gitDir, 'commondir'))?.trim();
  const dirs = [gitDir, ...(common ? [isAbsolute(common) ? common : resolve(gitDir, common)] : [])];
  for (const d of dirs) {
    const loose = read(join(d, ref))?.trim();
    if (loose && SHA.test(loose)) return loose;
  }
  for (const d of dirs) {
    for (const line of (read(join(d, 'packed-refs')) ?? '').split('\n')) {
      const [sha, name] = line.trim().split(/\s+/);
      if (name === ref && sha && SHA.test(sha)) return sha;
    }
  }
  return null;
}

let version: string | null = null;

/** Locus's version from its package.json ('0.0.0' when unreadable); read once per process. */
export function locusVersion(): string {
  if (version === null) {
    version = '0.0.0';
    const root = packageRoot();
    try {
      if (root) version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // keep 0.0.0
    }
  }
  return version;
}

let fixed: Omit<Provenance, 'device'> | null = null;

/** Provenance for work done on `device` (version, commit and libtorch are read once per process). */
export function provenance(device: string): Provenance {
  if (!fixed) {
    const root = packageRoot();
    fixed = {
      locus: locusVersion(),
      commit: root ? readGitCommit(root) : null,
      torch: engineInfo().torchVersion,
      node: process.version,
    };
  }
  return { ...fixed, device };
}
