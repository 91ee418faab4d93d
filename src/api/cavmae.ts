/**
 * `CavMae`: the typed inference API over one loaded checkpoint of the model family (pretrained
 * CAVMAE or fine-tuned CAVMAEFT, CAV-MAE or CAV-MAE Sync): embed audio, images and videos,
 * classify, retrieve, localise, reconstruct.
 *
 * Design contract:
 * - `CavMae.load(path)` reads `.pth` or `.safetensors` (src/models/registry.ts) and takes the
 *   preprocessing from the checkpoint: sizes from the model config (`audio_length`, `img_size`),
 *   the fbank (mean, std) and image normalisation from its "cavmae.preprocess" metadata when
 *   present (else the reference's AudioSet / ImageNet constants). Inputs are prepared exactly as
 *   the evaluation loader prepares them (./inputs.ts).
 * - Embeddings are `forward_feat` tokens (no masking) of each modality on its own: the audio and
 *   visual streams do not interact in forward_feat, so one modality never pays for the other.
 *   `pooled` = mean over tokens, L2-normalised (docs/reference.md#retrieval). Tokens are [L, D]; audio tokens are
 *   laid out (frequency row f, time column t) → f·(T/16) + t.
 * - Every forward runs on a gradient-free tape (optionally bf16 GEMMs); results are copied out of
 *   the activation pool, so the returned arrays belong to the caller.
 * - Classification (CAVMAEFT): logits → sigmoid (multi-label, BCE-trained) or softmax (CE) →
 *   for a video the probabilities averaged over its 10 reference frames (docs/reference.md#fine-tuning-evaluation frame
 *   aggregation; audio-only modes use no frame). Class names from a label CSV or the checkpoint.
 * - Localisation (docs/reference.md#localisation) and reconstruction (docs/reference.md#inpainting) are the pure functions of
 *   src/eval/localize.ts and src/eval/reconstruct.ts applied to this model's outputs.
 * - CAV-MAE Sync (docs/sync.md, "Sync everywhere"): a clip is F = total_frame (segment, frame)
 *   pairs: the clip's 1024-row fbank cut into F frame-aligned segments of audio_length rows and
 *   F frames spread over the video (src/data/sync-segments.ts). Each segment and each frame is
 *   embedded on its own by forward_feat (the contrastive stream: registers dropped, the global
 *   token the pair vector with cls_token, else the patch-token mean), so an embedding carries
 *   `pairs` [P, D]; clips compare by the model's clip strategy (`clipStrategy`,
 *   `searchVector`). A fine-tuned Sync model classifies whole clips with its aggregator head.
 */
import { loadLabelCsv, type LabelMap } from '../data/datafile.js';
import { withFile } from '../io/bytes.js';
import { readSafetensorsHeader } from '../io/safetensors.js';
import { loadModel, type AnyModel } from '../models/index.js';
import { CavMaeReconstruction } from './reconstruct.js';
import type { ClipStrategy } from '../eval/retrieval.js';
import type { LoadOptions } from './model.js';

export {
  FINETUNE_METADATA,
  CLIP_STRATEGY_METADATA,
  labelsFromMetadata,
  activationFromMetadata,
} from './model.js';
export type { LoadOptions, ClipInput, Capabilities } from './model.js';
export type { Embedding, EmbedOptions, VideoEmbedding } from './embed.js';
export type { ClassLabel, ClassifyOptions, Classification } from './classify.js';
export type { LocalizeOptions, LocalizeResult, LocalizedFrame } from './localize.js';
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
      // int8: the linear layers' weights are quantised as they are read, never held in fp32.
      int8: opts.int8,
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
      strategy: opts.strategy,
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
      strategy?: ClipStrategy;
    } = {},
  ): CavMae {
    return new CavMae(model, opts.metadata ?? {}, {
      source: opts.name ?? 'model',
      bf16: opts.bf16,
      int8: opts.int8,
      labels: opts.labels,
      audioNorm: opts.audioNorm,
      strategy: opts.strategy,
    });
  }
}
