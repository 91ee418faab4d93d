/**
 * Embeddings (a layer of `CavMae`, ./cavmae.ts): forward_feat tokens of each modality on its
 * own, pooled by the token mean and L2-normalised (spec 5); audio, images, videos (per frame),
 * clips and whatever a media file holds.
 */
import { poolNormalize } from '../eval/features.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import {
  audioFromMedia,
  CLIP_FRAMES,
  expectKind,
  imageFromMedia,
  MIDDLE_FRAME,
  videoFrames,
  withMedia,
  type AudioInput,
  type ImageInput,
  type MediaSource,
  type OpenedMedia,
} from './inputs.js';
import { CavMaeModel, concat } from './model.js';
import { l2Normalize } from './similarity.js';

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

export class CavMaeEmbedding extends CavMaeModel {
  protected embeddings(modality: 'a' | 'v', x: Float32Array, B: number, keepTokens: boolean): Embedding[] {
    const t = this.tokens(modality, x, B); // [B, L, D]
    const grid = modality === 'a' ? this.audioGrid : this.visualGrid;
    const L = grid.rows * grid.cols;
    const D = this.dim;
    const pooled = poolNormalize(new Tensor([B, L, D], t)); // [B, D]: token mean, unit L2 norm
    const out: Embedding[] = [];
    for (let b = 0; b < B; b++) {
      out.push({
        pooled: pooled.slice(b * D, (b + 1) * D),
        ...(keepTokens ? { tokens: t.slice(b * L * D, (b + 1) * L * D) } : {}),
        shape: [L, D],
        grid,
      });
    }
    return out;
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
}
