/**
 * Reconstruction (a layer of `CavMae`, ./cavmae.ts): mask a clip, reconstruct it with the
 * decoder (forward_inpaint, spec 6.1) and draw the reference's 2x3 panel (src/eval/reconstruct.ts).
 */
import { composePanel, reconstructionViews, type ReconstructionViews } from '../eval/reconstruct.js';
import { CAVMAE, CAVMAEFT, MASK_MODES, type MaskMode } from '../models/index.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { OptionError, UserError } from '../util/errors.js';
import { MEL_BINS, MIDDLE_FRAME, type MediaSource } from './inputs.js';
import { CavMaeLocalization } from './localize.js';
import type { ClipInput } from './model.js';

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

export class CavMaeReconstruction extends CavMaeLocalization {
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
      [opts.maskRatioA === undefined ? 'maskRatio' : 'maskRatioA', maskRatioA],
      [opts.maskRatioV === undefined ? 'maskRatio' : 'maskRatioV', maskRatioV],
    ] as const)
      if (!(r > 0 && r < 1)) throw new OptionError((n) => `${n(name)} must be in (0, 1), got ${r}`);
    const maskMode = opts.maskMode ?? 'unstructured';
    if (!MASK_MODES.includes(maskMode))
      throw new OptionError(
        (n) => `${n('maskMode')} must be one of ${MASK_MODES.join(', ')}, got "${maskMode}"`,
      );
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
