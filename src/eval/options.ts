// Probe options checked like the run config (issue 13 item 7): an unknown key (at any depth, dataset specs
// included), a value of the wrong type, or a null where the option has no "off" meaning fails with one line
// naming the option and what is allowed. Types are read from each probe's defaults; string options with a
// closed set of values and the options that accept null are listed here.

/** String options with a closed set of values (by key, at any depth). */
const ENUMS: Record<string, readonly string[]> = {
  feature: ['cls', 'mean', 'attn', 'cls+mean'],
  features: ['cls', 'mean', 'attn', 'cls+mean'],
  data: ['fashion-mnist', 'scene-items', 'part-objects'],
  interp: ['nearest', 'bilinear', 'bicubic'],
};

/** Options where null is meaningful: test = null holds out testFraction of train; data = null uses train/test. */
const NULLABLE: Record<string, readonly string[]> = {
  knn: ['test', 'data'],
  linear: ['test', 'data'],
  seg: ['test'],
  nnseg: ['test'],
  parts: [],
  location: [],
};

/** Dataset spec fields per kind (types: 'int', 'string', 'bool', or a value list). */
const SPLIT = ['train', 'eval'] as const;
const DATASET_FIELDS: Record<string, Record<string, 'int' | 'string' | 'bool' | 'any' | readonly string[]>> = {
  scenes: {
    kind: 'string',
    split: SPLIT,
    length: 'int',
    size: 'int',
    seed: 'int',
    minItems: 'int',
    maxItems: 'int',
    dir: 'string',
  },
  parts: {
    kind: 'string',
    split: SPLIT,
    length: 'int',
    size: 'int',
    seed: 'int',
    minObjects: 'int',
    maxObjects: 'int',
  },
  'fashion-mnist': { kind: 'string', split: ['train', 'test', 'eval'], length: 'int', dir: 'string' },
};
// folder and segfolder specs are checked by their dataset when opened (their fields belong to src/data)
const OPEN_KINDS = ['folder', 'segfolder'];

const isPlain = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const typeName = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v);

function checkDataset(where: string, v: unknown, nullable: boolean): void {
  if (v === null) {
    if (nullable) return;
    throw new Error(`${where} must be a dataset spec {kind, ...} (null is not allowed here)`);
  }
  if (!isPlain(v)) throw new Error(`${where} must be a dataset spec {kind, ...}, got ${typeName(v)}`);
  const kinds = [...Object.keys(DATASET_FIELDS), ...OPEN_KINDS];
  if (typeof v.kind !== 'string' || !kinds.includes(v.kind))
    throw new Error(`${where}.kind must be one of ${kinds.join(', ')} (got ${JSON.stringify(v.kind)})`);
  const fields = DATASET_FIELDS[v.kind];
  if (!fields) return;
  for (const [k, x] of Object.entries(v)) {
    const t = fields[k];
    if (!t)
      throw new Error(`${where}: unknown field '${k}' for kind ${v.kind} (allowed: ${Object.keys(fields).join(', ')})`);
    const bad =
      t === 'int'
        ? !(Number.isInteger(x) && (x as number) >= 0)
        : t === 'string'
          ? typeof x !== 'string'
          : t === 'bool'
            ? typeof x !== 'boolean'
            : t === 'any'
              ? false
              : !(t as readonly string[]).includes(x as string);
    if (bad)
      throw new Error(
        `${where}.${k} must be ${Array.isArray(t) ? `one of ${(t as readonly string[]).join(', ')}` : t === 'int' ? 'an integer ≥ 0' : `a ${t}`}, got ${JSON.stringify(x)}`,
      );
  }
}

function checkValue(where: string, key: string, def: unknown, v: unknown, nullable: boolean): void {
  if (v === undefined) return;
  const isSpec = isPlain(def) && 'kind' in def;
  if (isSpec || key === 'train' || key === 'test') {
    checkDataset(where, v, nullable);
    return;
  }
  if (v === null) {
    if (nullable || def === null) return;
    throw new Error(
      `${where} cannot be null (expected ${typeName(def)}${ENUMS[key] ? `: ${ENUMS[key]?.join(', ')}` : ''})`,
    );
  }
  const en = ENUMS[key];
  if (def === null) {
    if (en && !(typeof v === 'string' && en.includes(v)))
      throw new Error(`${where} must be one of ${en.join(', ')} or null, got ${JSON.stringify(v)}`);
    return;
  }
  if (Array.isArray(def)) {
    if (!Array.isArray(v)) throw new Error(`${where} must be a list, got ${typeName(v)}`);
    v.forEach((x, i) => {
      checkValue(`${where}[${i}]`, key, def[0] ?? x, x, false);
    });
    return;
  }
  if (isPlain(def)) {
    if (!isPlain(v)) throw new Error(`${where} must be an object {${Object.keys(def).join(', ')}}, got ${typeName(v)}`);
    for (const [k, x] of Object.entries(v)) {
      if (!(k in def)) throw new Error(`${where}: unknown option '${k}' (allowed: ${Object.keys(def).join(', ')})`);
      checkValue(`${where}.${k}`, k, def[k], x, false);
    }
    return;
  }
  if (typeof def === 'number' && !(typeof v === 'number' && Number.isFinite(v)))
    throw new Error(`${where} must be a number, got ${JSON.stringify(v)}`);
  if (typeof def === 'boolean' && typeof v !== 'boolean')
    throw new Error(`${where} must be true or false, got ${JSON.stringify(v)}`);
  if (typeof def === 'string') {
    if (typeof v !== 'string') throw new Error(`${where} must be a string, got ${JSON.stringify(v)}`);
    if (en && !en.includes(v)) throw new Error(`${where} must be one of ${en.join(', ')}, got ${JSON.stringify(v)}`);
  }
}

/** Throws one line for the first bad option of probe `kind` (its own options, against its defaults). */
export function validateProbeOptions(
  kind: string,
  defaults: Record<string, unknown>,
  own: Record<string, unknown>,
): void {
  const nullable = NULLABLE[kind] ?? [];
  for (const [k, v] of Object.entries(own)) {
    if (!(k in defaults)) continue; // unknown top-level keys are reported by runEval with the common keys
    checkValue(`eval ${kind}: option '${k}'`, k, defaults[k], v, nullable.includes(k));
  }
}

/** Common option checks (size, batchSize, seed: positive integers; cacheDir/outDir: a path or null). */
export function validateCommonOptions(kind: string, o: Record<string, unknown>): void {
  for (const k of ['size', 'batchSize'] as const)
    if (o[k] !== undefined && !(Number.isInteger(o[k]) && (o[k] as number) > 0))
      throw new Error(`eval ${kind}: option '${k}' must be a positive integer, got ${JSON.stringify(o[k])}`);
  if (o.seed !== undefined && !(Number.isInteger(o.seed) && (o.seed as number) >= 0))
    throw new Error(`eval ${kind}: option 'seed' must be an integer ≥ 0, got ${JSON.stringify(o.seed)}`);
  for (const k of ['cacheDir', 'outDir'] as const)
    if (o[k] !== undefined && o[k] !== null && typeof o[k] !== 'string')
      throw new Error(`eval ${kind}: option '${k}' must be a directory path or null, got ${JSON.stringify(o[k])}`);
  if (o.progress !== undefined && typeof o.progress !== 'boolean')
    throw new Error(`eval ${kind}: option 'progress' must be true or false, got ${JSON.stringify(o.progress)}`);
}
