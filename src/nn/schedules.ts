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
