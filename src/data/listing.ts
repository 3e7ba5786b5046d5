// Folder listing helpers shared by the folder dataset kinds: directory checks, recursive image
// listing in a machine-independent order, relative stems, class-name files and a bounded async map.
import type { Dirent } from 'node:fs';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { dirname, extname, join, relative } from 'node:path';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.png', '.webp'];

export async function requireDir(path: string, what: string): Promise<void> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    throw new Error(`${what} not found: ${path}`);
  }
  if (!st.isDirectory()) throw new Error(`${what} is not a directory: ${path}`);
}

export function visible(d: Dirent): boolean {
  return !d.name.startsWith('.');
}

export function isImage(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** All image files under dir (recursive, hidden entries skipped), sorted by path. */
export async function listImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of (await readdir(dir, { withFileTypes: true })).filter(visible)) {
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await listImages(p)));
    else if ((d.isFile() || d.isSymbolicLink()) && isImage(d.name)) out.push(p);
  }
  return out.sort(cmp);
}

export function stem(root: string, path: string): string {
  const rel = relative(root, path);
  return rel.slice(0, rel.length - extname(rel).length);
}

/** Locale-independent string order (stable across machines). */
export function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function checkIdx(i: number, n: number, what: string): void {
  if (!(Number.isInteger(i) && i >= 0 && i < n)) throw new RangeError(`${what}: index ${i} outside [0, ${n})`);
}

/** Map with at most `limit` promises in flight; results in input order. */
export async function mapPool<T, R>(items: readonly T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Class names from a `classes.txt` (one name a line; line i names label i; blank lines at the end
 * ignored) or `classes.json` (an array of names, or an object {"0": "background", ...}) in `dir` or
 * its parent; null when there is none. A malformed file is an Error naming it.
 */
export function readClassNames(dir: string): { names: string[]; file: string } | null {
  for (const d of [dir, dirname(dir)]) {
    const txt = join(d, 'classes.txt');
    if (existsSync(txt)) {
      const names = readFileSync(txt, 'utf8')
        .replace(/\s+$/, '')
        .split(/\r?\n/)
        .map((l) => l.trim());
      if (names.length === 0 || names.some((n) => n === ''))
        throw new Error(`${txt}: expected one non-empty class name a line (line i names label i)`);
      return { names, file: txt };
    }
    const json = join(d, 'classes.json');
    if (existsSync(json)) {
      let v: unknown;
      try {
        v = JSON.parse(readFileSync(json, 'utf8'));
      } catch (e) {
        throw new Error(`${json}: not valid JSON (${(e as Error).message})`);
      }
      const names = Array.isArray(v) ? v : objectNames(v);
      if (!names || names.length === 0 || names.some((n) => typeof n !== 'string' || n === ''))
        throw new Error(`${json}: expected an array of class names or an object {"0": "name", ...} with labels 0..n-1`);
      return { names: names as string[], file: json };
    }
  }
  return null;
}

function objectNames(v: unknown): unknown[] | null {
  if (typeof v !== 'object' || v === null) return null;
  const entries = Object.entries(v as Record<string, unknown>);
  const out: unknown[] = new Array(entries.length);
  for (const [k, name] of entries) {
    const i = Number(k);
    if (!(Number.isInteger(i) && i >= 0 && i < entries.length)) return null;
    out[i] = name;
  }
  return out;
}
