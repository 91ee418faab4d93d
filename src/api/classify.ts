/**
 * Classification (a layer of `CavMae`, ./cavmae.ts) with a fine-tuned model: logits → sigmoid
 * (multi-label, BCE-trained) or softmax (CE) → for a video the probabilities averaged over its 10
 * reference frames (spec 4.6 frame aggregation; audio-only modes use no frame).
 */
import { CAVMAEFT, FT_MODES, variantTraits, type FtMode } from '../models/index.js';
import { Tensor } from '../tensor/tensor.js';
import { OptionError, UserError } from '../util/errors.js';
import { CLIP_FRAMES, MEL_BINS, type MediaSource } from './inputs.js';
import { activationFromMetadata, concat, FINETUNE_METADATA, type ClipInput } from './model.js';
import { CavMaeEmbedding } from './embed.js';

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

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export class CavMaeClassifier extends CavMaeEmbedding {
  /** The fine-tuning mode for the inputs present. */
  chooseMode(hasAudio: boolean, hasVisual: boolean, requested?: FtMode): FtMode {
    const oneMode = variantTraits(this.config).ftMode;
    const stored = this.metadata[FINETUNE_METADATA.mode] as FtMode | undefined;
    let mode: FtMode;
    if (requested) {
      if (!FT_MODES.includes(requested))
        throw new OptionError(
          (n) => `${n('mode')} must be one of ${FT_MODES.join(', ')}, got "${requested}"`,
        );
      mode = requested;
    } else if (oneMode === 'audioonly' || stored === 'audioonly') mode = 'audioonly';
    else if (oneMode === 'videoonly' || stored === 'videoonly') mode = 'videoonly';
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
}
