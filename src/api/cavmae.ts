/**
 * `CavMae`: the typed inference API over one loaded checkpoint (pretrained CAVMAE or
 * fine-tuned CAVMAEFT): embed audio, images and videos, classify, retrieve, localise,
 * reconstruct.
 *
 * Design contract:
 * - `CavMae.load(path)` reads `.pth` or `.safetensors` (src/models/registry.ts) and takes the
 *   preprocessing from the checkpoint: sizes from the model config (`audio_length`, `img_size`),
 *   the fbank (mean, std) and image normalisation from its "cavmae.preprocess" metadata when
 *   present (else the reference's AudioSet / ImageNet constants). Inputs are prepared exactly as
 *   the evaluation loader prepares them (./inputs.ts).
 * - Embeddings are `forward_feat` tokens (no masking) of each modality on its own: the audio and
 *   visual streams do not interact in forward_feat, so one modality never pays for the other.
 *   `pooled` = mean over tokens, L2-normalised (spec 5). Tokens are [L, D]; audio tokens are
 *   laid out (frequency row f, time column t) → f·(T/16) + t.
 * - Every forward runs on a gradient-free tape (optionally bf16 GEMMs); results are copied out of
 *   the activation pool, so the returned arrays belong to the caller.
 * - Classification (CAVMAEFT): logits → sigmoid (multi-label, BCE-trained) or softmax (CE) →
 *   for a video the probabilities averaged over its 10 reference frames (spec 4.6 frame
 *   aggregation; audio-only modes use no frame). Class names from a label CSV or the checkpoint.
 * - Localisation (spec 6.2) and reconstruction (spec 6.1) are the pure functions of
 *   src/eval/localize.ts and src/eval/reconstruct.ts applied to this model's outputs.
 */
import { loadLabelCsv, type LabelMap } from '../data/datafile.js';
import { withFile } from '../io/bytes.js';
import { readSafetensorsHeader } from '../io/safetensors.js';
import { loadModel, type AnyModel } from '../models/index.js';
import { CavMaeReconstruction } from './reconstruct.js';
import type { LoadOptions } from './model.js';

export { FINETUNE_METADATA, labelsFromMetadata, activationFromMetadata } from './model.js';
export type { LoadOptions, ClipInput, Capabilities } from './model.js';
export type { Embedding, EmbedOptions, VideoEmbedding } from './embed.js';
export type { ClassLabel, ClassifyOptions, Classification } from './classify.js';
export type { LocalizeOptions, LocalizeResult } from './localize.js';
export type { ReconstructOptions, Reconstruction } from './reconstruct.js';
export { l2Normalize, rankBySimilarity, type RankedMatch } from './similarity.js';

/**
 * The inference API over one checkpoint. Its capabilities are layers of one class chain, a file
 * each: load/config and tokens (./model.ts) → embed (./embed.ts) → classify (./classify.ts) →
 * localize (./localize.ts) → reconstruct (./reconstruct.ts) → this class.
 */
export class CavMae extends CavMaeReconstruction {
  /** Loads a `.pth` or `.safetensors` checkpoint. */
  static async load(path: string, opts: LoadOptions = {}): Promise<CavMae> {
    const { model, format } = loadModel(path, {
      config: opts.config,
      overrides: opts.overrides,
      grad: false,
    });
    let metadata: Record<string, string> = {};
    if (format === 'safetensors') metadata = withFile(path, (src) => readSafetensorsHeader(src)).metadata;
    const labels = opts.labels ? loadLabelCsv(opts.labels) : undefined;
    return new CavMae(model, metadata, {
      source: path,
      bf16: opts.bf16,
      int8: opts.int8,
      labels,
      audioNorm: opts.audioNorm,
    });
  }

  /** Wraps a model already in memory (training loops, tests). */
  static fromModel(
    model: AnyModel,
    opts: {
      name?: string;
      metadata?: Record<string, string>;
      bf16?: boolean;
      int8?: boolean;
      labels?: LabelMap;
      audioNorm?: { mean: number; std: number };
    } = {},
  ): CavMae {
    return new CavMae(model, opts.metadata ?? {}, {
      source: opts.name ?? 'model',
      bf16: opts.bf16,
      int8: opts.int8,
      labels: opts.labels,
      audioNorm: opts.audioNorm,
    });
  }
}
