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
import { clipStrategyOf, fineTuneMeta, FT_META } from '../eval/embed.js';
import type { ClipStrategy } from '../eval/retrieval.js';
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
import { unpackWeightsInt8 } from '../kernels/fused.js';
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
  isFbankInput,
  type OpenedMedia,
} from './inputs.js';
import { cropAllSegments, SYNC_SPECTROGRAM_ROWS } from '../data/sync-segments.js';

export { CLIP_STRATEGY_METADATA } from '../eval/embed.js';

/** Metadata keys a fine-tuning run stores with its model. */
export const FINETUNE_METADATA = FT_META;

export interface LoadOptions {
  /** bf16 GEMM inputs with fp32 accumulation (faster on CPUs with AVX-512 BF16). */
  bf16?: boolean;
  /**
   * int8 inference: linear layers as u8 x s8 GEMMs (weights per output channel, activations per
   * row; AVX512-VNNI), attention in int8 as well. The fastest mode; embeddings keep a cosine
   * >= 0.9999 to fp32 (docs/performance.md, Precision). Takes precedence over bf16. With
   * `CavMae.load`, the linear layers' weights are quantised as the checkpoint is read and held in
   * int8 only (a quarter of the memory; no fp32 copy): such a model runs int8 inference only.
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
  /** Sync models: the clip strategy (default: the one the checkpoint records, else diagonal_mean). */
  strategy?: ClipStrategy;
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
  /**
   * How two clips compare: 'pooled' (CAV-MAE: one vector per clip) or, for a Sync model, the
   * clip strategy its pretraining validated with (metadata CLIP_STRATEGY_METADATA, default
   * diagonal_mean: src/eval/retrieval.ts).
   */
  readonly clipStrategy: ClipStrategy | 'pooled';

  protected constructor(
    model: AnyModel,
    readonly metadata: Record<string, string>,
    opts: {
      source: string;
      bf16?: boolean;
      int8?: boolean;
      labels?: LabelMap;
      audioNorm?: { mean: number; std: number };
      strategy?: ClipStrategy;
    },
  ) {
    this.model = model;
    this.source = opts.source;
    this.bf16 = opts.bf16 ?? false;
    this.int8 = opts.int8 ?? false;
    if (model.arena.int8 && !this.int8)
      throw new UserError(
        `${opts.source}: the model holds its linear layers in int8 only (built for int8 inference): use it with int8: true, or load it without int8 for fp32 / bf16`,
      );
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
    this.clipStrategy = kindTraits(c).sync ? clipStrategyOf(metadata, opts.source, opts.strategy) : 'pooled';
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

  /** A CAV-MAE Sync model: inputs are (segment, frame) pairs, `pairs` of them per clip. */
  get isSync(): boolean {
    return kindTraits(this.config).sync;
  }

  /** (Segment, frame) pairs per clip: total_frame for Sync, 1 for CAV-MAE. */
  get pairs(): number {
    return this.model.dims.framesPerClip;
  }

  get isFineTuned(): boolean {
    return this.model instanceof CAVMAEFT;
  }

  get capabilities(): Capabilities {
    const m = this.model;
    const { hasAudio, hasVideo } = m.encoder.dims;
    // A Sync fine-tuning model gives clip logits only (its forward_feat is refused by the model).
    const feats = !(m instanceof CAVMAEFT && m.head === 'aggregator');
    return {
      embedAudio: hasAudio && feats,
      embedVisual: hasVideo && feats,
      classify: m instanceof CAVMAEFT,
      localize: hasAudio && hasVideo && feats,
      reconstruct: m instanceof CAVMAE && m.decoder !== undefined,
    };
  }

  /**
   * sha256 of the config and every parameter: equal ids embed identically. A model loaded for
   * int8 inference holds no fp32 GEMM weights: its id hashes their int8 quantisation (values and
   * scales) instead, so it differs from the fp32 model's (whose embeddings differ slightly).
   */
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
      const arena = this.model.arena;
      const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      h.update(bytes(arena.data));
      if (arena.int8) {
        h.update('int8');
        for (const p of arena.params)
          if (p.int8) {
            // Row-major values whatever the layout held, so the id does not depend on the CPU.
            const n = p.shape[0];
            const q = p.int8.q ?? unpackWeightsInt8(p.int8.packed!, n, p.size / n);
            h.update(bytes(q)).update(bytes(p.int8.scale));
          }
      }
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
    if (this.model instanceof CAVMAEFT && this.model.head === 'aggregator')
      throw new UserError(
        `${this.name}: a fine-tuned CAV-MAE Sync model gives clip logits (classify), not token features (${what}); use its pretrained model`,
      );
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
    if (this.isSync) return this.syncFeatures(modality, x, B).tokens;
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

  /**
   * A Sync model's forward_feat of B inputs of one modality (segments [B, L, 128] or frames
   * [B, 3, S, S]), as the model computes it (src/models/cavmae.ts: the contrastive stream):
   * `tokens` the patch tokens [B, Lm, D] (global token and registers removed), `global` the
   * global tokens [B, D] (cls_token models only). Copies.
   */
  syncFeatures(
    modality: 'a' | 'v',
    x: Float32Array,
    B: number,
  ): { tokens: Float32Array; global?: Float32Array } {
    this.requireModality(modality, 'embedding');
    const c = this.config;
    const tp = this.tape();
    const f = (this.model as CAVMAE).forwardFeat(
      tp,
      modality === 'a'
        ? { audio: new Tensor([B, c.audio_length, MEL_BINS], x) }
        : { image: new Tensor([B, 3, c.img_size, c.img_size], x) },
      modality,
    );
    const tokens = modality === 'a' ? f.audioTokens! : f.videoTokens!; // [B, Lm, D]
    const global = modality === 'a' ? f.clsA : f.clsV; // [B, D]
    const out = { tokens: tokens.data.slice(), global: global?.data.slice() };
    tp.reset();
    return out;
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
   * A Sync model's audio: the clip's fbank padded or cut to the 1024-row spectrogram and cut into
   * its F frame-aligned segments of audio_length rows (src/data/sync-segments.ts, as the
   * retrieval clips of src/data/sync.ts), [F, L, 128]. A normalized fbank of exactly one
   * segment ([L, 128]) is one pair, of F segments ([F, L, 128]) the F pairs as given; a
   * normalized [1024, 128] clip gives its F segments.
   */
  async prepareSyncAudio(input: AudioInput, what?: string): Promise<{ audio: Float32Array; pairs: number }> {
    const L = this.config.audio_length;
    if (isFbankInput(input) && input.normalized && input.fbank.length === L * MEL_BINS)
      return { audio: input.fbank, pairs: 1 };
    if (isFbankInput(input) && input.normalized && input.fbank.length === this.pairs * L * MEL_BINS)
      return { audio: input.fbank, pairs: this.pairs };
    const clip = (await prepareAudio(input, this.clipPreprocessing, what)).audio; // [1024, 128]
    return { audio: cropAllSegments(clip, L, this.pairs), pairs: this.pairs };
  }

  /** Preprocessing of a Sync model's whole-clip spectrogram (1024 rows, cut into segments). */
  protected get clipPreprocessing(): Preprocessing {
    return { ...this.preprocessing, audioLength: SYNC_SPECTROGRAM_ROWS };
  }

  /** The F frames of a video a Sync model pairs with its segments (all, or `only` of them). */
  protected async syncFrames(
    m: OpenedMedia,
    only?: readonly number[],
    displaySize?: number,
  ): Promise<PreparedImage[]> {
    const F = this.pairs;
    return videoFrames(m, only ?? [...Array(F).keys()], this.preprocessing, displaySize, F);
  }

  /**
   * Resolves a Sync clip (see SyncClip): a video gives its F segments and F frames, an audio file
   * its F segments, an image one frame; `{audio, image}` each on its own (a video as the image
   * gives its F frames, as does a [F, 3, S, S] tensor).
   */
  protected async resolveSyncClip(
    input: MediaSource | ClipInput,
    opts: { needAudio: boolean; needVisual: boolean; displaySize?: number },
  ): Promise<SyncClip> {
    const fromMedia = async (m: OpenedMedia, audio: boolean): Promise<SyncClip> => {
      const out: SyncClip = { audioPairs: 0, images: [] };
      if (audio && opts.needAudio && m.kind !== 'image' && m.hasAudio) {
        const clip = (await audioFromMedia(m, this.clipPreprocessing)).audio;
        out.audio = cropAllSegments(clip, this.config.audio_length, this.pairs);
        out.audioPairs = this.pairs;
      }
      if (opts.needVisual && m.kind === 'video')
        out.images = await this.syncFrames(m, undefined, opts.displaySize);
      else if (opts.needVisual && m.kind === 'image')
        out.images = [await imageFromMedia(m, this.preprocessing, MIDDLE_FRAME, opts.displaySize)];
      return out;
    };
    if (isMediaSource(input)) return withMedia(input, (m) => fromMedia(m, true));
    if (typeof input !== 'object' || input === null || ArrayBuffer.isView(input))
      throw new UserError('expected a media file, its bytes, or { audio, image }');
    const out: SyncClip = { audioPairs: 0, images: [] };
    if (opts.needAudio && input.audio !== undefined) {
      const a = await this.prepareSyncAudio(input.audio, 'audio');
      [out.audio, out.audioPairs] = [a.audio, a.pairs];
    }
    if (opts.needVisual && input.image !== undefined) {
      const img = input.image;
      const frameSize = 3 * this.config.img_size ** 2;
      if (isMediaSource(img)) out.images = (await withMedia(img, (m) => fromMedia(m, false))).images;
      else if (img instanceof Float32Array && this.pairs > 1 && img.length === this.pairs * frameSize)
        // F model-ready frames [F, 3, S, S], pair k's frame at row k.
        out.images = await Promise.all(
          Array.from({ length: this.pairs }, (_, k) =>
            prepareImage(img.subarray(k * frameSize, (k + 1) * frameSize), this.preprocessing, {
              what: 'image',
              displaySize: opts.displaySize,
            }).then((p) => ({ ...p, frame: k })),
          ),
        );
      else
        out.images = [
          await prepareImage(img, this.preprocessing, { what: 'image', displaySize: opts.displaySize }),
        ];
    }
    return out;
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

/**
 * A Sync model's clip, resolved: audio as `audioPairs` segments [P, L, 128] (P = F for a clip,
 * 1 for one model-ready segment) and the frames (F of a video, one of an image).
 */
export interface SyncClip {
  audio?: Float32Array;
  audioPairs: number;
  images: PreparedImage[];
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
