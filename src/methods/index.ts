// The method registry: `--method NAME` and the config's `method` field resolve here. Add one line per method.
import { byolDef } from './byol.js';
import { dinoDef } from './dino.js';
import { gtsaDef } from './gtsa.js';
import { locaDef } from './loca.js';
import type { MethodDef } from './method.js';
import { dinoMimDef, mimDef } from './mim.js';
import { scrlDef } from './scrl.js';
import { selfPatchDef } from './selfpatch.js';
import { supervisedDef } from './supervised.js';

// biome-ignore lint/suspicious/noExplicitAny: each entry has its own option type, validated by its schema.
export const METHODS: Record<string, MethodDef<any>> = {
  dino: dinoDef,
  selfpatch: selfPatchDef,
  mim: mimDef,
  'dino+mim': dinoMimDef,
  loca: locaDef,
  scrl: scrlDef,
  gtsa: gtsaDef,
  byol: byolDef,
  supervised: supervisedDef,
};

/** Registered method names, in registration order. */
export function methodNames(): string[] {
  return Object.keys(METHODS);
}

/** The method's definition, or an Error listing the allowed names. */
// biome-ignore lint/suspicious/noExplicitAny: see METHODS.
export function getMethod(name: string): MethodDef<any> {
  const def = METHODS[name];
  if (!def) throw new Error(`unknown method '${name}' (allowed: ${methodNames().join(', ')})`);
  return def;
}

export type { Collectives, LossOutput, Method, MethodContext, MethodDef, StepInfo } from './method.js';
