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
import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import { FrozenWeights, Tape } from '../autograd/tape.js';
import { loadLabelCsv, type LabelMap } from '../data/datafile.js';
import {
  heatOverlayPng,
  localizeTokens,
  type AudioQuery,
  type Localization,
  type UpsampleMode,
} from '../eval/localize.js';
import { composePanel, reconstructionViews, type ReconstructionViews } from '../eval/reconstruct.js';
import { withFile } from '../io/bytes.js';
import { checkpointPreprocess, DEFAULT_PREPROCESS } from '../io/checkpoint.js';
import { readSafetensorsHeader } from '../io/safetensors.js';
import {
  CAVMAE,
  CAVMAEFT,
  configToJson,
  FT_MODES,
  loadModel,
  MASK_MODES,
  type AnyModel,
  type CavmaeConfig,
  type FtMode,
  type MaskMode,
} from '../models/index.js';
import { runBlocks } from '../nn/block.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError, fileError } from '../util/errors.js';
import type { RgbImage } from '../vision/image.js';
import {
  audioFromMedia,
  CLIP_FRAMES,
  DISPLAY_SIZE,
  expectKind,
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
  type OpenedMedia,
  type PreparedImage,
  type Preprocessing,
} from './inputs.js';

/** Metadata keys a fine-tuning run stores with its model. */
export const FINETUNE_METADATA = {
  labels: 'cavmae.labels',
  loss: 'cavmae.ft_loss',
  mode: 'cavmae.ft_mode',
} as const;

export interface LoadOptions {
  /** bf16 GEMM inputs with fp32 accumulation (faster on CPUs with AVX-512 BF16). */
  bf16?: boolean;
  /**
   * int8 inference: linear layers as u8 x s8 GEMMs (weights per output channel, activations per
   * row; AVX512-VNNI), attention in bf16. The fastest mode; embeddings keep a cosine >= 0.9999 to
   * fp32 (docs/performance.md, Precision). Takes precedence over bf16.
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

/** One modality's embedding of one input. */
export interface Embedding {
  /** Mean over tokens, L2-normalised, [D]. */
  pooled: Float32Array;
  /** forward_feat tokens [L, D] (when asked for with `tokens: true`). */
  tokens?: Float32Array;
  /** [L, D] of the tokens. */
  shape: [number, number];
  /** Token grid: audio = 8 frequency rows × T/16 time columns; visual = gh × gw patches. */
  grid: { rows: number; cols: number };
}

export interface EmbedOptions {
  /** Also return the unpooled tokens. */
  tokens?: boolean;
  /** Video frame (of 10) used when an image input is a video (default 5, the middle frame). */
  frame?: number;
}

export interface VideoEmbedding {
  /** Frame numbers (of the reference's 10) that were embedded, in the order of `visual`. */
  frames: number[];
  /** One visual embedding per frame. */
  visual: Embedding[];
  /** Mean of the frames' pooled embeddings, L2-normalised. */
  visualMean: Float32Array;
  /** The soundtrack's embedding (undefined for a silent video or a visual-only model). */
  audio?: Embedding;
}

export interface ClassLabel {
  index: number;
  name: string;
  mid: string;
  score: number;
}

export interface ClassifyOptions {
  /** How many best classes to list (default 5). */
  top?: number;
  /** Fine-tuning mode (default: from the checkpoint and the inputs present). */
  mode?: FtMode;
  /** Default: the checkpoint's training loss (bce → sigmoid, ce → softmax), else sigmoid. */
  activation?: 'sigmoid' | 'softmax';
  /** Video frames to average (default all 10, the reference's frame aggregation). */
  frames?: number[];
}

export interface Classification {
  /** [K] class probabilities (averaged over frames for a video). */
  probabilities: Float32Array;
  /** [F, K] logits, one row per frame pass. */
  logits: Float32Array;
  top: ClassLabel[];
  activation: 'sigmoid' | 'softmax';
  mode: FtMode;
  /** Video frame numbers averaged ([] when no video frame was used). */
  frames: number[];
}

/** Inputs of a classification, a localisation or a reconstruction. */
export interface ClipInput {
  audio?: AudioInput;
  image?: ImageInput;
}

export interface LocalizeOptions {
  /** Audio query: 'column' (the fork's default), 'mean', or the 'patchesmean' baseline. */
  query?: AudioQuery;
  /** Time column of the 'column' query (default the centre, T/32). */
  column?: number;
  upsample?: UpsampleMode;
  /** Side of the heat map and overlay in px (default 224, the reference's frame size). */
  size?: number;
  /** Overlay opacity of the heat colours (default 0.5). */
  alpha?: number;
  /** Frame (of 10) when the image is a video (default 5). */
  frame?: number;
}

export interface LocalizeResult extends Localization {
  /** The centre crop the model saw, at `size` px. */
  image: RgbImage;
  /** Heat (jet) blended over `image`, PNG. */
  overlayPng: Uint8Array;
  query: Float32Array;
  queryKind: AudioQuery;
}

export interface ReconstructOptions {
  /** Both ratios at once (default 0.75, spec 6.1). */
  maskRatio?: number;
  maskRatioA?: number;
  maskRatioV?: number;
  /** Audio masking (visual masking is always unstructured). */
  maskMode?: MaskMode;
  /** Seed of the mask noise (default 2, as inpaint.py's torch.manual_seed(2)). */
  seed?: number;
  /** Exact mask noise [La] / [Lv] (replay). */
  noiseA?: ArrayLike<number>;
  noiseV?: ArrayLike<number>;
  /** Frame (of 10) when the input is a video (default 5). */
  frame?: number;
  /** Tile width of the panel in px (default 224). */
  tile?: number;
  title?: string;
}

export interface Reconstruction {
  panelPng: Uint8Array;
  /** Mean squared error over masked patches: forward_inpaint's loss (normalised targets if norm_pix_loss). */
  mseAudio?: number;
  mseVisual?: number;
  /** [La, p²] and [Lv, 3p²] predictions; masks [La] / [Lv] (1 = removed). */
  predA?: Float32Array;
  predV?: Float32Array;
  maskA?: Float32Array;
  maskV?: Float32Array;
  views: ReconstructionViews;
  normPixLoss: boolean;
  maskRatioA: number;
  maskRatioV: number;
  maskMode: MaskMode;
}

export interface Capabilities {
  embedAudio: boolean;
  embedVisual: boolean;
  classify: boolean;
  localize: boolean;
  reconstruct: boolean;
}

export interface RankedMatch {
  index: number;
  score: number;
}

function mean2(tokens: Float32Array, B: number, L: number, D: number, b: number): Float32Array {
  const acc = new Float64Array(D);
  for (let l = 0; l < L; l++) {
    const o = (b * L + l) * D;
    for (let d = 0; d < D; d++) acc[d] += tokens[o + d];
  }
  let ss = 0;
  for (let d = 0; d < D; d++) {
    acc[d] /= L;
    ss += acc[d] * acc[d];
  }
  const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  return Float32Array.from(acc, (x) => x * inv);
}

/** Unit-L2 copy of a vector (zero stays zero). */
export function l2Normalize(v: Float32Array): Float32Array {
  let ss = 0;
  for (const x of v) ss += x * x;
  const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  return Float32Array.from(v, (x) => x * inv);
}

/**
 * The k candidates most similar to a query by cosine similarity (exact; ties keep the lower
 * index first). `candidates` is [N, D] row-major or a list of [D] vectors.
 */
export function rankBySimilarity(
  query: Float32Array,
  candidates: Float32Array | readonly Float32Array[],
  k = 10,
): RankedMatch[] {
  const D = query.length;
  const rows: Float32Array[] = [];
  if (candidates instanceof Float32Array) {
    if (candidates.length % D !== 0)
      throw new UserError(
        `candidates hold ${candidates.length} values, not a multiple of the query width ${D}`,
      );
    for (let i = 0; i < candidates.length / D; i++) rows.push(candidates.subarray(i * D, (i + 1) * D));
  } else rows.push(...candidates);
  const q = l2Normalize(query);
  const scored = rows.map((r, index) => {
    if (r.length !== D) throw new UserError(`candidate ${index} has width ${r.length}, the query ${D}`);
    let dot = 0;
    let ss = 0;
    for (let d = 0; d < D; d++) {
      dot += q[d] * r[d];
      ss += r[d] * r[d];
    }
    return { index, score: ss > 0 ? dot / Math.sqrt(ss) : 0 };
  });
  scored.sort((a, b) => b.score - a.score || a.index - b.index);
  return scored.slice(0, Math.max(0, k));
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export class CavMae {
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

  private constructor(
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
    if (!(model instanceof CAVMAE || model instanceof CAVMAEFT))
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

  private tape(): Tape {
    return new Tape({ grad: false, bf16: this.bf16, int8: this.int8, frozen: this.frozen });
  }

  private requireModality(m: 'a' | 'v', what: string): void {
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
    const joint = this.model instanceof CAVMAE && (c.variant === 'av-mae' || c.variant === 'vanilla-av-mae');
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

  private embeddings(modality: 'a' | 'v', x: Float32Array, B: number, keepTokens: boolean): Embedding[] {
    const t = this.tokens(modality, x, B); // [B, L, D]
    const grid = modality === 'a' ? this.audioGrid : this.visualGrid;
    const L = grid.rows * grid.cols;
    const D = this.dim;
    const out: Embedding[] = [];
    for (let b = 0; b < B; b++) {
      out.push({
        pooled: mean2(t, B, L, D, b),
        ...(keepTokens ? { tokens: t.slice(b * L * D, (b + 1) * L * D) } : {}),
        shape: [L, D],
        grid,
      });
    }
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

  /** Embeds audio: a file (audio or a video's soundtrack), its bytes, or an fbank tensor. */
  async embedAudio(input: AudioInput, opts: EmbedOptions = {}): Promise<Embedding> {
    this.requireModality('a', 'embedAudio');
    const audio = await this.prepareAudio(input);
    return this.embeddings('a', audio, 1, opts.tokens ?? false)[0];
  }

  /** Embeds an image (or a video's frame `opts.frame`, default 5). */
  async embedImage(input: ImageInput, opts: EmbedOptions = {}): Promise<Embedding> {
    this.requireModality('v', 'embedImage');
    const image = await this.prepareImage(input, { frame: opts.frame });
    return this.embeddings('v', image, 1, opts.tokens ?? false)[0];
  }

  /** Embeds a video: per-frame visual embeddings (default all 10 reference frames) and its audio. */
  async embedVideo(
    input: MediaSource,
    opts: { frames?: number[]; tokens?: boolean; audio?: boolean } = {},
  ): Promise<VideoEmbedding> {
    return withMedia(input, async (m) => {
      expectKind(m, ['video'], 'embedVideo');
      const frames = opts.frames ?? [...Array(CLIP_FRAMES).keys()];
      if (frames.length === 0) throw new UserError(`${m.what}: no frames asked for`);
      const { hasAudio, hasVideo } = this.model.encoder.dims;
      let visual: Embedding[] = [];
      if (hasVideo) {
        const prepared = await videoFrames(m, frames, this.preprocessing);
        visual = this.embeddings(
          'v',
          concat(prepared.map((p) => p.image)),
          prepared.length,
          opts.tokens ?? false,
        );
      }
      let audio: Embedding | undefined;
      if (hasAudio && m.hasAudio && (opts.audio ?? true)) {
        audio = this.embeddings(
          'a',
          (await audioFromMedia(m, this.preprocessing)).audio,
          1,
          opts.tokens ?? false,
        )[0];
      }
      const D = this.dim;
      const sum = new Float32Array(D);
      for (const e of visual) for (let d = 0; d < D; d++) sum[d] += e.pooled[d] / visual.length;
      return { frames: hasVideo ? frames : [], visual, visualMean: l2Normalize(sum), audio };
    });
  }

  /** Embeds a pair (one clip): audio and image. */
  async embedClip(
    audio: AudioInput,
    image: ImageInput,
    opts: EmbedOptions = {},
  ): Promise<{ audio: Embedding; visual: Embedding }> {
    return { audio: await this.embedAudio(audio, opts), visual: await this.embedImage(image, opts) };
  }

  /**
   * Embeds whatever a media file holds: audio → audio; image → visual; video → visual (middle
   * frame, as the reference's retrieval) and audio when it has sound.
   */
  async embedMedia(
    input: MediaSource,
    opts: EmbedOptions & { what?: string } = {},
  ): Promise<{ kind: OpenedMedia['kind']; audio?: Embedding; visual?: Embedding }> {
    return withMedia(
      input,
      async (m) => {
        const { hasAudio, hasVideo } = this.model.encoder.dims;
        const out: { kind: OpenedMedia['kind']; audio?: Embedding; visual?: Embedding } = { kind: m.kind };
        const wantAudio = m.kind !== 'image' && m.hasAudio && hasAudio;
        const wantVisual = m.kind !== 'audio' && hasVideo;
        if (!wantAudio && !wantVisual)
          throw new UserError(
            `${m.what}: the model ${this.name} cannot embed ${m.kind === 'audio' ? 'audio' : 'pictures'}`,
          );
        if (wantVisual)
          out.visual = this.embeddings(
            'v',
            (await imageFromMedia(m, this.preprocessing, opts.frame ?? MIDDLE_FRAME)).image,
            1,
            opts.tokens ?? false,
          )[0];
        if (wantAudio)
          out.audio = this.embeddings(
            'a',
            (await audioFromMedia(m, this.preprocessing)).audio,
            1,
            opts.tokens ?? false,
          )[0];
        return out;
      },
      opts.what,
    );
  }

  /**
   * Resolves a clip input: a video file gives frames + soundtrack, an audio file audio, an image
   * file a picture; `{audio, image}` each on its own.
   */
  private async resolveClip(
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

  /** The fine-tuning mode for the inputs present. */
  chooseMode(hasAudio: boolean, hasVisual: boolean, requested?: FtMode): FtMode {
    const variant = this.config.variant;
    const stored = this.metadata[FINETUNE_METADATA.mode] as FtMode | undefined;
    let mode: FtMode;
    if (requested) {
      if (!FT_MODES.includes(requested))
        throw new UserError(`unknown mode "${requested}" (known: ${FT_MODES.join(', ')})`);
      mode = requested;
    } else if (variant === 'audio-mae' || stored === 'audioonly') mode = 'audioonly';
    else if (variant === 'visual-mae' || stored === 'videoonly') mode = 'videoonly';
    else if (hasAudio && hasVisual) mode = 'multimodal';
    else if (hasAudio) mode = 'missingaudioonly';
    else mode = 'missingvideoonly';
    const needA = mode !== 'videoonly' && mode !== 'missingvideoonly';
    const needV = mode !== 'audioonly' && mode !== 'missingaudioonly';
    if (needA && !hasAudio)
      throw new UserError(`mode ${mode} needs audio (an audio file, or a video with sound)`);
    if (needV && !hasVisual) throw new UserError(`mode ${mode} needs an image or a video`);
    return mode;
  }

  /** Classifies a clip with a fine-tuned model (labels, activation and frames: see ClassifyOptions). */
  async classify(input: MediaSource | ClipInput, opts: ClassifyOptions = {}): Promise<Classification> {
    const ft = this.model;
    if (!(ft instanceof CAVMAEFT))
      throw new UserError(
        `${this.name}: classification needs a fine-tuned model (CAVMAEFT with a classifier head); this is a pretrained CAVMAE`,
      );
    const c = this.config;
    const K = c.label_dim!;
    const clip = await this.resolveClip(input, {
      frames: opts.frames ?? [...Array(CLIP_FRAMES).keys()],
      needAudio: true,
      needVisual: true,
    });
    const mode = this.chooseMode(clip.audio !== undefined, clip.images.length > 0, opts.mode);
    const usesA = mode !== 'videoonly' && mode !== 'missingvideoonly';
    const usesV = mode !== 'audioonly' && mode !== 'missingaudioonly';
    const images = usesV ? clip.images : [];
    const F = Math.max(1, images.length); // one forward row per frame (audio repeated)
    const T = c.audio_length;
    const S = c.img_size;
    let audio: Tensor | undefined;
    if (usesA) {
      const a = new Float32Array(F * T * MEL_BINS); // [F, T, 128]
      for (let f = 0; f < F; f++) a.set(clip.audio!, f * T * MEL_BINS);
      audio = new Tensor([F, T, MEL_BINS], a);
    }
    const image = usesV ? new Tensor([F, 3, S, S], concat(images.map((p) => p.image))) : undefined;
    const tp = this.tape();
    const logits = ft.forward(tp, { audio, image }, mode).data.slice(); // [F, K]
    tp.reset();
    const activation = opts.activation ?? activationFromMetadata(this.metadata);
    const probabilities = new Float32Array(K);
    for (let f = 0; f < F; f++) {
      const row = logits.subarray(f * K, (f + 1) * K);
      let p: Float64Array;
      if (activation === 'softmax') {
        let max = -Infinity;
        for (const x of row) max = Math.max(max, x);
        p = Float64Array.from(row, (x) => Math.exp(x - max));
        const s = p.reduce((a, b) => a + b, 0);
        for (let k = 0; k < K; k++) p[k] /= s;
      } else p = Float64Array.from(row, sigmoid);
      for (let k = 0; k < K; k++) probabilities[k] += p[k] / F;
    }
    const order = [...Array(K).keys()].sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    const top = order.slice(0, Math.max(1, opts.top ?? 5)).map((index) => ({
      index,
      name: this.labels?.names[index] ?? `class ${index}`,
      mid: this.labels?.mids[index] ?? String(index),
      score: probabilities[index],
    }));
    return {
      probabilities,
      logits,
      top,
      activation,
      mode,
      frames: images.map((p) => p.frame).filter((f): f is number => f !== undefined),
    };
  }

  /**
   * Localises the sound in a picture: audio-to-patch cosine similarity (spec 6.2). `image` may
   * be a video (its frame); without `audio`, the video's soundtrack is the audio.
   */
  async localize(image: ImageInput, audio?: AudioInput, opts: LocalizeOptions = {}): Promise<LocalizeResult> {
    if (!this.capabilities.localize)
      throw new UserError(`${this.name}: localisation needs both an audio and a visual encoder`);
    const size = opts.size ?? DISPLAY_SIZE;
    if (!(Number.isInteger(size) && size >= 8 && size <= 4096))
      throw new UserError(`heat map size must be an integer in 8..4096, got ${size}`);
    let pictured: PreparedImage;
    let audioInput: Float32Array;
    if (audio === undefined) {
      if (!isMediaSource(image))
        throw new UserError('localize: give an audio input, or a video file whose soundtrack is the audio');
      [pictured, audioInput] = await withMedia(image, async (m) => {
        expectKind(m, ['video'], 'localize without a separate audio input');
        if (!m.hasAudio) throw new UserError(`${m.what}: the video has no sound; give an audio input`);
        return [
          await imageFromMedia(m, this.preprocessing, opts.frame ?? MIDDLE_FRAME, size),
          (await audioFromMedia(m, this.preprocessing)).audio,
        ] as const;
      });
    } else {
      pictured = await prepareImage(image, this.preprocessing, {
        frame: opts.frame,
        displaySize: size,
        what: 'image',
      });
      audioInput = await this.prepareAudio(audio, 'audio');
    }
    const query = opts.query ?? 'column';
    const a = query === 'patchesmean' ? new Float32Array(0) : this.tokens('a', audioInput, 1); // [La, D]
    const v = this.tokens('v', pictured.image, 1); // [Lv, D]
    const loc = localizeTokens(a, v, {
      dim: this.dim,
      audioGrid: this.audioGrid,
      visualGrid: this.visualGrid,
      query,
      column: opts.column,
      height: size,
      width: size,
      upsample: opts.upsample,
    });
    const overlayPng = await heatOverlayPng(pictured.display, loc.heat, opts.alpha ?? 0.5);
    return { ...loc, image: pictured.display, overlayPng, queryKind: query };
  }

  /**
   * Masks and reconstructs a clip (forward_inpaint, spec 6.1) and draws the 2x3 panel. For a
   * full model both modalities are needed: a video with sound, or { audio, image }.
   */
  async reconstruct(input: MediaSource | ClipInput, opts: ReconstructOptions = {}): Promise<Reconstruction> {
    const m = this.model;
    if (!(m instanceof CAVMAE) || !m.decoder)
      throw new UserError(
        `${this.name}: reconstruction needs a pretrained model with its decoder (${m instanceof CAVMAEFT ? 'this is a fine-tuned model' : `variant "${this.config.variant}" has none`})`,
      );
    const c = this.config;
    const { hasAudio, hasVideo } = m.dims;
    const maskRatioA = opts.maskRatioA ?? opts.maskRatio ?? 0.75;
    const maskRatioV = opts.maskRatioV ?? opts.maskRatio ?? 0.75;
    for (const [name, r] of [
      ['audio', maskRatioA],
      ['visual', maskRatioV],
    ] as const)
      if (!(r > 0 && r < 1)) throw new UserError(`${name} mask ratio must be in (0, 1), got ${r}`);
    const maskMode = opts.maskMode ?? 'unstructured';
    if (!MASK_MODES.includes(maskMode))
      throw new UserError(`unknown mask mode "${maskMode}" (known: ${MASK_MODES.join(', ')})`);
    const clip = await this.resolveClip(input, {
      frames: [opts.frame ?? MIDDLE_FRAME],
      needAudio: hasAudio,
      needVisual: hasVideo,
    });
    if (hasAudio && !clip.audio)
      throw new UserError('reconstruct: this model needs audio (an audio file, or a video with sound)');
    if (hasVideo && clip.images.length === 0)
      throw new UserError('reconstruct: this model needs an image (or a video)');
    const T = c.audio_length;
    const S = c.img_size;
    const tp = this.tape();
    const out = m.forwardInpaint(
      tp,
      {
        audio: hasAudio ? new Tensor([1, T, MEL_BINS], clip.audio!) : undefined,
        image: hasVideo ? new Tensor([1, 3, S, S], clip.images[0].image) : undefined,
      },
      {
        maskRatioA,
        maskRatioV,
        maskMode,
        noiseA: opts.noiseA,
        noiseV: opts.noiseV,
        rng: new Rng(opts.seed ?? 2),
      },
    );
    const predA = out.predA?.data.slice();
    const predV = out.predV?.data.slice();
    const maskA = out.maskA?.mask.slice();
    const maskV = out.maskV?.mask.slice();
    const mseAudio = hasAudio ? out.lossPixelA.item() : undefined;
    const mseVisual = hasVideo ? out.lossPixelV.item() : undefined;
    tp.reset();
    const views = reconstructionViews({
      audio: clip.audio,
      image: clip.images[0]?.image,
      audioLength: T,
      imageSize: S,
      patch: c.patch_size,
      predA,
      predV,
      maskA,
      maskV,
      normPixLoss: c.norm_pix_loss,
    });
    const panelPng = await composePanel(views, {
      tile: opts.tile,
      mseAudio,
      mseVisual,
      maskRatioA: hasAudio ? maskRatioA : undefined,
      maskRatioV: hasVideo ? maskRatioV : undefined,
      maskMode: hasAudio ? maskMode : undefined,
      normPixLoss: c.norm_pix_loss,
      title: opts.title,
    });
    return {
      panelPng,
      mseAudio,
      mseVisual,
      predA,
      predV,
      maskA,
      maskV,
      views,
      normPixLoss: c.norm_pix_loss,
      maskRatioA,
      maskRatioV,
      maskMode,
    };
  }
}

function concat(parts: readonly Float32Array[]): Float32Array {
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
  const text = metadata[FINETUNE_METADATA.labels];
  if (text === undefined) return undefined;
  let v: { mids?: unknown; names?: unknown };
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    throw fileError(what, `metadata "${FINETUNE_METADATA.labels}" is not valid JSON`);
  }
  const ok = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (!ok(v.mids) || !ok(v.names) || v.mids.length !== v.names.length)
    throw fileError(
      what,
      `metadata "${FINETUNE_METADATA.labels}" must hold equal-length "mids" and "names" lists`,
    );
  return { numLabels: v.mids.length, mids: v.mids, names: v.names, source: `${what} (stored labels)` };
}

/** sigmoid for BCE-trained (multi-label) models, softmax for CE-trained ones; sigmoid when unknown. */
export function activationFromMetadata(metadata: Record<string, string>): 'sigmoid' | 'softmax' {
  return metadata[FINETUNE_METADATA.loss] === 'ce' ? 'softmax' : 'sigmoid';
}
