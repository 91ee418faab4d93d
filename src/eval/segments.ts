/**
 * The segment-level retrieval protocol (docs/sync-training.md): every (clip, pair) is an item of
 * its own: audio segment k of clip i must retrieve frame k of clip i among all frames of all clips
 * (and the reverse), pooled cosine. A Sync model embeds each segment and frame as it trained (its
 * pair features, src/eval/features.ts). A clip-level CAV-MAE (audio_length 1024, trained on whole
 * clips) embeds segment k through its own masking path: the segment's patches, and only those,
 * stay visible AT THEIR TRUE PLACE in the clip (position table of the full clip), so the audio
 * vector is exactly the contrastive representation its training loss used (mean of the
 * normalised visible tokens of the audio contrastive stream); the frame is embedded unmasked
 * (mean of its tokens). Segments must sit on whole patch columns (start and L multiples of 16).
 *
 * Per-pair labels for class-match@1 come from the manifest entries' `pair_labels` or
 * `pair_digits` lists (the multi-digit AV-digits set writes `pair_digits`).
 */
import { readFileSync, statSync } from 'node:fs';
import { Tape } from '../autograd/tape.js';
import { MAX_DATAFILE_BYTES, type Dataset } from '../data/datafile.js';
import { SYNC_PAIRS, SYNC_SPECTROGRAM_ROWS, segmentBounds } from '../data/sync.js';
import { MEL_BINS, variantTraits, type CAVMAE } from '../models/index.js';
import { ActivationPool } from '../tensor/pool.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError, fileError } from '../util/errors.js';
import {
  FeatureRows,
  clipSource,
  failureCollector,
  type FeatureRunOptions,
  type PairFeatureSet,
} from './features.js';
import { l2NormalizeRows } from './retrieval.js';

/** The clip-level CAV-MAE segment protocol's geometry (see the contract). */
export interface SegmentGeometry {
  /** Segment length in fbank rows. */
  segmentLength: number;
  pairs: number;
  /** Audio patch grid of the model: 8 frequency rows x `cols` time columns. */
  cols: number;
  /** First time column of each pair's segment. */
  firstCol: number[];
  /** Visible audio patches per segment (8 x L/16) and the mask ratio that keeps exactly them. */
  keep: number;
  maskRatio: number;
}

export function segmentGeometry(model: CAVMAE, segmentLength: number, pairs = SYNC_PAIRS): SegmentGeometry {
  const c = model.config;
  const p = c.patch_size;
  const T = c.audio_length;
  const fRows = MEL_BINS / p;
  const cols = T / p;
  if (!(Number.isInteger(segmentLength) && segmentLength > 0 && segmentLength % p === 0))
    throw new UserError(
      `segment length must be a positive multiple of the patch size ${p}, got ${segmentLength}`,
    );
  if (T > SYNC_SPECTROGRAM_ROWS)
    throw new UserError(
      `segment-level retrieval: the model's audio_length ${T} exceeds the ${SYNC_SPECTROGRAM_ROWS}-row clip`,
    );
  const firstCol: number[] = [];
  for (let k = 0; k < pairs; k++) {
    const [s, e] = segmentBounds(k, segmentLength, pairs);
    if (e > T)
      throw new UserError(
        `segment-level retrieval: segment ${k} (rows ${s}..${e}) lies outside the model's ${T}-row input; a clip-level CAV-MAE needs audio_length ${SYNC_SPECTROGRAM_ROWS} (the clip the segments are cut from)`,
      );
    if (s % p !== 0)
      throw new UserError(
        `segment-level retrieval: segment ${k} starts at row ${s}, not on a ${p}-row patch column (use a segment length L with L/2 a multiple of ${p})`,
      );
    firstCol.push(s / p);
  }
  const N = fRows * cols;
  const keep = fRows * (segmentLength / p);
  const maskRatio = 1 - keep / N;
  if (Math.trunc(N * (1 - maskRatio)) !== keep)
    throw new Error(`segment mask: ratio ${maskRatio} does not keep ${keep} of ${N} patches`);
  return { segmentLength, pairs, cols, firstCol, keep, maskRatio };
}

/**
 * Segment features of a clip-level CAV-MAE (see the contract): audio [n, F, D] from each
 * segment's own patches in place, video [n, F, D] from each unmasked frame.
 */
export async function cavmaeSegmentFeatures(
  model: CAVMAE,
  dataset: Dataset,
  o: FeatureRunOptions & { segmentLength?: number; pairs?: number } = {},
): Promise<
  Required<Pick<PairFeatureSet, 'audio' | 'video'>> & PairFeatureSet & { geometry: SegmentGeometry }
> {
  const c = model.config;
  const vt = variantTraits(c);
  if (
    !model.dims.hasAudio ||
    !model.dims.hasVideo ||
    !(vt.contrastive && vt.contrastWeight > 0) ||
    model.dims.framesPerClip > 1
  )
    throw new UserError(
      `segment-level retrieval needs a model with both contrastive streams (variant cavmae or cav), got "${c.variant}"`,
    );
  const F = o.pairs ?? SYNC_PAIRS;
  const g = segmentGeometry(model, o.segmentLength ?? 96, F);
  const T = c.audio_length;
  const S = c.img_size;
  const D = c.embed_dim;
  const L = g.segmentLength;
  const N = (MEL_BINS / c.patch_size) * g.cols;
  const chunk = Math.max(1, Math.floor(o.batchPairs ?? 32));
  const { failures, report } = failureCollector(o);
  const audio = new FeatureRows(F, D);
  const video = new FeatureRows(F, D);
  const ids: string[] = [];
  const indices: number[] = [];
  const pool = new ActivationPool();
  const segRow = L * MEL_BINS;
  const vRow = 3 * S * S;
  const aIn = new Float32Array(chunk * T * MEL_BINS);
  const noise = new Float32Array(chunk * N);
  for await (const b of clipSource(dataset, { segmentLength: L, pairs: F, imageSize: S }, o, report)) {
    const P = b.n * F;
    const outA = new Float32Array(P * D);
    const outV = new Float32Array(P * D);
    for (let p0 = 0; p0 < P; p0 += chunk) {
      const n = Math.min(chunk, P - p0);
      aIn.fill(0);
      noise.fill(1);
      for (let r = 0; r < n; r++) {
        const k = (p0 + r) % F; // pair index within its clip
        const start = g.firstCol[k] * c.patch_size;
        // Rows [start, start + L) of the clip hold the segment; the rest is never seen (masked).
        aIn.set(b.audio.subarray((p0 + r) * segRow, (p0 + r + 1) * segRow), (r * T + start) * MEL_BINS);
        for (let f = 0; f < MEL_BINS / c.patch_size; f++)
          for (let t = g.firstCol[k]; t < g.firstCol[k] + L / c.patch_size; t++)
            noise[r * N + f * g.cols + t] = 0;
      }
      const tp = new Tape({ grad: false, bf16: o.bf16 ?? false, pool });
      const out = model.forward(
        tp,
        {
          audio: new Tensor([n, T, MEL_BINS], aIn.subarray(0, n * T * MEL_BINS)),
          image: new Tensor([n, 3, S, S], b.image.subarray(p0 * vRow, (p0 + n) * vRow)),
        },
        {
          maskRatioA: g.maskRatio,
          maskRatioV: 0,
          maskMode: 'unstructured',
          noiseA: noise.subarray(0, n * N),
          rng: new Rng(0),
          maeLossWeight: 0,
          contrastLossWeight: 1,
        },
      );
      if (!out.audioRep || !out.videoRep || out.maskA?.lenKeep !== g.keep)
        throw new Error('segment features: the masked forward did not keep the segment patches');
      outA.set(l2NormalizeRows(out.audioRep.data, n, D), p0 * D);
      outV.set(l2NormalizeRows(out.videoRep.data, n, D), p0 * D);
      tp.reset();
    }
    audio.push(outA, b.n);
    video.push(outV, b.n);
    ids.push(...b.ids);
    indices.push(...b.indices);
    o.onBatch?.(indices.length + failures.length, dataset.items.length);
  }
  if (indices.length === 0) throw fileError(dataset.path, 'no clip could be read');
  return { audio: audio.done(), video: video.done(), ids, indices, failures, geometry: g };
}

/**
 * Per-pair class indices from the manifest entries' `pair_labels` (or `pair_digits`), [n·F] for
 * the given clips; undefined when the file is not a manifest or some entry has no such list.
 */
export function readPairLabels(
  dataset: Dataset,
  indices: readonly number[],
  pairs: number,
): Int32Array | undefined {
  if (dataset.format !== 'manifest') return undefined;
  const size = statSync(dataset.path).size;
  if (size > MAX_DATAFILE_BYTES)
    throw fileError(
      dataset.path,
      `is ${size} bytes, more than the ${MAX_DATAFILE_BYTES}-byte datafile limit`,
    );
  let entries: unknown;
  try {
    entries = (JSON.parse(readFileSync(dataset.path, 'utf8')) as { items?: unknown }).items;
  } catch (e) {
    throw fileError(dataset.path, `not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(entries) || entries.length !== dataset.items.length) return undefined;
  const classOf = new Map<string, number>();
  const out = new Int32Array(indices.length * pairs);
  for (let r = 0; r < indices.length; r++) {
    const e = entries[indices[r]] as Record<string, unknown> | null;
    const list = e && typeof e === 'object' ? (e.pair_labels ?? e.pair_digits) : undefined;
    if (list === undefined) return undefined;
    if (
      !Array.isArray(list) ||
      list.length !== pairs ||
      !list.every((x) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x)))
    )
      throw fileError(
        dataset.path,
        `items entry ${indices[r]}: "pair_labels"/"pair_digits" must list ${pairs} labels (strings or numbers)`,
      );
    for (let k = 0; k < pairs; k++) {
      const key = String(list[k]);
      if (!classOf.has(key)) classOf.set(key, classOf.size);
      out[r * pairs + k] = classOf.get(key)!;
    }
  }
  return out;
}
