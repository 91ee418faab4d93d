/**
 * The typed inference API: load a CAV-MAE checkpoint and embed, classify, retrieve, localise
 * and reconstruct. `CavMae` is the entry point; `createEngine` adapts it for `cavmae serve`.
 */
export {
  CavMae,
  rankBySimilarity,
  l2Normalize,
  labelsFromMetadata,
  activationFromMetadata,
  FINETUNE_METADATA,
  type LoadOptions,
  type Embedding,
  type EmbedOptions,
  type VideoEmbedding,
  type ClassLabel,
  type ClassifyOptions,
  type Classification,
  type ClipInput,
  type LocalizeOptions,
  type LocalizeResult,
  type ReconstructOptions,
  type Reconstruction,
  type Capabilities,
  type RankedMatch,
} from './cavmae.js';
export {
  CLIP_FRAMES,
  MIDDLE_FRAME,
  DISPLAY_SIZE,
  MEL_BINS,
  MAX_MEDIA_BYTES,
  type MediaSource,
  type AudioInput,
  type ImageInput,
  type FbankInput,
  type Preprocessing,
} from './inputs.js';
export {
  createEngine,
  createModelEngine,
  indexClip,
  mediaEmbedder,
  ModelEngine,
  searchVectors,
} from './engine.js';
export {
  writePng,
  writeLocalizationRaw,
  writeReconstructionRaw,
  classificationJson,
  formatClassification,
} from './outputs.js';
