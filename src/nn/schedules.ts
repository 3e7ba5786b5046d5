// Per-step schedules (DINO's utils.cosine_scheduler): linear warm-up, then a half cosine to the final value.

/** values[i] for step i of totalSteps: warm-up from startWarmup to base over warmupSteps, then cosine to final. */
export function cosineSchedule(
  base: number,
  final: number,
  totalSteps: number,
  warmupSteps = 0,
  startWarmup = 0,
): Float64Array {
  const out = new Float64Array(totalSteps);
  const warm = Math.min(warmupSteps, totalSteps);
  for (let i = 0; i < warm; i++)
    out[i] = warm === 1 ? startWarmup : startWarmup + ((base - startWarmup) * i) / (warm - 1);
  const rest = totalSteps - warm;
  for (let i = 0; i < rest; i++) out[warm + i] = final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * i) / rest));
  return out;
}

/** DINO's teacher temperature: linear from warmup to final over warmupSteps, then constant. */
export function warmupConstant(
  warmupValue: number,
  final: number,
  totalSteps: number,
  warmupSteps: number,
): Float64Array {
  const out = new Float64Array(totalSteps).fill(final);
  const warm = Math.min(warmupSteps, totalSteps);
  for (let i = 0; i < warm; i++)
    out[i] = warm === 1 ? warmupValue : warmupValue + ((final - warmupValue) * i) / (warm - 1);
  return out;
}

// ---------------------------------------------------------------- budget-aware rules
//
// References state some rules in epochs of their own run (DINO freezes the prototypes for 1 of 100 epochs,
// iBOT warms the patch temperature up over 30 of 100). Copied as epochs into a run of a few hundred steps
// they cover a different share of training (1 "epoch" of the default scenes is half a 300-step run). Read
// as a fraction of training instead, a rule keeps the reference's shape at any run length: step t of a
// T-step run is at reference epoch ⌊t·R/T⌋ of an R-epoch reference run. At the reference's own length
// (T = R·stepsPerEpoch) that is the data epoch, so the scaled rule equals the reference rule there.

/** How rules stated in epochs are read: 'run' = at the same fraction of training; 'data' = per data pass (the references' literal form). */
export type EpochRules = 'run' | 'data';

/** The epoch a step counts as for an epoch-stated rule: ⌊step·R/T⌋ ('run', R = the reference's epochs) or the data epoch. */
export function ruleEpoch(
  step: number,
  totalSteps: number,
  dataEpoch: number,
  o: { epochRules: EpochRules; referenceEpochs: number },
): number {
  return o.epochRules === 'data' ? dataEpoch : Math.floor((step * o.referenceEpochs) / totalSteps);
}

/** DINO's teacher-temperature rule at epoch e: np.linspace(start, end, n)[e] for e < n, then end. */
export function linspaceWarmup(start: number, end: number, n: number, e: number): number {
  if (e >= n) return end;
  return n <= 1 ? start : start + ((end - start) * e) / (n - 1);
}

/**
 * The fraction of its initial weights an EMA teacher still holds after each step: ∏_{s≤t} m_s (each
 * update t ← m·t + (1−m)·student keeps a share m of everything the teacher held, its init included).
 */
export function teacherRetention(momenta: ArrayLike<number>): Float64Array {
  const out = new Float64Array(momenta.length);
  let p = 1;
  for (let i = 0; i < momenta.length; i++) {
    p *= momenta[i] as number;
    out[i] = p;
  }
  return out;
}

/**
 * The base momentum m0 of the cosine schedule m0 → end over totalSteps whose product of momenta is
 * `retention`: the teacher ends holding that fraction of its random init (bisection; the product rises
 * with m0). Small (1−m0): ∏ ≈ exp(−(1−m0)·T/2), so m0 ≈ 1 − 2·ln(1/retention)/T. At DINO's length
 * (100 epochs × 1,251 steps) its 0.996 leaves e^−250 of the init; at 300 steps it leaves 0.55.
 */
export function momentumForRetention(retention: number, totalSteps: number, end = 1): number {
  if (!(retention > 0 && retention < 1)) throw new Error(`retention must be in (0, 1) (got ${retention})`);
  const product = (m0: number) => teacherRetention(cosineSchedule(m0, end, totalSteps))[totalSteps - 1] as number;
  if (product(0) >= retention) return 0;
  let lo = 0;
  let hi = end;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (product(mid) < retention) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}
