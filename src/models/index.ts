/** CAV-MAE models: configs and presets, the pretraining model and its variants, the fine-tuning model, loading and saving. */
export * from './config.js';
export {
  CAVMAE,
  type AVBatch,
  type PretrainOptions,
  type PretrainOutput,
  type InpaintOutput,
  type FeatOutput,
} from './cavmae.js';
export { CAVMAEFT, FT_MODES, HEAD_PARAM_PREFIX, type FtMode } from './cavmae-ft.js';
export { AVEncoder, torchStateDictOrder } from './encoder.js';
export * from './masking.js';
export { sincosTable2d } from './pos-embed.js';
export * from './registry.js';
export { CAVMAESync, SyncTokens, type SyncPretrainOutput, type SyncFeatOutput } from './sync.js';
export { CAVMAESyncFT, isSyncFtHead } from './sync-ft.js';
export * from './sync-config.js';
export { adaptToSyncGrid, loadSyncInit, isSyncOnlyParam, type SyncInitReport } from './sync-init.js';
export {
  syncPairFeatures,
  syncRetrievalFeatures,
  type ClipFeatures,
  type SyncClips,
  type SyncFeatureOptions,
  type SyncRepresentation,
} from './sync-features.js';
