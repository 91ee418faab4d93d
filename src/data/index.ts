/** Data layer: datasets (official datafile, manifest), labels, weights, augmentation, loader, demo data. */
export {
  type DataItem,
  type Dataset,
  type VisualSource,
  type LabelMap,
  loadDataset,
  parseDataset,
  officialFramePath,
  loadLabelCsv,
  parseLabelCsv,
  writeLabelCsv,
  buildLabelMap,
  resolveLabels,
  naturalCompare,
  computeSampleWeights,
  defaultWeightPath,
  writeWeights,
  readWeights,
  MAX_DATAFILE_BYTES,
} from './datafile.js';
export {
  maskAlongAxis,
  specAugment,
  rollTime,
  addNoiseAndRoll,
  mixWaveforms,
  mixImages,
  labelVector,
  mixLabelVector,
  MIXUP_BETA,
} from './augment.js';
export { Rng, hashWords } from './rng.js';
export { createLoader, DataLoader, type Batch, type LoaderOptions, type LoadFailure } from './loader.js';
export {
  buildSample,
  visualPath,
  SampleLoadError,
  type SampleConfig,
  type SampleItem,
  type SampleTask,
  type SampleResult,
} from './sample.js';
export {
  makeAvDigits,
  makeDemoData,
  makeSyncDemoData,
  DIGIT_NAMES,
  type AvDigitsOptions,
  type AvDigitsParams,
  type AvDigitsSummary,
  type SingleItem,
  type SequenceItem,
} from './avdigits.js';
export {
  makeRealDigits,
  REAL_SOURCES,
  REAL_PACKAGES,
  type RealDigitsOptions,
  type RealDigitsSummary,
  type RealItem,
} from './real-digits.js';
