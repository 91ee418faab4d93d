/**
 * Retrieval reports of any model of the family: `cavmae retrieval` and the validation of training
 * runs. Clip level: one vector per clip and modality (CAV-MAE, "pooled") or F pair vectors per
 * clip compared by a clip strategy (Sync, default diagonal_mean); segment level: every (clip,
 * pair) an item of its own (src/eval/segments.ts). All go through `evaluateRetrieval`
 * (src/eval/retrieval.ts): ranks count only the candidates scoring strictly higher than the true
 * pair (ties favour the pair), both directions.
 *
 * Clip-level class-match@1 uses each item's first label (pooled; every item labelled) or the
 * item's label when every clip has exactly one (pair vectors: a multi-digit clip has no single
 * class); segment level uses the manifest's per-pair labels.
 */
import {
  buildLabelMap,
  loadDataset,
  loadLabelCsv,
  resolveLabels,
  type Dataset,
  type LabelMap,
} from '../data/datafile.js';
import { SYNC_PAIRS } from '../data/sync.js';
import { CAVMAEFT, kindTraits, type AnyModel, type CAVMAE } from '../models/index.js';
import { UserError } from '../util/errors.js';
import { chanceLevels, loadInferenceModel, retrievalReport, type RetrievalReport } from './embed.js';
import {
  datasetFeatures,
  type ClipFeatures,
  type FeatureRunOptions,
  type PairFeatureSet,
} from './features.js';
import { CLIP_STRATEGIES, evaluateRetrieval, type ClipStrategy, type RetrievalMetrics } from './retrieval.js';
import { cavmaeSegmentFeatures, readPairLabels } from './segments.js';

/** Class index of every item when each has exactly one label (else undefined). */
export function singleLabels(
  dataset: Dataset,
  indices: readonly number[],
  labelMap?: LabelMap,
): Int32Array | undefined {
  const items = indices.map((i) => dataset.items[i]);
  if (!items.every((it) => it.labels.length === 1)) return undefined;
  const map = labelMap ?? buildLabelMap(dataset);
  const all = resolveLabels(dataset, map);
  return Int32Array.from(indices, (i) => all[i][0]);
}

export type RetrievalLevel = 'clip' | 'segment';

/** A retrieval report of any model at either level (a superset of the pooled CAV-MAE report). */
export interface LevelRetrievalReport {
  level: RetrievalLevel;
  /** Items ranked: clips (clip level) or clips x pairs (segment level). */
  n: number;
  clips: number;
  /** Pairs per clip (1 for the pooled CAV-MAE clip protocol). */
  pairs: number;
  dim: number;
  strategy: ClipStrategy | 'pooled';
  /** How the vectors were made (one sentence). */
  protocol: string;
  segmentLength?: number;
  tieRule: 'strict';
  chance: RetrievalReport['chance'];
  audioToVideo: RetrievalMetrics;
  videoToAudio: RetrievalMetrics;
  /** Clips left out as unreadable. */
  skipped: number;
}

function bothSides(f: PairFeatureSet): [ClipFeatures, ClipFeatures] {
  if (!f.audio || !f.video)
    throw new UserError('retrieval needs both audio and video features (this model has one modality)');
  return [f.audio, f.video];
}

/** Clip-level retrieval from pair features (strategy over the F x F pair similarities). */
export function clipLevelReport(
  f: PairFeatureSet,
  strategy: ClipStrategy,
  labels: Int32Array | undefined,
  protocol: string,
): LevelRetrievalReport {
  const [audio, video] = bothSides(f);
  const r = evaluateRetrieval(audio, video, { strategy, labels });
  return {
    level: 'clip',
    n: audio.n,
    clips: audio.n,
    pairs: audio.frames,
    dim: audio.dim,
    strategy,
    protocol,
    tieRule: 'strict',
    chance: chanceLevels(audio.n, labels),
    audioToVideo: r.audioToVideo,
    videoToAudio: r.videoToAudio,
    skipped: f.failures.length,
  };
}

/** Segment-level retrieval from pair features: every (clip, pair) one item, pooled cosine. */
export function segmentLevelReport(
  f: PairFeatureSet,
  labels: Int32Array | undefined,
  protocol: string,
  segmentLength: number,
): LevelRetrievalReport {
  const [audio, video] = bothSides(f);
  const n = audio.n * audio.frames;
  const D = audio.dim;
  const r = evaluateRetrieval({ data: audio.data, n, dim: D }, { data: video.data, n, dim: D }, { labels });
  return {
    level: 'segment',
    n,
    clips: audio.n,
    pairs: audio.frames,
    dim: D,
    strategy: 'pooled',
    protocol,
    segmentLength,
    tieRule: 'strict',
    chance: chanceLevels(n, labels),
    audioToVideo: r.audioToVideo,
    videoToAudio: r.videoToAudio,
    skipped: f.failures.length,
  };
}

export const SYNC_PROTOCOL =
  'CAV-MAE Sync pair features: forward_feat (no masking) of each (segment, frame) pair, global tokens (patch-token means without them), L2-normalised';
export const CAVMAE_SEGMENT_PROTOCOL =
  "clip-level CAV-MAE: each segment's own patches kept visible at their place in the clip (everything else masked), mean of the normalised audio contrastive-stream tokens; frames unmasked, mean of their tokens";

/** Segment-level retrieval of a Sync model (its pair features) or a clip-level CAV-MAE (segments in place). */
export async function segmentRetrieval(
  model: CAVMAE,
  dataset: Dataset,
  o: FeatureRunOptions & { segmentLength?: number } = {},
): Promise<LevelRetrievalReport> {
  if (kindTraits(model.config).sync) {
    const L = model.config.audio_length;
    if (o.segmentLength !== undefined && o.segmentLength !== L)
      throw new UserError(
        `--segment-length ${o.segmentLength}: this Sync model was built for ${L}-row segments`,
      );
    const f = await datasetFeatures(model, dataset, o);
    return segmentLevelReport(f, readPairLabels(dataset, f.indices, f.audio!.frames), SYNC_PROTOCOL, L);
  }
  const f = await cavmaeSegmentFeatures(model, dataset, o);
  return segmentLevelReport(
    f,
    readPairLabels(dataset, f.indices, f.audio.frames),
    CAVMAE_SEGMENT_PROTOCOL,
    f.geometry.segmentLength,
  );
}

export interface RetrievalCommandOptions {
  model?: string;
  data?: string;
  embeddings?: string;
  config?: string;
  labelCsv?: string;
  strategy?: string;
  segments?: boolean;
  segmentLength?: number;
  batchSize?: number;
  workers?: number;
  bf16?: boolean;
}

function checkStrategy(s: string | undefined): ClipStrategy | 'pooled' | undefined {
  if (s === undefined || s === 'pooled' || (CLIP_STRATEGIES as readonly string[]).includes(s))
    return s as ClipStrategy | 'pooled' | undefined;
  throw new UserError(`--strategy must be one of pooled, ${CLIP_STRATEGIES.join(', ')}; got "${s}"`);
}

function pooledAsLevel(r: RetrievalReport): LevelRetrievalReport {
  return {
    level: 'clip',
    clips: r.n,
    pairs: 1,
    protocol:
      'CAV-MAE: forward_feat (no masking) of the whole clip and the middle frame, token means, L2-normalised',
    skipped: 0,
    ...r,
  };
}

/**
 * `cavmae retrieval` for every model kind: pooled clip vectors (CAV-MAE), clip-level strategies
 * (Sync, default diagonal_mean), or `segments` (both, see the contract).
 */
export async function retrievalCommand(o: RetrievalCommandOptions): Promise<LevelRetrievalReport> {
  const strategy = checkStrategy(o.strategy);
  const perFrame = strategy !== undefined && strategy !== 'pooled';
  if (o.embeddings) {
    if (o.model || o.data)
      throw new UserError('--embeddings replaces --model and --data; pass one or the other');
    if (o.segments)
      throw new UserError(
        '--segments needs --model and --data (embeddings files hold one pooled vector per clip)',
      );
    if (perFrame)
      throw new UserError(
        `--strategy ${strategy}: per-frame clip strategies need CAV-MAE Sync embeddings; an embeddings file holds one pooled vector per clip (use --strategy pooled)`,
      );
    return pooledAsLevel(await retrievalReport(o));
  }
  if (!o.model || !o.data)
    throw new UserError(
      'retrieval needs --model <checkpoint> and --data <datafile> (or --embeddings <file>)',
    );
  const m = loadInferenceModel(o.model, { config: o.config });
  const model: AnyModel = m.model;
  if (kindTraits(model.config).head === 'aggregator')
    throw new UserError(
      `${o.model}: is a CAV-MAE Sync fine-tuning (classification) model; retrieval needs the pretraining model (class CAVMAESync)`,
    );
  const dataset = loadDataset(o.data);
  const labelMap = o.labelCsv ? loadLabelCsv(o.labelCsv) : undefined;
  const run: FeatureRunOptions = {
    bf16: o.bf16,
    audioNorm: m.audioNorm,
    clipsPerBatch: o.batchSize ? Math.max(1, Math.ceil(o.batchSize / SYNC_PAIRS)) : undefined,
    batchPairs: o.batchSize,
  };
  if (o.segments) {
    if (perFrame)
      throw new UserError(
        `--strategy ${strategy}: segment-level retrieval compares single pairs (pooled cosine); leave --strategy out`,
      );
    if (model instanceof CAVMAEFT)
      throw new UserError(
        `${o.model}: segment-level retrieval needs a pretraining model (CAVMAE or CAVMAESync), not a fine-tuned classifier`,
      );
    return segmentRetrieval(model, dataset, { ...run, segmentLength: o.segmentLength });
  }
  if (o.segmentLength !== undefined) throw new UserError('--segment-length applies to --segments only');
  const F = model.dims.framesPerClip;
  if (F > 1) {
    if (strategy === 'pooled')
      throw new UserError(
        `--strategy pooled: a CAV-MAE Sync model gives ${F} pair vectors per clip; use ${CLIP_STRATEGIES.join(', ')} (default diagonal_mean)`,
      );
    const f = await datasetFeatures(model, dataset, run);
    return clipLevelReport(
      f,
      strategy ?? 'diagonal_mean',
      singleLabels(dataset, f.indices, labelMap),
      SYNC_PROTOCOL,
    );
  }
  if (perFrame)
    throw new UserError(
      `--strategy ${strategy}: per-frame clip strategies need CAV-MAE Sync embeddings; CAV-MAE models give one pooled vector per clip (use --strategy pooled)`,
    );
  return pooledAsLevel(await retrievalReport(o, m));
}

export function formatLevelRetrieval(r: LevelRetrievalReport): string {
  const p = (x: number): string => x.toFixed(3);
  const cls = r.chance.classMatchAt1 !== undefined;
  const rank = 'rank = number of candidates scoring strictly higher than the true pair';
  const what =
    r.level === 'segment'
      ? `${r.n} segments (${r.clips} clips x ${r.pairs} pairs, ${r.segmentLength}-row segments), pooled ${r.dim}-d cosine`
      : `${r.clips} clips (${r.pairs} pair vectors each, ${r.dim}-d, clip similarity ${r.strategy})`;
  const lines =
    r.level === 'clip' && r.pairs === 1
      ? [`retrieval over ${r.n} clips (pooled ${r.dim}-d embeddings, cosine similarity; ${rank})`]
      : [`${r.level}-level retrieval over ${what}; ${rank}`, `vectors: ${r.protocol}`];
  lines.push(`direction  R@1    R@5    R@10   MedR${cls ? '    class@1' : ''}`);
  const row = (name: string, m: RetrievalReport['chance']): string =>
    `${name.padEnd(9)}  ${p(m.r1)}  ${p(m.r5)}  ${p(m.r10)}  ${m.medianRank.toFixed(1).padStart(5)}${cls ? `   ${p(m.classMatchAt1!)}` : ''}`;
  lines.push(row('A->V', r.audioToVideo), row('V->A', r.videoToAudio), row('chance', r.chance));
  if (cls)
    lines.push(
      r.level === 'segment'
        ? "class@1: share of queries whose top-1 candidate has the query pair's label"
        : "class@1: share of queries whose top-1 candidate has the query's label",
    );
  if (r.skipped) lines.push(`${r.skipped} unreadable clip(s) left out`);
  return lines.join('\n');
}
