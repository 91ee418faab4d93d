/**
 * Localisation (a layer of `CavMae`, ./cavmae.ts): where in the picture the sound comes from,
 * the audio-to-patch cosine similarity of src/eval/localize.ts (spec 6.2) on this model's tokens.
 */
import {
  heatOverlayPng,
  localizeTokens,
  type AudioQuery,
  type Localization,
  type UpsampleMode,
} from '../eval/localize.js';
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
  type PreparedImage,
} from './inputs.js';
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

export class CavMaeLocalization extends CavMaeClassifier {
  /**
   * Localises the sound in a picture: audio-to-patch cosine similarity (spec 6.2). `image` may
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
}
