/**
 * Embeddings (a layer of `CavMae`, ./cavmae.ts): forward_feat tokens of each modality on its
 * own, pooled by the token mean and L2-normalised (docs/reference.md#retrieval); audio, images, videos (per frame),
 * clips and whatever a media file holds.
 */
import { cropAllSegments, evalPair } from '../data/sync-segments.js';
import { poolNormalize, representationOf } from '../eval/features.js';
import { l2NormalizeRows } from '../eval/retrieval.js';
import { Tensor } from '../tensor/tensor.js';
import { OptionError, UserError } from '../util/errors.js';
import {
  audioFromMedia,
  CLIP_FRAMES,
  expectKind,
  imageFromMedia,
  isMediaSource,
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
  /**
   * CAV-MAE Sync: one vector per (segment or frame) pair, [P, D], rows L2-normalised (the
   * global token, or the patch-token mean without cls_token): P = F for an audio clip or a
   * video's frames, 1 for an image. `pooled` is then their mean, L2-normalised; `tokens` the
   * pairs' patch tokens [P·L, D].
   */
  pairs?: Float32Array;
  pairCount?: number;
}

export interface EmbedOptions {
  /** Also return the unpooled tokens. */
  tokens?: boolean;
  /** Video frame (of 10; of F for a Sync model) used when an image input is a video (default the middle one). */
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
  /**
   * A Sync model's embedding of P pairs of one modality (segments [P, L, 128] or frames
   * [P, 3, S, S]): the pair vectors of src/eval/features.ts (`pairVectors`) and their mean.
   */
  protected syncEmbedding(modality: 'a' | 'v', x: Float32Array, P: number, keepTokens: boolean): Embedding {
    const { tokens, global } = this.syncFeatures(modality, x, P); // [P, Lm, D], [P, D]
    const grid = modality === 'a' ? this.audioGrid : this.visualGrid;
    const L = grid.rows * grid.cols;
    const D = this.dim;
    const pairs =
      representationOf(this.model) === 'global'
        ? l2NormalizeRows(global!, P, D)
        : poolNormalize(new Tensor([P, L, D], tokens)); // [P, D]
    return {
      pooled: P === 1 ? pairs.slice() : poolNormalize(new Tensor([1, P, D], pairs)),
      ...(keepTokens ? { tokens } : {}),
      shape: [L, D],
      grid,
      pairs,
      pairCount: P,
    };
  }

  /**
   * The vector search compares for an embedding (`indexDim` wide): CAV-MAE its pooled vector;
   * a Sync model the clip strategy as one dot product over F·D values: diagonal_mean = the F
   * pair vectors scaled by 1/√F (Σ_f q_f·c_f / F; a single image is F equal frames), mean = the
   * mean of the pair vectors repeated F times (the index then compares the means by cosine).
   * max and diagonal_max are no dot product: refused.
   */
  searchVector(e: Embedding): Float32Array {
    if (!this.isSync) return e.pooled;
    const F = this.pairs;
    const D = this.dim;
    const P = e.pairCount ?? 1;
    const rows = e.pairs ?? e.pooled;
    if (P !== 1 && P !== F)
      throw new UserError(`${this.name}: a clip vector needs ${F} pairs or one, got ${P}`);
    const strategy = this.clipStrategy;
    if (strategy !== 'diagonal_mean' && strategy !== 'mean')
      throw new OptionError(
        (n) =>
          `${this.name}: clips compared by "${strategy}" cannot be searched by one dot product; the index supports the diagonal_mean and mean strategies (${n('strategy')})`,
      );
    const out = new Float32Array(F * D);
    const scale = 1 / Math.sqrt(F);
    for (let f = 0; f < F; f++)
      for (let d = 0; d < D; d++) {
        let x: number;
        if (strategy === 'mean' && P > 1) {
          x = 0;
          for (let p = 0; p < P; p++) x += rows[p * D + d];
          x /= P;
        } else x = rows[(P === 1 ? 0 : f) * D + d];
        out[f * D + d] = x * scale;
      }
    return out;
  }

  /** Width of the vectors search compares (`searchVector`): D, or F·D for a Sync model. */
  get indexDim(): number {
    return this.isSync ? this.pairs * this.dim : this.dim;
  }

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
    if (this.isSync) {
      const a = await this.prepareSyncAudio(input);
      return this.syncEmbedding('a', a.audio, a.pairs, opts.tokens ?? false);
    }
    const audio = await this.prepareAudio(input);
    return this.embeddings('a', audio, 1, opts.tokens ?? false)[0];
  }

  /** Embeds an image (or a video's frame `opts.frame`, default 5). */
  async embedImage(input: ImageInput, opts: EmbedOptions = {}): Promise<Embedding> {
    this.requireModality('v', 'embedImage');
    if (this.isSync) {
      const image = isMediaSource(input)
        ? await withMedia(input, async (m) =>
            m.kind === 'video'
              ? (await this.syncFrames(m, [opts.frame ?? evalPair(this.pairs)]))[0].image
              : (await imageFromMedia(m, this.preprocessing)).image,
          )
        : await this.prepareImage(input);
      return this.syncEmbedding('v', image, 1, opts.tokens ?? false);
    }
    const image = await this.prepareImage(input, { frame: opts.frame });
    return this.embeddings('v', image, 1, opts.tokens ?? false)[0];
  }

  /**
   * Embeds a video: per-frame visual embeddings (default all 10 reference frames; a Sync model:
   * its F frames) and its audio (a Sync model: the F segments, `pairs`).
   */
  async embedVideo(
    input: MediaSource,
    opts: { frames?: number[]; tokens?: boolean; audio?: boolean } = {},
  ): Promise<VideoEmbedding> {
    return withMedia(input, async (m) => {
      expectKind(m, ['video'], 'embedVideo');
      const frames = opts.frames ?? [...Array(this.isSync ? this.pairs : CLIP_FRAMES).keys()];
      if (frames.length === 0) throw new UserError(`${m.what}: no frames asked for`);
      const { hasAudio, hasVideo } = this.model.encoder.dims;
      this.requireModality(hasVideo ? 'v' : 'a', 'embedVideo');
      let visual: Embedding[] = [];
      if (hasVideo && this.isSync) {
        const prepared = await this.syncFrames(m, frames);
        const all = this.syncEmbedding(
          'v',
          concat(prepared.map((p) => p.image)),
          prepared.length,
          opts.tokens ?? false,
        );
        const D = this.dim;
        const per = all.shape[0] * D; // one frame's tokens
        visual = prepared.map((_, k) => {
          const row = all.pairs!.slice(k * D, (k + 1) * D);
          return {
            pooled: row,
            ...(all.tokens ? { tokens: all.tokens.slice(k * per, (k + 1) * per) } : {}),
            shape: all.shape,
            grid: all.grid,
            pairs: row,
            pairCount: 1,
          };
        });
      } else if (hasVideo) {
        const prepared = await videoFrames(m, frames, this.preprocessing);
        visual = this.embeddings(
          'v',
          concat(prepared.map((p) => p.image)),
          prepared.length,
          opts.tokens ?? false,
        );
      }
      let audio: Embedding | undefined;
      if (hasAudio && m.hasAudio && (opts.audio ?? true) && this.isSync) {
        const clip = (await audioFromMedia(m, this.clipPreprocessing)).audio; // [1024, 128]
        audio = this.syncEmbedding(
          'a',
          cropAllSegments(clip, this.config.audio_length, this.pairs),
          this.pairs,
          opts.tokens ?? false,
        );
      } else if (hasAudio && m.hasAudio && (opts.audio ?? true)) {
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
   * frame, as the reference's retrieval) and audio when it has sound. A Sync model embeds a
   * video per (segment, frame) pair: its F frames and F segments (`pairs`); an image is one frame.
   */
  async embedMedia(
    input: MediaSource,
    opts: EmbedOptions & { what?: string } = {},
  ): Promise<{ kind: OpenedMedia['kind']; audio?: Embedding; visual?: Embedding }> {
    return withMedia(
      input,
      async (m) => {
        const { hasAudio, hasVideo } = this.model.encoder.dims;
        this.requireModality(hasVideo ? 'v' : 'a', 'embedMedia');
        const out: { kind: OpenedMedia['kind']; audio?: Embedding; visual?: Embedding } = { kind: m.kind };
        const wantAudio = m.kind !== 'image' && m.hasAudio && hasAudio;
        const wantVisual = m.kind !== 'audio' && hasVideo;
        if (!wantAudio && !wantVisual)
          throw new UserError(
            `${m.what}: the model ${this.name} cannot embed ${m.kind === 'audio' ? 'audio' : 'pictures'}`,
          );
        if (this.isSync) {
          const keep = opts.tokens ?? false;
          if (wantVisual && m.kind === 'video') {
            const frames = await this.syncFrames(m);
            out.visual = this.syncEmbedding('v', concat(frames.map((f) => f.image)), frames.length, keep);
          } else if (wantVisual)
            out.visual = this.syncEmbedding(
              'v',
              (await imageFromMedia(m, this.preprocessing)).image,
              1,
              keep,
            );
          if (wantAudio) {
            const clip = (await audioFromMedia(m, this.clipPreprocessing)).audio; // [1024, 128]
            out.audio = this.syncEmbedding(
              'a',
              cropAllSegments(clip, this.config.audio_length, this.pairs),
              this.pairs,
              keep,
            );
          }
          return out;
        }
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
