// Budget-aware schedules: each epoch-stated rule (DINO's frozen last layer, DINO's and iBOT's teacher-temperature
// warm-ups) at two run lengths and, at the reference's own length, equal to the reference rule step for step;
// the EMA base momentum chosen from the run length; the teacher-retention figure for a known momentum sequence.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { emaUpdate, tensor, tidy } from '../src/engine/index.js';
import { lastLayerFrozen, warmupTemp } from '../src/methods/common.js';
import { dinoSchema } from '../src/methods/dino.js';
import type { StepInfo } from '../src/methods/method.js';
import { dinoMimSchema, mimSchema } from '../src/methods/mim.js';
import { selfPatchSchema } from '../src/methods/selfpatch.js';
import { cosineSchedule, momentumForRetention, teacherRetention } from '../src/nn/index.js';
import { resolveConfig, teacherMomentumBase } from '../src/train/config.js';

const at = (step: number, totalSteps: number, stepsPerEpoch: number): StepInfo => ({
  step,
  totalSteps,
  epoch: Math.floor(step / stepsPerEpoch),
  stepsPerEpoch,
  lr: 0,
  weightDecay: 0,
  momentum: 0,
});
const SPE = 150; // the default scenes: 9,600 per epoch at batch 64
const REF_SPE = 1251; // ImageNet at DINO's batch 1024: 1,281,167 / 1024 → 1,251 steps per epoch

test("DINO's frozen last layer: the first 1% of steps at any length; at 100 epochs exactly DINO's first epoch", () => {
  const o = dinoSchema.parse({});
  const frozenSteps = (T: number) => {
    let n = 0;
    for (let s = 0; s < T; s++) if (lastLayerFrozen(o, at(s, T, SPE))) n++;
    return n;
  };
  assert.equal(frozenSteps(300), 3);
  assert.equal(frozenSteps(1500), 15);
  assert.ok(lastLayerFrozen(o, at(2, 300, SPE)) && !lastLayerFrozen(o, at(3, 300, SPE)), 'a prefix of the run');
  // the literal rule freezes a whole data epoch: half of a 300-step run
  const lit = dinoSchema.parse({ epochRules: 'data' });
  let lits = 0;
  for (let s = 0; s < 300; s++) if (lastLayerFrozen(lit, at(s, 300, SPE))) lits++;
  assert.equal(lits, 150);
  // at the reference's length (100 epochs of REF_SPE) the scaled rule is DINO's, step for step
  const T = 100 * REF_SPE;
  for (let s = 0; s < T; s++)
    if (lastLayerFrozen(o, at(s, T, REF_SPE)) !== lastLayerFrozen(lit, at(s, T, REF_SPE)))
      assert.fail(`step ${s}: scaled and reference rules differ`);
  // SelfPatch's reference run is 300 epochs: 1 frozen epoch = 1 step in 300
  assert.equal(
    Array.from({ length: 300 }, (_, s) => lastLayerFrozen(selfPatchSchema.parse({}), at(s, 300, SPE))).filter(Boolean)
      .length,
    1,
  );
});

test("iBOT's patch temperature 0.04 → 0.07 warms up over the first 30% of steps; at 100 epochs it is iBOT's", () => {
  for (const schema of [mimSchema, dinoMimSchema]) {
    const o = schema.parse({});
    const temp = (s: number, T: number, spe = SPE) =>
      warmupTemp(o, at(s, T, spe), o.warmupTeacherPatchTemp, o.teacherPatchTemp);
    // T = 300: reference epoch ⌊s/3⌋, linspace(0.04, 0.07, 30) over epochs 0..29, i.e. steps 0..89
    assert.equal(temp(0, 300), 0.04);
    assert.ok(Math.abs(temp(45, 300) - (0.04 + (0.03 * 15) / 29)) < 1e-15);
    assert.ok(Math.abs(temp(87, 300) - 0.07) < 1e-15 && temp(89, 300) === temp(87, 300));
    assert.equal(temp(90, 300), 0.07);
    assert.ok(temp(86, 300) < 0.07);
    // T = 1500: epoch ⌊s/15⌋: still warming at step 434, done at 435 (epoch 29) and after
    assert.ok(temp(434, 1500) < 0.07 && Math.abs(temp(435, 1500) - 0.07) < 1e-15);
    assert.ok(Math.abs(temp(750, 1500) - 0.07) < 1e-15);
    // at iBOT's length (100 epochs) the scaled rule equals the per-epoch one at every step
    const lit = schema.parse({ epochRules: 'data' });
    const T = 100 * REF_SPE;
    for (let s = 0; s < T; s += 7) {
      const ref = warmupTemp(lit, at(s, T, REF_SPE), lit.warmupTeacherPatchTemp, lit.teacherPatchTemp);
      if (temp(s, T, REF_SPE) !== ref) assert.fail(`step ${s}: ${temp(s, T, REF_SPE)} vs iBOT's ${ref}`);
    }
  }
  // DINO's own default has no warm-up (warmup 0 epochs); its README "boost" (30 of 300 epochs) scales too
  const boost = dinoSchema.parse({
    warmupTeacherTemp: 0.04,
    teacherTemp: 0.07,
    warmupTeacherTempEpochs: 30,
    referenceEpochs: 300,
  });
  const bt = (s: number) => warmupTemp(boost, at(s, 300, SPE), 0.04, 0.07);
  assert.ok(bt(28) < 0.07 && Math.abs(bt(29) - 0.07) < 1e-15, '10% of 300 steps');
});

test('teacher retention = the product of the momenta, as an EMA of a teacher that starts at 1 and a student at 0', () => {
  const m = [0.5, 0.9, 0.99, 1];
  assert.deepEqual([...teacherRetention(m)], [0.5, 0.45, 0.4455, 0.4455]);
  // the same figure from the EMA kernel itself: teacher init 1, student 0 at every step
  const got = tidy(() => {
    const t = tensor([1], [1], { dtype: 'float64' });
    const s = tensor([0], [1], { dtype: 'float64' });
    return m.map((mi) => {
      emaUpdate([t], [s], mi);
      return t.item();
    });
  });
  for (const [i, g] of got.entries()) assert.ok(Math.abs(g - (teacherRetention(m)[i] as number)) < 1e-15);
  // DINO's 0.996 → 1 leaves 55% at 300 steps, 37% at 500, 5% at 1,500 (issue 12's figures)
  const left = (T: number) => teacherRetention(cosineSchedule(0.996, 1, T))[T - 1] as number;
  assert.ok(Math.abs(left(300) - 0.547) < 1e-3 && Math.abs(left(500) - 0.367) < 1e-3);
  assert.ok(Math.abs(left(1500) - 0.0495) < 1e-3);
});

test('the budget-aware EMA base momentum leaves the stated retention at each run length; 0.996 one --set away', () => {
  for (const T of [300, 1500]) {
    const m0 = momentumForRetention(0.01, T);
    const moms = cosineSchedule(m0, 1, T);
    let p = 1;
    for (let i = 0; i < T; i++) p *= 1 - (1 - m0) * 0.5 * (1 + Math.cos((Math.PI * i) / T)); // by hand
    assert.ok(Math.abs(p - 0.01) < 1e-9, `T=${T}: product ${p}`);
    assert.ok(Math.abs((teacherRetention(moms)[T - 1] as number) - 0.01) < 1e-9);
    // the small-(1−m) approximation ∏ ≈ exp(−(1−m0)T/2)
    assert.ok(Math.abs(1 - m0 - (2 * Math.log(100)) / T) < 0.1 * (1 - m0), `T=${T}: m0 ${m0}`);
  }
  assert.ok(Math.abs(momentumForRetention(0.01, 300) - 0.96975) < 1e-5);
  assert.ok(Math.abs(momentumForRetention(0.01, 1500) - 0.99388) < 1e-5);
  const d = resolveConfig({});
  assert.equal(d.optim.teacherMomentum, null);
  assert.equal(teacherMomentumBase(d), momentumForRetention(0.01, 300));
  assert.equal(teacherMomentumBase(resolveConfig({ optim: { steps: 1500 } })), momentumForRetention(0.01, 1500));
  assert.equal(teacherMomentumBase(resolveConfig({ optim: { teacherMomentum: 0.996 } })), 0.996);
  assert.throws(() => momentumForRetention(0, 300), /retention must be in \(0, 1\)/);
});
