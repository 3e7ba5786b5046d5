// Crop sizes that follow the model: each method's view sides as the reference's ratio to its 224-px
// global crop (DINO/SelfPatch/iBOT/GTSA local crops 96/224, LOCA's reference and query 224/224, focal
// 96/224), rounded up to a multiple of the patch, and GTSA's RoI outputs and match counts as the
// reference's share of the resulting grids (10 of 14, 4 of 6; 50% of the tokens). At the default model
// (32 px, patch 4) these are exactly the methods' stated defaults (16-px locals, RoI 6/3, matches 32/8).
// A value given in the config wins; only absent fields are filled.

type Model = { imgSize: number; patchSize: number };

/** The side nearest `ratio`·imgSize, rounded up to a whole number (≥ 1) of patches. */
export function cropSide(ratio: number, m: Model): number {
  return Math.max(1, Math.ceil((ratio * m.imgSize) / m.patchSize - 1e-9)) * m.patchSize;
}

const LOCAL = 96 / 224;

/** Defaults for the method's size fields from the model; `given` (the config section) decides what is absent. */
export function cropDefaults(method: string, m: Model, given: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fill = (k: string, v: unknown) => {
    if (given[k] === undefined) out[k] = v;
  };
  switch (method) {
    case 'dino':
    case 'selfpatch':
    case 'dino+mim':
      fill('localSize', cropSide(LOCAL, m));
      break;
    case 'loca':
      fill('refSize', m.imgSize);
      fill('querySize', m.imgSize);
      fill('focalSize', cropSide(LOCAL, m));
      break;
    case 'gtsa': {
      fill('localSize', cropSide(LOCAL, m));
      const local = typeof given.localSize === 'number' ? given.localSize : (out.localSize as number);
      const g = Math.floor(m.imgSize / m.patchSize);
      const l = Math.floor(local / m.patchSize);
      fill('roiOut', [Math.max(1, Math.round((g * 10) / 14)), Math.max(1, Math.round((l * 4) / 6))]);
      fill('numMatches', [Math.max(1, Math.floor((g * g) / 2)), Math.max(1, Math.floor((l * l) / 2))]);
      break;
    }
  }
  return out;
}
