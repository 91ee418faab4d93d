/** Audio front end: decode (native WAV, ffmpeg otherwise) -> Kaldi fbank -> pad/crop -> normalise. */
export { decodeAudio, SAMPLE_RATE, type DecodeAudioOptions, type DecodedAudio } from './decode.js';
export {
  decodeWav,
  encodeWavPcm16,
  parseWavHeader,
  isWav,
  type WavHeader,
  type WavSampleFormat,
} from './wav.js';
export {
  computeFbank,
  fbankFrameCount,
  padOrCrop,
  normalizeFbank,
  AUDIO_NORM,
  NUM_MEL_BINS,
  LOG_FLOOR,
} from './fbank.js';
export { loadAudioFeatures, type AudioFeatures, type AudioFeatureOptions } from './features.js';
