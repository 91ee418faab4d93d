/**
 * Classification metrics exactly as the reference computes them (src/utilities/stats.py, docs/reference.md#metrics).
 *
 * Contract:
 * - Per class k: AP = sklearn `average_precision_score(target[:,k], output[:,k])` (step-wise
 *   precision-recall: Σ (R_i - R_{i-1}) P_i over the distinct score thresholds, ties grouped into
 *   one threshold); AUC = sklearn `roc_auc_score` (trapezoids over the distinct thresholds, with
 *   sklearn's dropping of collinear points). Arithmetic is float64 on the float32 scores, in
 *   sklearn's order, so values agree with sklearn to ~1e-15.
 * - A class without positives or without negatives: sklearn's roc_auc_score raises and the
 *   reference stores AUC = -1 (and prints "class k no true sample"); we return -1 and flag the
 *   class (`aucDefined: false`). AP is still sklearn's: 0 without positives, 1 without negatives.
 * - mAP and mAUC are plain means over ALL classes, -1 AUCs included, as in the reference (a
 *   set with absent classes therefore reports a lowered mAUC; `mAUCDefined` is the mean over
 *   classes with a defined AUC, reported alongside, never instead).
 * - d' = sqrt(2) * Φ⁻¹(mAUC) (NaN when mAUC is outside [0, 1]).
 * - acc = mean(argmax(target row) == argmax(output row)), first maximum on ties (numpy).
 * - Targets must be 0/1 (sklearn rejects continuous targets); scores must be finite.
 */
import { UserError } from '../util/errors.js';

export interface ClassStats {
  ap: number;
  /** -1 when undefined (no positives or no negatives), as the reference stores it. */
  auc: number;
  aucDefined: boolean;
  positives: number;
}

export interface ClassificationStats {
  mAP: number;
  mAUC: number;
  /** Mean AUC over classes where it is defined (not a reference number). */
  mAUCDefined: number;
  dprime: number;
  acc: number;
  /** Classes whose AUC is undefined (the reference prints "class k no true sample"). */
  undefinedAucClasses: number[];
  perClass: ClassStats[];
}

/**
 * All metrics for output [N,K] (logits or probabilities: AP/AUC are rank-based) and target [N,K].
 */
export function calculateStats(
  output: ArrayLike<number>,
  target: ArrayLike<number>,
  N: number,
  K: number,
): ClassificationStats {
  if (!(N > 0 && K > 0))
    throw new UserError(`metrics: need at least one sample and one class (got N=${N}, K=${K})`);
  if (output.length !== N * K || target.length !== N * K) {
    throw new UserError(
      `metrics: output (${output.length}) and target (${target.length}) must both hold N*K = ${N}*${K} values`,
    );
  }
  for (let i = 0; i < N * K; i++) {
    if (!Number.isFinite(output[i]))
      throw new UserError(`metrics: output [${Math.floor(i / K)}, ${i % K}] is not finite (${output[i]})`);
    const t = target[i];
    if (t !== 0 && t !== 1)
      throw new UserError(`metrics: target [${Math.floor(i / K)}, ${i % K}] = ${t}; targets must be 0 or 1`);
  }
  const scores = new Float64Array(N);
  const labels = new Uint8Array(N);
  const perClass: ClassStats[] = [];
  const undefinedAucClasses: number[] = [];
  for (let k = 0; k < K; k++) {
    for (let i = 0; i < N; i++) {
      scores[i] = output[i * K + k];
      labels[i] = target[i * K + k];
    }
    const c = binaryCurve(scores, labels);
    const ap = averagePrecisionFromCurve(c);
    const aucDefined = c.totalPositives > 0 && c.totalNegatives > 0;
    const auc = aucDefined ? rocAucFromCurve(c) : -1;
    if (!aucDefined) undefinedAucClasses.push(k);
    perClass.push({ ap, auc, aucDefined, positives: c.totalPositives });
  }
  const mAP = mean(perClass.map((c) => c.ap));
  const mAUC = mean(perClass.map((c) => c.auc));
  const defined = perClass.filter((c) => c.aucDefined).map((c) => c.auc);
  return {
    mAP,
    mAUC,
    mAUCDefined: defined.length ? mean(defined) : NaN,
    dprime: dPrime(mAUC),
    acc: argmaxAccuracy(output, target, N, K),
    undefinedAucClasses,
    perClass,
  };
}

/**
 * Cumulative true/false positives at each distinct score, scores descending (sklearn's
 * `_binary_clf_curve`): tps[i], fps[i] count the samples with score >= thresholds[i].
 */
export interface BinaryCurve {
  tps: Float64Array;
  fps: Float64Array;
  thresholds: Float64Array;
  totalPositives: number;
  totalNegatives: number;
}

export function binaryCurve(scores: ArrayLike<number>, labels: ArrayLike<number>): BinaryCurve {
  const n = scores.length;
  if (n === 0) throw new UserError('metrics: no samples');
  // Sorting positives and negatives separately (typed-array numeric sorts) and merging them
  // from the top gives the per-threshold counts without an index sort; within a tie group the
  // order does not matter because only the counts at group ends are kept.
  let nPos = 0;
  for (let i = 0; i < n; i++) if (labels[i]) nPos++;
  const pos = new Float64Array(nPos);
  const neg = new Float64Array(n - nPos);
  for (let i = 0, ip = 0, ineg = 0; i < n; i++) {
    if (labels[i]) pos[ip++] = scores[i];
    else neg[ineg++] = scores[i];
  }
  pos.sort();
  neg.sort();
  const tps = new Float64Array(n);
  const fps = new Float64Array(n);
  const thresholds = new Float64Array(n);
  let ip = pos.length - 1;
  let ineg = neg.length - 1;
  let tp = 0;
  let fp = 0;
  let m = 0;
  while (ip >= 0 || ineg >= 0) {
    const t = ip < 0 ? neg[ineg] : ineg < 0 ? pos[ip] : Math.max(pos[ip], neg[ineg]);
    while (ip >= 0 && pos[ip] === t) {
      tp++;
      ip--;
    }
    while (ineg >= 0 && neg[ineg] === t) {
      fp++;
      ineg--;
    }
    tps[m] = tp;
    fps[m] = fp;
    thresholds[m] = t;
    m++;
  }
  return {
    tps: tps.subarray(0, m),
    fps: fps.subarray(0, m),
    thresholds: thresholds.subarray(0, m),
    totalPositives: nPos,
    totalNegatives: n - nPos,
  };
}

/**
 * sklearn average_precision_score (1.2): precision = tp/(tp+fp), recall = tp/P (all ones when
 * P = 0), AP = Σ_i (recall_i - recall_{i-1}) * precision_i with recall_{-1} = 0.
 */
export function averagePrecisionFromCurve(c: BinaryCurve): number {
  const m = c.tps.length;
  const P = c.tps[m - 1];
  let ap = 0;
  let prevRecall = 0;
  for (let i = 0; i < m; i++) {
    const ps = c.tps[i] + c.fps[i];
    const precision = ps !== 0 ? c.tps[i] / ps : 0;
    const recall = P === 0 ? 1 : c.tps[i] / P;
    ap += (recall - prevRecall) * precision;
    prevRecall = recall;
  }
  return ap;
}

/**
 * sklearn roc_auc_score for a binary target with both classes present: roc_curve with
 * drop_intermediate (points where neither fps nor tps bends are dropped), a (0,0) start, then
 * the trapezoid rule on (fpr, tpr).
 */
export function rocAucFromCurve(c: BinaryCurve): number {
  const m = c.tps.length;
  const P = c.tps[m - 1];
  const Nn = c.fps[m - 1];
  if (!(P > 0 && Nn > 0)) throw new Error('roc auc: needs positives and negatives');
  let keep: number[];
  if (m > 2) {
    keep = [0];
    for (let i = 1; i < m - 1; i++) {
      const d2f = c.fps[i + 1] - 2 * c.fps[i] + c.fps[i - 1];
      const d2t = c.tps[i + 1] - 2 * c.tps[i] + c.tps[i - 1];
      if (d2f !== 0 || d2t !== 0) keep.push(i);
    }
    keep.push(m - 1);
  } else {
    keep = m === 2 ? [0, 1] : [0];
  }
  let area = 0;
  let x0 = 0;
  let y0 = 0;
  for (const i of keep) {
    const x1 = c.fps[i] / Nn;
    const y1 = c.tps[i] / P;
    area += ((x1 - x0) * (y1 + y0)) / 2;
    x0 = x1;
    y0 = y1;
  }
  return area;
}

/** AP of one class (sklearn average_precision_score). */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  return averagePrecisionFromCurve(binaryCurve(scores, labels));
}

/** ROC AUC of one class, or -1 when a class is absent (the reference's convention). */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const c = binaryCurve(scores, labels);
  return c.totalPositives > 0 && c.totalNegatives > 0 ? rocAucFromCurve(c) : -1;
}

/** accuracy_score(argmax(target, 1), argmax(output, 1)); first maximum wins, NaN counts as maximal. */
export function argmaxAccuracy(
  output: ArrayLike<number>,
  target: ArrayLike<number>,
  N: number,
  K: number,
): number {
  let hits = 0;
  for (let i = 0; i < N; i++) if (argmaxRow(output, i * K, K) === argmaxRow(target, i * K, K)) hits++;
  return hits / N;
}

/** numpy argmax over x[off .. off+K): the first maximum; the first NaN if any (numpy treats NaN as max). */
export function argmaxRow(x: ArrayLike<number>, off: number, K: number): number {
  let best = 0;
  let bv = x[off];
  if (Number.isNaN(bv)) return 0;
  for (let k = 1; k < K; k++) {
    const v = x[off + k];
    if (Number.isNaN(v)) return k;
    if (v > bv) {
      bv = v;
      best = k;
    }
  }
  return best;
}

/** d' = sqrt(2) Φ⁻¹(auc). */
export function dPrime(auc: number): number {
  return Math.SQRT2 * normalPpf(auc);
}

/**
 * Inverse standard normal CDF, Wichura's AS241 (PPND16): relative accuracy about 1e-16 over
 * (0, 1). Returns -Inf at 0, +Inf at 1 and NaN outside [0, 1] (as scipy.stats.norm.ppf).
 */
/* eslint-disable no-loss-of-precision -- AS241's coefficients digit for digit as published (each
   literal still parses to the nearest double) */
export function normalPpf(p: number): number {
  if (Number.isNaN(p) || p < 0 || p > 1) return NaN;
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const q = p - 0.5;
  if (Math.abs(q) <= 0.425) {
    const r = 0.180625 - q * q;
    return (
      (q *
        (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r + 67265.770927008700853) * r +
          45921.953931549871457) *
          r +
          13731.693765509461125) *
          r +
          1971.5909503065514427) *
          r +
          133.14166789178437745) *
          r +
          3.387132872796366608)) /
      (((((((r * 5226.495278852854561 + 28729.085735721942674) * r + 39307.89580009271061) * r +
        21213.794301586595867) *
        r +
        5394.1960214247511077) *
        r +
        687.1870074920579083) *
        r +
        42.313330701600911252) *
        r +
        1)
    );
  }
  let r = q < 0 ? p : 1 - p;
  r = Math.sqrt(-Math.log(r));
  let x: number;
  if (r <= 5) {
    r -= 1.6;
    x =
      (((((((r * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r + 0.24178072517745061177) * r +
        1.27045825245236838258) *
        r +
        3.64784832476320460504) *
        r +
        5.7694972214606914055) *
        r +
        4.6303378461565452959) *
        r +
        1.42343711074968357734) /
      (((((((r * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r +
        0.14810397642748007459) *
        r +
        0.68976733498510000455) *
        r +
        1.6763848301838038494) *
        r +
        2.05319162663775882187) *
        r +
        1);
  } else {
    r -= 5;
    x =
      (((((((r * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r +
        0.026532189526576123093) *
        r +
        0.29656057182850489123) *
        r +
        1.7848265399172913358) *
        r +
        5.4637849111641143699) *
        r +
        6.6579046435011037772) /
      (((((((r * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r +
        7.868691311456132591e-4) *
        r +
        0.0148753612908506148525) *
        r +
        0.13692988092273580531) *
        r +
        0.59983220655588793769) *
        r +
        1);
  }
  return q < 0 ? -x : x;
}
/* eslint-enable no-loss-of-precision */

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}
