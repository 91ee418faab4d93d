/**
 * The training losses (scalars of shape [1]) with their gradients: the MAE's masked MSE, the
 * contrastive InfoNCE, and the classification losses of fine-tuning.
 */
import { kernels } from '../kernels/index.js';
import { Tensor, ShapeError, expectRank, expectShape, shapeStr } from '../tensor/tensor.js';
import type { Tape } from './tape.js';

/**
 * Masked MSE of the MAE: per patch mean over P of (pred - target)², then Σ(loss·mask)/Σ(mask).
 * pred [B,L,P]; target (a constant, already patch-normalised when norm_pix_loss) [B,L,P];
 * mask [B,L] (1 = removed).
 */
export function maskedMse(tp: Tape, pred: Tensor, target: Float32Array, mask: Float32Array): Tensor {
  expectRank('maskedMse', 'pred', pred, 3);
  const [B, L, P] = pred.shape;
  if (target.length !== pred.size)
    throw new ShapeError(`maskedMse: target of ${target.length} for ${shapeStr(pred.shape)}`);
  if (mask.length !== B * L) throw new ShapeError(`maskedMse: mask of ${mask.length} for [${B},${L}]`);
  let maskSum = 0;
  let total = 0;
  for (let r = 0; r < B * L; r++) {
    const m = mask[r];
    maskSum += m;
    if (m === 0) continue;
    let s = 0;
    for (let p = r * P; p < (r + 1) * P; p++) {
      const d = pred.data[p] - target[p];
      s += d * d;
    }
    total += (s / P) * m;
  }
  const loss = tp.empty([1]);
  loss.data[0] = total / maskSum;
  if (tp.needsGrad(pred)) {
    tp.record('maskedMse', loss, () => {
      const g = loss.grad![0];
      const dpred = tp.gradOf(pred);
      for (let r = 0; r < B * L; r++) {
        const c = (2 * g * mask[r]) / (P * maskSum);
        if (c === 0) continue;
        for (let p = r * P; p < (r + 1) * P; p++) dpred[p] += c * (pred.data[p] - target[p]);
      }
    });
  }
  return loss;
}

export interface ContrastiveOptions {
  /** Temperature τ (CAV-MAE: fixed 0.05). */
  temperature?: number;
  /** Average the video→audio and audio→video directions ("Symc"). */
  bidirectional?: boolean;
  /**
   * Split the batch into this many contiguous groups (torch.chunk sizes, as DataParallel's
   * scatter) and contrast within each group only; loss and accuracy are the group means.
   */
  groups?: number;
}

export interface ContrastiveResult {
  loss: Tensor;
  /** Fraction of correct argmax retrievals (averaged over directions and groups). */
  accuracy: number;
  /** The similarity logits of each group, [n,n] row-major (row = audio, column = video). */
  logits: Float32Array[];
}

/**
 * InfoNCE of CAV-MAE over L2-normalised representations a [B,D] (audio) and v [B,D] (video).
 * S = a·vᵀ/τ; default direction: for every video j a softmax over the audios (dim 0):
 * NCE = -mean_j log_softmax(S, dim=0)[j,j]; accuracy = mean_j [argmax_i S[i,j] == j].
 */
export function infoNce(tp: Tape, a: Tensor, v: Tensor, opts: ContrastiveOptions = {}): ContrastiveResult {
  expectRank('infoNce', 'audio', a, 2);
  expectShape('infoNce', 'video', v, a.shape);
  const [B, D] = a.shape;
  const tau = opts.temperature ?? 0.05;
  const bidirectional = opts.bidirectional ?? false;
  const groups = chunkSizes(B, opts.groups ?? 1);
  const k = kernels();
  const loss = tp.empty([1]);
  const saved: {
    start: number;
    n: number;
    S: Float32Array;
    pCol: Float64Array;
    pRow: Float64Array | null;
  }[] = [];
  let lossSum = 0;
  let accSum = 0;
  let start = 0;
  for (const n of groups) {
    const S = tp.pool.alloc(n * n);
    // S [n,n] = a_g [n,D] · v_gᵀ [D,n] / τ
    k.matmul(
      a.data.subarray(start * D, (start + n) * D),
      v.data.subarray(start * D, (start + n) * D),
      S,
      n,
      n,
      D,
      false,
      true,
      1 / tau,
      0,
      false,
    );
    const pCol = softmaxAxis(S, n, 0);
    let nce = 0;
    let acc = 0;
    for (let j = 0; j < n; j++) {
      nce -= Math.log(pCol[j * n + j]) / n;
      acc += argmaxColumn(S, n, j) === j ? 1 / n : 0;
    }
    let pRow: Float64Array | null = null;
    if (bidirectional) {
      pRow = softmaxAxis(S, n, 1);
      let nce2 = 0;
      let acc2 = 0;
      for (let i = 0; i < n; i++) {
        nce2 -= Math.log(pRow[i * n + i]) / n;
        acc2 += argmaxRow(S, n, i) === i ? 1 / n : 0;
      }
      nce = (nce + nce2) / 2;
      acc = (acc + acc2) / 2;
    }
    lossSum += nce;
    accSum += acc;
    saved.push({ start, n, S, pCol, pRow });
    start += n;
  }
  loss.data[0] = lossSum / groups.length;
  if (tp.needsGrad(a, v)) {
    tp.record('infoNce', loss, () => {
      const g = loss.grad![0] / groups.length;
      for (const { start: s0, n, pCol, pRow } of saved) {
        // dS[i,j] = g/n · (softmax_col_j[i] - δij)   (+ the row direction, each weighted 1/2)
        const w = bidirectional ? 0.5 : 1;
        const dS = tp.pool.alloc(n * n);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            const delta = i === j ? 1 : 0;
            let d = w * (pCol[i * n + j] - delta);
            if (pRow) d += w * (pRow[i * n + j] - delta);
            dS[i * n + j] = (g / n) * d;
          }
        }
        const aG = a.data.subarray(s0 * D, (s0 + n) * D);
        const vG = v.data.subarray(s0 * D, (s0 + n) * D);
        // da [n,D] += dS [n,n] · v [n,D] / τ ;  dv [n,D] += dSᵀ · a / τ
        if (a.requiresGrad)
          k.matmul(
            dS,
            vG,
            tp.gradOf(a).subarray(s0 * D, (s0 + n) * D),
            n,
            D,
            n,
            false,
            false,
            1 / tau,
            1,
            false,
          );
        if (v.requiresGrad)
          k.matmul(
            dS,
            aG,
            tp.gradOf(v).subarray(s0 * D, (s0 + n) * D),
            n,
            D,
            n,
            true,
            false,
            1 / tau,
            1,
            false,
          );
        tp.pool.release(dS);
      }
    });
  }
  return { loss, accuracy: accSum / groups.length, logits: saved.map((s) => s.S) };
}

/** torch.chunk sizes: ceil(B/k) per chunk, the last one smaller (and fewer chunks if B is small). */
export function chunkSizes(B: number, k: number): number[] {
  if (!Number.isInteger(k) || k < 1)
    throw new ShapeError(`contrastive groups must be a positive integer, got ${k}`);
  const size = Math.ceil(B / k);
  const out: number[] = [];
  for (let s = 0; s < B; s += size) out.push(Math.min(size, B - s));
  return out;
}

/** Softmax of an [n,n] matrix along axis 0 (columns) or 1 (rows), in float64. */
function softmaxAxis(S: Float32Array, n: number, axis: 0 | 1): Float64Array {
  const P = new Float64Array(n * n);
  for (let u = 0; u < n; u++) {
    const at = (t: number): number => (axis === 0 ? t * n + u : u * n + t);
    let max = -Infinity;
    for (let t = 0; t < n; t++) max = Math.max(max, S[at(t)]);
    let sum = 0;
    for (let t = 0; t < n; t++) sum += Math.exp(S[at(t)] - max);
    for (let t = 0; t < n; t++) P[at(t)] = Math.exp(S[at(t)] - max) / sum;
  }
  return P;
}

/** First index of the maximum (torch.argmax tie rule). */
function argmaxColumn(S: Float32Array, n: number, j: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (S[i * n + j] > S[best * n + j]) best = i;
  return best;
}

function argmaxRow(S: Float32Array, n: number, i: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (S[i * n + j] > S[i * n + best]) best = j;
  return best;
}

/** BCEWithLogitsLoss, mean over all B×K entries. targets [B,K] in [0,1]. */
export function bceWithLogits(tp: Tape, logits: Tensor, targets: Float32Array): Tensor {
  if (targets.length !== logits.size)
    throw new ShapeError(`bceWithLogits: ${targets.length} targets for ${logits}`);
  const n = logits.size;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const x = logits.data[i];
    total += Math.max(x, 0) - x * targets[i] + Math.log1p(Math.exp(-Math.abs(x)));
  }
  const loss = tp.empty([1]);
  loss.data[0] = total / n;
  if (tp.needsGrad(logits)) {
    tp.record('bceWithLogits', loss, () => {
      const g = loss.grad![0] / n;
      const dx = tp.gradOf(logits);
      for (let i = 0; i < n; i++) dx[i] += g * (1 / (1 + Math.exp(-logits.data[i])) - targets[i]);
    });
  }
  return loss;
}

/**
 * CrossEntropyLoss with probability targets (soft, smoothed or mixed labels), mean over the
 * batch: -Σ_k t_k log_softmax(x)_k. logits [B,K], targets [B,K].
 */
export function crossEntropy(tp: Tape, logits: Tensor, targets: Float32Array): Tensor {
  expectRank('crossEntropy', 'logits', logits, 2);
  const [B, K] = logits.shape;
  if (targets.length !== logits.size)
    throw new ShapeError(`crossEntropy: ${targets.length} targets for ${logits}`);
  const prob = new Float64Array(B * K);
  let total = 0;
  for (let b = 0; b < B; b++) {
    const o = b * K;
    let max = -Infinity;
    for (let c = 0; c < K; c++) max = Math.max(max, logits.data[o + c]);
    let sum = 0;
    for (let c = 0; c < K; c++) sum += Math.exp(logits.data[o + c] - max);
    const lse = max + Math.log(sum);
    for (let c = 0; c < K; c++) {
      prob[o + c] = Math.exp(logits.data[o + c] - lse);
      total -= targets[o + c] * (logits.data[o + c] - lse);
    }
  }
  const loss = tp.empty([1]);
  loss.data[0] = total / B;
  if (tp.needsGrad(logits)) {
    tp.record('crossEntropy', loss, () => {
      const g = loss.grad![0] / B;
      const dx = tp.gradOf(logits);
      for (let b = 0; b < B; b++) {
        let tsum = 0;
        for (let c = 0; c < K; c++) tsum += targets[b * K + c];
        for (let c = 0; c < K; c++) dx[b * K + c] += g * (prob[b * K + c] * tsum - targets[b * K + c]);
      }
    });
  }
  return loss;
}
