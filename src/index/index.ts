/** The embedded media index: on-disk store, exact and approximate search, resumable adding. */
export * from './types.js';
export {
  MediaIndex,
  mediaId,
  ID_PATTERN,
  INDEX_FORMAT,
  INDEX_VERSION,
  DEFAULT_SEGMENT_ROWS,
  type IndexMeta,
  type IndexIdentity,
  type NewItem,
  type PreparedItem,
  type IndexWriter,
  type SearchOptions,
  type IndexStats,
  thumbName,
} from './store.js';
export { TopKCollector, collectInnerProduct, topKInnerProduct } from './topk.js';
export { AnnIndex, ANN_DEFAULTS, type AnnParams, type AnnSource } from './ann.js';
export {
  addMedia,
  collectMediaFiles,
  prepareMediaFile,
  failureMessage,
  type PreparedMedia,
  type AddOptions,
  type AddProgress,
  type AddSummary,
  type AddFailure,
} from './add.js';
export {
  sniffBytes,
  sniffFile,
  detectMedia,
  readHead,
  MEDIA_EXTENSIONS,
  SNIFF_BYTES,
  type SniffResult,
  type MediaFacts,
} from './media.js';
export { makeThumbnail, spectrogramPng, THUMB_WIDTH, THUMB_HEIGHT } from './thumbs.js';
