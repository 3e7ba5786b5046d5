// Eval record file names: <run>/evals/<probe>[_random_init]@<dataset>.json, keyed by (probe, dataset) so
// that an eval of one probe on another dataset never replaces the first. The dataset key comes from the
// record's test set (data.test, else data.train): the built-in kinds by name (plus a non-default size or
// seed), folders by their directory's name and a short hash of the path as recorded. Older runs'
// <probe>.json / <probe>_random_init.json still read.
import { createHash } from 'node:crypto';
import { basename } from 'node:path';

type Spec = Record<string, unknown>;
const isObj = (v: unknown): v is Spec => v !== null && typeof v === 'object' && !Array.isArray(v);
const slug = (s: string): string =>
  s
    .replace(/[^A-Za-z0-9_.-]+/g, '_')
    .replace(/^[._]+/, '')
    .slice(0, 40) || 'data';
const short = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 6);

/** The dataset spec an eval record measures on: its test set, else its train set. */
export function evalDataset(record: Record<string, unknown>): Spec | null {
  const d = record.data;
  if (!isObj(d)) return null;
  if (isObj(d.test) && typeof d.test.kind === 'string') return d.test;
  if (isObj(d.train) && typeof d.train.kind === 'string') return d.train;
  return null;
}

/** The file-name key of a dataset spec: 'fashion-mnist', 'scenes', 'scenes-96px-seed3', 'folder-photos-1a2b3c', ... */
export function datasetKey(spec: Spec | null): string {
  if (!spec || typeof spec.kind !== 'string') return 'unknown';
  const kind = slug(spec.kind);
  switch (spec.kind) {
    case 'folder': {
      const root = String(spec.root ?? '');
      return `folder-${slug(basename(root))}-${short(root)}`;
    }
    case 'segfolder': {
      const images = String(spec.images ?? '');
      return `segfolder-${slug(basename(images))}-${short(`${images}\0${String(spec.masks ?? '')}`)}`;
    }
    default: {
      const parts = [kind];
      if (typeof spec.size === 'number') parts.push(`${spec.size}px`);
      if (typeof spec.seed === 'number' && spec.seed !== 0) parts.push(`seed${spec.seed}`);
      return parts.join('-');
    }
  }
}

/** A short human name of a dataset spec, for tables: 'fashion-mnist', 'scenes 96px', 'folder photos'. */
export function datasetLabel(spec: Spec | null): string {
  if (!spec || typeof spec.kind !== 'string') return 'unknown';
  if (spec.kind === 'folder') return `folder ${basename(String(spec.root ?? '')) || '?'}`;
  if (spec.kind === 'segfolder') return `segfolder ${basename(String(spec.images ?? '')) || '?'}`;
  return datasetKey(spec)
    .replace(/-/g, ' ')
    .replace(/^fashion mnist/, 'fashion-mnist');
}

/** `<name>@<dataset key>.json` for a record; name is the probe kind, or `<kind>_random_init`. */
export function evalFileName(name: string, record: Record<string, unknown>): string {
  return `${name}@${datasetKey(evalDataset(record))}.json`;
}

/** The parts of an eval file's stem ('knn_random_init@fashion-mnist' or an older 'knn'). */
export function parseEvalName(stem: string): { probe: string; dataset: string | null; randomInit: boolean } {
  const at = stem.indexOf('@');
  const name = at < 0 ? stem : stem.slice(0, at);
  const randomInit = name.endsWith('_random_init');
  return {
    probe: randomInit ? name.slice(0, -'_random_init'.length) : name,
    dataset: at < 0 ? null : stem.slice(at + 1),
    randomInit,
  };
}

/**
 * The most recent record (by `created`) of a probe on a trained backbone among records keyed by file
 * stem (as readEvals returns them); undefined when there is none.
 */
export function latestEval(
  evals: Record<string, Record<string, unknown>> | undefined,
  probe: string,
): Record<string, unknown> | undefined {
  let best: Record<string, unknown> | undefined;
  for (const [stem, r] of Object.entries(evals ?? {})) {
    const n = parseEvalName(stem);
    if (n.probe !== probe || n.randomInit) continue;
    if (!best || String(r.created ?? '') > String(best.created ?? '')) best = r;
  }
  return best;
}
