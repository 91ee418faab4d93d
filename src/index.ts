/**
 * cavmae: CAV-MAE and CAV-MAE Sync for Node.js. The package entry point re-exports the public
 * API: the inference API (`CavMae`), models and checkpoints, the media front ends, evaluation,
 * the embedded media index and the HTTP server. See docs/api.md.
 */
export * from './api/index.js';

// Localisation and reconstruction as pure functions of model outputs.
export {
  localizeTokens,
  audioQueryVector,
  patchSimilarity,
  upsample2d,
  minMaxNormalize,
  heatIoU,
  heatOverlay,
  heatOverlayPng,
  jet,
  AUDIO_QUERIES,
  type AudioQuery,
  type UpsampleMode,
  type Localization,
  type Grid,
} from './eval/localize.js';
export {
  reconstructionViews,
  composePanel,
  maskedPatchMse,
  denormalizePatches,
  unnormalizeImage,
  spectrogramImage,
  type ReconstructionInput,
  type ReconstructionViews,
  type ModalityViews,
  type PanelOptions,
} from './eval/reconstruct.js';
export {
  evaluateRetrieval,
  similarityMatrix,
  rankQueries,
  recallMetrics,
  type EmbeddingSet,
  type RetrievalMetrics,
  type RetrievalResult,
  type ClipStrategy,
} from './eval/retrieval.js';
export { calculateStats, type ClassificationStats } from './eval/metrics.js';

// Models, configs, checkpoints.
export {
  CAVMAE,
  CAVMAEFT,
  buildModel,
  loadModel,
  saveModel,
  loadInto,
  presetConfig,
  presetNames,
  resolveConfig,
  configToJson,
  FT_MODES,
  MASK_MODES,
  type AnyModel,
  type CavmaeConfig,
  type FtMode,
  type MaskMode,
  type LoadModelOptions,
} from './models/index.js';
export { loadStateDict } from './io/checkpoint.js';
export { readSafetensors, readSafetensorsF32, writeSafetensors } from './io/safetensors.js';
export { writePth, encodePth } from './io/pth-write.js';
export { exportPth, officialArgs, type ExportReport } from './io/export.js';

// Media front ends.
export {
  decodeAudio,
  computeFbank,
  padOrCrop,
  normalizeFbank,
  loadAudioFeatures,
  AUDIO_NORM,
} from './audio/index.js';
export {
  decodeImage,
  imageToTensor,
  loadImageTensor,
  extractFrames,
  loadVideoFrameTensor,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type RgbImage,
} from './vision/index.js';

// The embedded media index and the server.
export {
  MediaIndex,
  addMedia,
  collectMediaFiles,
  type IndexEntry,
  type SearchHit,
  type MediaEmbedder,
  type MediaEmbedding,
} from './index/index.js';
// Index backends (the LanceDB one loads @lancedb/lancedb only when used).
export {
  openIndexWriter,
  openIndexReader,
  type IndexBackend,
  type SearchableIndex,
} from './index/backend.js';
export { LanceIndex } from './index/lance.js';
export {
  startServer,
  type ServeOptions,
  type RunningServer,
  type Engine,
  type EngineInfo,
} from './serve/index.js';

export { UserError } from './util/errors.js';

// Which compute kernels run (the native addon or the TypeScript reference) and why.
export { kernelStatus, type KernelStatus } from './kernels/index.js';
