/**
 * CAV-MAE Sync retrieval features (spec 8.6): per clip, the F (segment, frame) pairs go through
 * forward_feat (no masking) and each pair gives one audio and one visual vector, L2-normalised:
 * the global tokens (`cls_a`, `cls_v`, the released retrieval) or, with `representation:
 * 'local'` (the script's local_matching) or a model without global tokens, the mean of the
 * patch tokens. The result is an [n, F, D] set per modality, ready for src/eval/retrieval.ts
 * (`evaluateRetrieval(audio, video, { strategy: 'diagonal_mean' })`).
 *
 * Pairs run in chunks of `batchPairs` through one reused activation pool, so memory stays at
 * one chunk's activations however many clips there are.
 */
import { Tape } from '../autograd/tape.js';
import * as ops from '../autograd/ops.js';
import { ActivationPool } from '../tensor/pool.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { MEL_BINS } from './config.js';
import type { CAVMAESync } from './sync.js';

export type SyncRepresentation = 'global' | 'local';

export interface SyncFeatureOptions {
  /** 'global' (default with cls_token) or 'local' (patch-token means; the only one without). */
  representation?: SyncRepresentation;
  /** Pairs per forward pass (default 32). */
  batchPairs?: number;
  bf16?: boolean;
}

/** Per-clip pair features, the shape src/eval/retrieval.ts takes (rows L2-normalised). */
export interface ClipFeatures {
  /** [n, frames, dim]. */
  data: Float32Array;
  n: number;
  frames: number;
  dim: number;
}

/** Clips as stacked pairs: audio [n, F, L, 128], image [n, F, 3, S, S] (pair k of clip i at row i·F + k). */
export interface SyncClips {
  audio: Float32Array;
  image: Float32Array;
  n: number;
  /** Pairs per clip (default the model's total_frame). */
  frames?: number;
}

/** Features of a batch of pairs: audio [P, D] and video [P, D], L2-normalised rows (copies). */
export function syncPairFeatures(
  model: CAVMAESync,
  audio: Tensor,
  image: Tensor,
  opts: SyncFeatureOptions & { pool?: ActivationPool } = {},
): { audio: Float32Array; video: Float32Array } {
  const rep = representationOf(model, opts.representation);
  const tp = new Tape({ grad: false, bf16: opts.bf16 ?? false, pool: opts.pool });
  const f = model.forwardFeat(tp, { audio, image });
  const a = rep === 'global' ? f.clsA! : ops.meanTokens(tp, f.audioTokens); // [P, D]
  const v = rep === 'global' ? f.clsV! : ops.meanTokens(tp, f.videoTokens);
  const out = {
    audio: Float32Array.from(ops.l2Normalize(tp, a).data),
    video: Float32Array.from(ops.l2Normalize(tp, v).data),
  };
  tp.reset();
  return out;
}

/** Per-clip [F, D] features of every clip, both modalities (see the contract at the top). */
export function syncRetrievalFeatures(
  model: CAVMAESync,
  clips: SyncClips,
  opts: SyncFeatureOptions = {},
): { audio: ClipFeatures; video: ClipFeatures } {
  const c = model.config;
  const F = clips.frames ?? c.total_frame;
  const L = c.audio_length;
  const S = c.img_size;
  const D = c.embed_dim;
  const pairs = clips.n * F;
  const aRow = L * MEL_BINS;
  const vRow = 3 * S * S;
  if (!(Number.isInteger(clips.n) && clips.n > 0 && Number.isInteger(F) && F > 0))
    throw new UserError(`Sync retrieval: need a positive number of clips and pairs (got ${clips.n} x ${F})`);
  if (clips.audio.length !== pairs * aRow)
    throw new UserError(
      `Sync retrieval: audio holds ${clips.audio.length} values, expected ${clips.n} clips x ${F} pairs x [${L}, ${MEL_BINS}]`,
    );
  if (clips.image.length !== pairs * vRow)
    throw new UserError(
      `Sync retrieval: image holds ${clips.image.length} values, expected ${clips.n} clips x ${F} pairs x [3, ${S}, ${S}]`,
    );
  const chunk = Math.max(1, Math.floor(opts.batchPairs ?? 32));
  const audio = new Float32Array(pairs * D);
  const video = new Float32Array(pairs * D);
  const pool = new ActivationPool(); // tracked: each chunk reuses the previous chunk's buffers
  for (let p0 = 0; p0 < pairs; p0 += chunk) {
    const P = Math.min(chunk, pairs - p0);
    const f = syncPairFeatures(
      model,
      new Tensor([P, L, MEL_BINS], clips.audio.subarray(p0 * aRow, (p0 + P) * aRow)),
      new Tensor([P, 3, S, S], clips.image.subarray(p0 * vRow, (p0 + P) * vRow)),
      { ...opts, pool },
    );
    audio.set(f.audio, p0 * D);
    video.set(f.video, p0 * D);
  }
  return {
    audio: { data: audio, n: clips.n, frames: F, dim: D },
    video: { data: video, n: clips.n, frames: F, dim: D },
  };
}

function representationOf(model: CAVMAESync, asked?: SyncRepresentation): SyncRepresentation {
  const rep = asked ?? (model.config.cls_token ? 'global' : 'local');
  if (rep === 'global' && !model.config.cls_token)
    throw new UserError(
      'Sync retrieval: this model has no global tokens (cls_token false); use the local representation',
    );
  return rep;
}
