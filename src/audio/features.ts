/**
 * One media file -> the model's audio input, as the reference dataloader builds it at evaluation
 * time (docs/reference.md#fbank, #pad-and-crop, #normalisation-and-augmentation without augmentation): decode, fbank, pad/crop, normalise.
 */
import { decodeAudio, type DecodeAudioOptions } from './decode.js';
import { AUDIO_NORM, computeFbank, normalizeFbank, padOrCrop } from './fbank.js';

export interface AudioFeatureOptions extends DecodeAudioOptions {
  /** Rows of the model input (1024 in every CAV-MAE recipe). */
  targetLength?: number;
  mean?: number;
  std?: number;
}

export interface AudioFeatures {
  /** [targetLength, 128] normalised model input. */
  audio: Float32Array;
  /** [frames, 128] log-mel before pad/crop and normalisation. */
  raw: Float32Array;
  frames: number;
}

export async function loadAudioFeatures(
  input: string | Uint8Array,
  opts: AudioFeatureOptions = {},
): Promise<AudioFeatures> {
  const { targetLength = 1024, mean = AUDIO_NORM.mean, std = AUDIO_NORM.std } = opts;
  const what = opts.what ?? (typeof input === 'string' ? input : 'input');
  const { samples } = await decodeAudio(input, { ...opts, what });
  const { data, frames } = computeFbank(samples, 16000, what);
  const audio = normalizeFbank(padOrCrop(data, frames, targetLength), mean, std);
  return { audio, raw: data, frames };
}
