/** The CAV-MAE model family (CAV-MAE and CAV-MAE Sync): config schema and traits, presets, the pretraining and fine-tuning models, masking, loading and saving. */
export * from './config.js';
export {
  CAVMAE,
  HEAD_AUDIO,
  HEAD_VISUAL,
  type AVBatch,
  type CreateOptions,
  type PretrainOptions,
  type PretrainOutput,
  type InpaintOutput,
  type FeatOutput,
} from './cavmae.js';
export {
  CAVMAEFT,
  FT_MODES,
  HEAD_PARAM_PREFIX,
  isHeadParam,
  isSyncFtHead,
  modeInputs,
  type FtMode,
} from './cavmae-ft.js';
export { AVEncoder, torchStateDictOrder } from './encoder.js';
export * from './masking.js';
export { sincosTable2d } from './pos-embed.js';
export * from './registry.js';
