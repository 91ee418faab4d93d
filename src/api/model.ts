/**
 * The core of `CavMae` (./cavmae.ts): one loaded checkpoint with its preprocessing, config,
 * capabilities and identity, and the forward_feat tokens of one modality that every capability
 * builds on. The capabilities are layers of one class chain (./embed.ts, ./classify.ts,
 * ./localize.ts, ./reconstruct.ts), so their methods keep `this` and read as before.
 */
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { FrozenWeights, Tape } from '../autograd/tape.js';
import type { LabelMap } from '../data/datafile.js';
import { fineTuneMeta, FT_META } from '../eval/embed.js';
import { checkpointPreprocess, DEFAULT_PREPROCESS } from '../io/checkpoint.js';
import {
  CAVMAE,
  CAVMAEFT,
  configToJson,
  kindTraits,
  variantTraits,
  type AnyModel,
  type CavmaeConfig,
} from '../models/index.js';
import { runBlocks } from '../nn/block.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError, fileError } from '../util/errors.js';
import {
  imageFromMedia,
  isMediaSource,
  MEL_BINS,
  MIDDLE_FRAME,
  prepareAudio,
  prepareImage,
  videoFrames,
  withMedia,
  type AudioInput,
  type ImageInput,
  type MediaSource,
  type PreparedImage,
  type Preprocessing,
  audioFromMedia,
} from './inputs.js';

/** Metadata keys a fine-tuning run stores with its model. */
export const FINETUNE_METADATA = FT_META;

export interface LoadOptions {
  /** bf16 GEMM inputs with fp32 accumulation (faster on CPUs with AVX-512 BF16). */
  bf16?: boolean;
  /**
   * int8 inference: linear layers as u8 x s8 GEMMs (weights per output channel, activations per
   * row; AVX512-VNNI), attention in int8 as well. The fastest mode; embeddings keep a cosine
   * >= 0.9999 to fp32 (docs/performance.md, Precision). Takes precedence over bf16.
   */
  int8?: boolean;
  /** Explicit config (preset name, JSON file or object) for checkpoints without one. */
  config?: string | Record<string, unknown>;
  /** Extra config keys (e.g. { label_dim: 527 }). */
  overrides?: Record<string, unknown>;
  /** Label CSV (index,mid,display_name) naming a fine-tuned model's classes. */
  labels?: string;
  /** Fbank normalisation, overriding the checkpoint's. */
  audioNorm?: { mean: number; std: number };
}

/** Inputs of a classification, a localisation or a reconstruction. */
export interface ClipInput {
  audio?: AudioInput;
  image?: ImageInput;
}

export interface Capabilities {
  embedAudio: boolean;
  embedVisual: boolean;
  classify: boolean;
  localize: boolean;
  reconstruct: boolean;
}

/** The loaded checkpoint, its preprocessing and its one-modality tokens (capabilities: ./cavmae.ts). */
export class CavMaeModel {
  /** Where the weights came from (a path, or a name for an in-memory model). */
  readonly source: string;
  readonly preprocessing: Preprocessing;
  readonly labels?: LabelMap;
  private bf16: boolean;
  private int8: boolean;
  private cachedId?: string;
  /** The weights are fixed once loaded (modelId assumes it too): bf16 copies made once. */
  private readonly frozen = new FrozenWeights();

  readonly model: CAVMAE | CAVMAEFT;

  protected constructor(
    model: AnyModel,
    readonly metadata: Record<string, string>,
    opts: {
      source: string;
      bf16?: boolean;
      int8?: boolean;
      labels?: LabelMap;
      audioNorm?: { mean: number; std: number };
    },
  ) {
    if (kindTraits(model.config).sync)
      throw fileError(
        opts.source,
        `is a ${model.config.model} model; this API serves CAV-MAE models (CAVMAE, CAVMAEFT); CAV-MAE Sync is not supported here yet`,
      );
    this.model = model;
    this.source = opts.source;
    this.bf16 = opts.bf16 ?? false;
    this.int8 = opts.int8 ?? false;
    const c = model.config;
    const pre = checkpointPreprocess(metadata, opts.source) ?? DEFAULT_PREPROCESS;
    // Sizes are the model's own (a checkpoint's preprocess block may carry the defaults).
    this.preprocessing = {
      audioLength: c.audio_length,
      imageSize: c.img_size,
      audioMean: opts.audioNorm?.mean ?? pre.audio.mean,
      audioStd: opts.audioNorm?.std ?? pre.audio.std,
      imageMean: pre.image.mean,
      imageStd: pre.image.std,
    };
    if (!(this.preprocessing.audioStd > 0))
      throw fileError(
        opts.source,
        `audio normalisation std must be positive, got ${this.preprocessing.audioStd}`,
      );
    if (model instanceof CAVMAEFT) {
      const K = c.label_dim!;
      const labels = opts.labels ?? labelsFromMetadata(metadata, opts.source);
      if (labels && labels.numLabels !== K)
        throw new UserError(
          `${labels.source}: ${labels.numLabels} classes, but the model ${opts.source} has ${K} outputs`,
        );
      this.labels = labels;
    }
  }

  get config(): CavmaeConfig {
    return this.model.config;
  }

  /** Embedding width D. */
  get dim(): number {
    return this.model.config.embed_dim;
  }

  get name(): string {
    return basename(this.source);
  }

  get isFineTuned(): boolean {
    return this.model instanceof CAVMAEFT;
  }

  get capabilities(): Capabilities {
    const m = this.model;
    const { hasAudio, hasVideo } = m.encoder.dims;
    return {
      embedAudio: hasAudio,
      embedVisual: hasVideo,
      classify: m instanceof CAVMAEFT,
      localize: hasAudio && hasVideo,
      reconstruct: m instanceof CAVMAE && m.decoder !== undefined,
    };
  }

  /** sha256 of the config and every parameter: equal ids embed identically. */
  get modelId(): string {
    if (!this.cachedId) {
      const h = createHash('sha256');
      h.update(JSON.stringify(configToJson(this.model.config)));
      h.update(
        JSON.stringify([
          this.preprocessing.audioMean,
          this.preprocessing.audioStd,
          this.preprocessing.imageMean,
          this.preprocessing.imageStd,
        ]),
      );
      const data = this.model.arena.data;
      h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.cachedId = h.digest('hex');
    }
    return this.cachedId;
  }

  /** Audio token grid: 8 frequency rows × T/16 time columns. */
  get audioGrid(): { rows: number; cols: number } {
    const p = this.config.patch_size;
    return { rows: MEL_BINS / p, cols: this.config.audio_length / p };
  }

  get visualGrid(): { rows: number; cols: number } {
    const g = this.config.img_size / this.config.patch_size;
    return { rows: g, cols: g };
  }

  protected tape(): Tape {
    return new Tape({ grad: false, bf16: this.bf16, int8: this.int8, frozen: this.frozen });
  }

  protected requireModality(m: 'a' | 'v', what: string): void {
    const d = this.model.encoder.dims;
    if (m === 'a' && !d.hasAudio)
      throw new UserError(`${this.name}: a "${this.config.variant}" model has no audio encoder (${what})`);
    if (m === 'v' && !d.hasVideo)
      throw new UserError(`${this.name}: a "${this.config.variant}" model has no visual encoder (${what})`);
  }

  /**
   * forward_feat tokens of one modality for B inputs: [B, L, D] (a copy). Same computation as
   * CAVMAE.forwardFeat / CAVMAEFT.forwardFeat restricted to one stream.
   */
  tokens(modality: 'a' | 'v', x: Float32Array, B: number): Float32Array {
    this.requireModality(modality, 'embedding');
    const c = this.config;
    const enc = this.model.encoder;
    const tp = this.tape();
    let input: Tensor;
    if (modality === 'a') {
      input = new Tensor([B, c.audio_length, MEL_BINS], x);
      enc.checkInputs(input, undefined, 'audio', { audio: true, video: false });
    } else {
      input = new Tensor([B, 3, c.img_size, c.img_size], x);
      enc.checkInputs(undefined, input, 'image', { audio: false, video: true });
    }
    // av-mae and vanilla-av-mae never train their modality LayerNorms: forward_feat uses the joint ones.
    const joint = this.model instanceof CAVMAE && variantTraits(c).jointFeat;
    const emb = modality === 'a' ? enc.embedAudio(tp, input) : enc.embedVideo(tp, input); // [B, L, D]
    const out = enc.sharedStream(
      tp,
      runBlocks(tp, modality === 'a' ? enc.blocks_a : enc.blocks_v, emb),
      joint ? undefined : modality,
    );
    const copy = out.data.slice();
    tp.reset();
    return copy;
  }

  /** The model's audio input [T, 128] for an audio input (decode, fbank, pad/crop, normalise). */
  async prepareAudio(input: AudioInput, what?: string): Promise<Float32Array> {
    return (await prepareAudio(input, this.preprocessing, what)).audio;
  }

  /** The model's image input [3, S, S] (an image, decoded pixels, a tensor, or a video's frame). */
  async prepareImage(input: ImageInput, opts: { frame?: number; what?: string } = {}): Promise<Float32Array> {
    return (await prepareImage(input, this.preprocessing, opts)).image;
  }

  /**
   * Resolves a clip input: a video file gives frames + soundtrack, an audio file audio, an image
   * file a picture; `{audio, image}` each on its own.
   */
  protected async resolveClip(
    input: MediaSource | ClipInput,
    opts: { frames: number[] | undefined; needAudio: boolean; needVisual: boolean },
  ): Promise<{ audio?: Float32Array; images: PreparedImage[] }> {
    if (isMediaSource(input)) {
      return withMedia(input, async (m) => {
        let audio: Float32Array | undefined;
        let images: PreparedImage[] = [];
        if (opts.needAudio && m.kind !== 'image' && m.hasAudio)
          audio = (await audioFromMedia(m, this.preprocessing)).audio;
        if (opts.needVisual && m.kind === 'video')
          images = await videoFrames(m, opts.frames ?? [MIDDLE_FRAME], this.preprocessing);
        else if (opts.needVisual && m.kind === 'image')
          images = [await imageFromMedia(m, this.preprocessing)];
        return { audio, images };
      });
    }
    if (typeof input !== 'object' || input === null || ArrayBuffer.isView(input))
      throw new UserError('expected a media file, its bytes, or { audio, image }');
    const audio =
      opts.needAudio && input.audio !== undefined ? await this.prepareAudio(input.audio, 'audio') : undefined;
    let images: PreparedImage[] = [];
    if (opts.needVisual && input.image !== undefined) {
      const img = input.image;
      if (isMediaSource(img)) {
        images = await withMedia(img, async (m) =>
          m.kind === 'video'
            ? videoFrames(m, opts.frames ?? [MIDDLE_FRAME], this.preprocessing)
            : [await imageFromMedia(m, this.preprocessing)],
        );
      } else images = [await prepareImage(img, this.preprocessing, { what: 'image' })];
    }
    return { audio, images };
  }
}

/** The parts one after another. */
export function concat(parts: readonly Float32Array[]): Float32Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Float32Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Class names stored by a fine-tuning run ({"mids": [...], "names": [...]}), if any. */
export function labelsFromMetadata(metadata: Record<string, string>, what: string): LabelMap | undefined {
  return fineTuneMeta(metadata, what).labelMap;
}

/** sigmoid for BCE-trained (multi-label) models, softmax for CE-trained ones; sigmoid when unknown. */
export function activationFromMetadata(metadata: Record<string, string>): 'sigmoid' | 'softmax' {
  return metadata[FINETUNE_METADATA.loss] === 'ce' ? 'softmax' : 'sigmoid';
}
