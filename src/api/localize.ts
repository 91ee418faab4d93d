/**
 * Localisation (a layer of `CavMae`, ./cavmae.ts): where in the picture the sound comes from,
 * the audio-to-patch cosine similarity of src/eval/localize.ts (docs/reference.md#localisation) on this model's tokens.
 * A CAV-MAE Sync model localises per (segment, frame) pair: a heat map per frame of a video.
 */
import {
  heatOverlayPng,
  localizeTokens,
  type AudioQuery,
  type Localization,
  type UpsampleMode,
} from '../eval/localize.js';
import { evalPair } from '../data/sync-segments.js';
import { OptionError, UserError } from '../util/errors.js';
import type { RgbImage } from '../vision/image.js';
import {
  audioFromMedia,
  DISPLAY_SIZE,
  expectKind,
  imageFromMedia,
  isMediaSource,
  MIDDLE_FRAME,
  prepareImage,
  withMedia,
  type AudioInput,
  type ImageInput,
  type MediaSource,
  type PreparedImage,
} from './inputs.js';
import { concat } from './model.js';
import { CavMaeClassifier } from './classify.js';

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
  /** Frame (of 10; a Sync model: the pair of F) when the image is a video (default the middle one). */
  frame?: number;
}

export interface LocalizeResult extends Localization {
  /** The centre crop the model saw, at `size` px. */
  image: RgbImage;
  /** Heat (jet) blended over `image`, PNG. */
  overlayPng: Uint8Array;
  query: Float32Array;
  queryKind: AudioQuery;
  /**
   * CAV-MAE Sync and a video: one map per (segment, frame) pair, frame k of the F with its own
   * segment k; the top-level map is pair `frame` (default the middle pair, F/2).
   */
  frames?: LocalizedFrame[];
}

/** One frame's map (a Sync model localising a video). */
export interface LocalizedFrame extends Localization {
  /** Pair index k (frame k of the F, with segment k). */
  frame: number;
  image: RgbImage;
  overlayPng: Uint8Array;
}

export class CavMaeLocalization extends CavMaeClassifier {
  /**
   * Localises the sound in a picture: audio-to-patch cosine similarity (docs/reference.md#localisation). `image` may
   * be a video (its frame); without `audio`, the video's soundtrack is the audio.
   */
  async localize(image: ImageInput, audio?: AudioInput, opts: LocalizeOptions = {}): Promise<LocalizeResult> {
    if (!this.capabilities.localize)
      throw new UserError(`${this.name}: localisation needs both an audio and a visual encoder`);
    const size = opts.size ?? DISPLAY_SIZE;
    if (!(Number.isInteger(size) && size >= 8 && size <= 4096))
      throw new OptionError(
        (n) => `${n('size')} (of the heat map) must be an integer in 8..4096, got ${size}`,
      );
    if (this.isSync) return this.localizePairs(image, audio, opts, size);
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
    const loc = this.localizeOne(a, v, opts, size);
    const overlayPng = await heatOverlayPng(pictured.display, loc.heat, opts.alpha ?? 0.5);
    return { ...loc, image: pictured.display, overlayPng, queryKind: query };
  }

  private localizeOne(a: Float32Array, v: Float32Array, opts: LocalizeOptions, size: number): Localization {
    return localizeTokens(a, v, {
      dim: this.dim,
      audioGrid: this.audioGrid,
      visualGrid: this.visualGrid,
      query: opts.query ?? 'column',
      column: opts.column,
      height: size,
      width: size,
      upsample: opts.upsample,
    });
  }

  /**
   * A Sync model: segment k against frame k (the pairs it was trained on). A video gives F maps
   * (its frames with its own segments, or with the segments of `audio`); an image one map, with
   * the middle segment of the audio clip (pair F/2).
   */
  private async localizePairs(
    image: ImageInput,
    audio: AudioInput | undefined,
    opts: LocalizeOptions,
    size: number,
  ): Promise<LocalizeResult> {
    if (audio === undefined && !isMediaSource(image))
      throw new UserError('localize: give an audio input, or a video file whose soundtrack is the audio');
    const clip = await this.resolveSyncClip(audio === undefined ? (image as MediaSource) : { image, audio }, {
      needAudio: true,
      needVisual: true,
      displaySize: size,
    });
    if (!clip.audio)
      throw new UserError(
        `${typeof image === 'string' ? image : 'the video'}: the video has no sound; give an audio input`,
      );
    if (clip.images.length === 0) throw new UserError('localize: needs an image or a video');
    const F = this.pairs;
    const P = clip.images.length; // F frames of a video, or one picture
    const main = opts.frame ?? evalPair(F);
    if (!(Number.isInteger(main) && main >= 0 && main < F))
      throw new OptionError((n) => `${n('frame')} must be a pair index in 0..${F - 1}, got ${main}`);
    const query = opts.query ?? 'column';
    const D = this.dim;
    const La = this.audioGrid.rows * this.audioGrid.cols;
    const Lv = this.visualGrid.rows * this.visualGrid.cols;
    const a = query === 'patchesmean' ? undefined : this.tokens('a', clip.audio, clip.audioPairs); // [Pa, La, D]
    const v = this.tokens('v', concat(clip.images.map((p) => p.image)), P); // [P, Lv, D]
    const segmentOf = (k: number): number => (clip.audioPairs === 1 ? 0 : P === 1 ? main : k);
    const frames: LocalizedFrame[] = [];
    for (let k = 0; k < P; k++) {
      const s = segmentOf(k);
      const loc = this.localizeOne(
        a ? a.subarray(s * La * D, (s + 1) * La * D) : new Float32Array(0),
        v.subarray(k * Lv * D, (k + 1) * Lv * D),
        opts,
        size,
      );
      const display = clip.images[k].display;
      frames.push({
        ...loc,
        frame: P === 1 ? main : k,
        image: display,
        overlayPng: await heatOverlayPng(display, loc.heat, opts.alpha ?? 0.5),
      });
    }
    const top = frames[P === 1 ? 0 : main];
    return {
      map: top.map,
      gridHeight: top.gridHeight,
      gridWidth: top.gridWidth,
      heat: top.heat,
      height: top.height,
      width: top.width,
      query: top.query,
      peak: top.peak,
      image: top.image,
      overlayPng: top.overlayPng,
      queryKind: query,
      ...(P > 1 ? { frames } : {}),
    };
  }
}
