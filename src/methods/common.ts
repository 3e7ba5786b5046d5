// Pieces several methods share: EMA teachers, DINO's cross-entropy with centring, Sinkhorn.
import { emaUpdate, noGrad, type Tensor } from '../engine/index.js';
import { type EpochRules, linspaceWarmup, type Module, ruleEpoch } from '../nn/index.js';
import type { StepInfo } from './method.js';

/** A frozen copy of `student` built by `factory` (same architecture), for an EMA teacher. */
export function makeTeacher<M extends Module>(factory: () => M, student: M): M {
  const t = factory();
  t.loadStateDict(student.stateDict());
  t.requiresGrad_(false);
  return t;
}

/** teacher ← m·teacher + (1−m)·student over parameters with the same names (buffers untouched). */
export function updateTeacher(teacher: Module, student: Module, m: number): void {
  const s = new Map(student.namedParameters());
  const tp: Tensor[] = [];
  const sp: Tensor[] = [];
  for (const [n, p] of teacher.namedParameters()) {
    const q = s.get(n);
    if (!q) throw new Error(`EMA: student has no parameter ${n}`);
    tp.push(p);
    sp.push(q);
  }
  emaUpdate(tp, sp, m);
}

/**
 * DINO's loss: mean over pairs (teacher view i, student view v ≠ i) of the batch mean of
 * −Σ_k softmax((t_i − c)/τt)_k · log_softmax(s_v/τs)_k. teacherLogits are the first views' (global crops).
 */
export function dinoCrossEntropy(
  studentLogits: Tensor[],
  teacherLogits: Tensor[],
  centre: Tensor,
  studentTemp: number,
  teacherTemp: number,
): Tensor {
  const q = teacherLogits.map((t) => t.detach().sub(centre).div(teacherTemp).softmax(-1));
  const logp = studentLogits.map((s) => s.div(studentTemp).logSoftmax(-1));
  let total: Tensor | null = null;
  let n = 0;
  q.forEach((qi, i) => {
    logp.forEach((lv, v) => {
      if (v === i) return;
      const term = qi.mul(lv).sum(-1).mean().neg();
      total = total ? total.add(term) : term;
      n++;
    });
  });
  if (!total) throw new Error('DINO loss needs at least two views');
  return (total as Tensor).div(n);
}

/** c ← m·c + (1−m)·mean(batch teacher outputs), the batch mean taken over all ranks (DINO update_center). */
export function updateCentre(
  centre: Tensor,
  teacherLogits: Tensor[],
  momentum: number,
  allReduceMean: (t: Tensor) => void,
): void {
  noGrad(() => {
    const rows = teacherLogits.reduce((a, t) => a + t.shape[0], 0);
    const sum = teacherLogits.map((t) => t.sum(0, true)).reduce((a, b) => a.add(b));
    const batchCentre = sum.div(rows);
    allReduceMean(batchCentre);
    centre.mul_(momentum).add_(batchCentre, 1 - momentum);
  });
}

/**
 * Sinkhorn-Knopp normalisation of probabilities P [N, K] as LOCA's utils.sinkhorn: `iters` rounds of
 * dividing by column sums then by row sums (rows end summing to 1).
 */
export function sinkhorn(p: Tensor, iters = 3): Tensor {
  let q = p;
  for (let i = 0; i < iters; i++) {
    q = q.div(q.sum(0, true));
    q = q.div(q.sum(1, true));
  }
  return q;
}

/** Entropy (nats) of the rows of a probability matrix, averaged. */
export function meanEntropy(p: Tensor): Tensor {
  return p.mul(p.clampMin(1e-12).log()).sum(-1).mean().neg();
}

/** The epoch-stated rules of DINO-family options (dinoSchema): teacher-temperature warm-up and frozen last layer. */
export interface EpochRuleOptions {
  epochRules: EpochRules;
  referenceEpochs: number;
  warmupTeacherTempEpochs: number;
  warmupTeacherTempSteps: number | null;
  freezeLastLayerEpochs: number;
  freezeLastLayerSteps: number | null;
}

/** A teacher temperature warmed up from `start` to `end` over warmupTeacherTempEpochs (read per `epochRules`), or per step if set. */
export function warmupTemp(o: EpochRuleOptions, info: StepInfo, start: number, end: number): number {
  if (o.warmupTeacherTempSteps !== null) return linspaceWarmup(start, end, o.warmupTeacherTempSteps, info.step);
  const e = ruleEpoch(info.step, info.totalSteps, info.epoch, o);
  return linspaceWarmup(start, end, o.warmupTeacherTempEpochs, e);
}

/** DINO's freeze_last_layer: the prototypes get no update for freezeLastLayerEpochs (read per `epochRules`), or steps if set. */
export function lastLayerFrozen(o: EpochRuleOptions, info: StepInfo): boolean {
  if (o.freezeLastLayerSteps !== null) return info.step < o.freezeLastLayerSteps;
  return ruleEpoch(info.step, info.totalSteps, info.epoch, o) < o.freezeLastLayerEpochs;
}
