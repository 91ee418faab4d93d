/** Types shared by the media index, the `index add` / `search` commands and the server. */

/** What kind of file an item is. A video yields both embeddings, an image only the visual one. */
export type Modality = 'audio' | 'image' | 'video';

/** Which stored embedding a search compares against. */
export type EmbeddingSpace = 'audio' | 'visual';

/** Pooled embeddings of one item (either may be absent: an image has no audio). */
export interface MediaEmbedding {
  audio?: Float32Array;
  visual?: Float32Array;
}

/**
 * What `addMedia` needs from a model: a stable identity (the index refuses to mix models) and
 * an embedding per file. The inference engine (src/api) implements it.
 */
export interface MediaEmbedder {
  /** Hash of the weights and config: two embedders with equal ids produce the same vectors. */
  readonly modelId: string;
  /** Human-readable model name (file name or preset). */
  readonly modelName: string;
  /** Embedding width D (a CAV-MAE Sync model: F·D, its clip vectors). */
  readonly dim: number;
  /** A CAV-MAE Sync model's clip vectors: the clip strategy and pairs per clip (the index records them). */
  readonly clip?: ClipVectors;
  /** Embeds one file; throws a UserError naming the file when it cannot be read. */
  embedFile(path: string, modality: Modality): Promise<MediaEmbedding>;
}

/**
 * How a CAV-MAE Sync model's clip vectors are made: F (segment, frame) pair vectors compared by
 * a clip strategy (src/eval/retrieval.ts), stored as one F·D vector (src/api/embed.ts searchVector).
 */
export interface ClipVectors {
  strategy: string;
  pairs: number;
}

/** One indexed item as the manifest records it. */
export interface IndexEntry {
  /** 16 hex digits derived from the absolute path: stable across re-adds, safe in URLs. */
  id: string;
  /** Row of its vectors in the current generation's segment files. */
  row: number;
  /** Absolute path of the media file. */
  path: string;
  modality: Modality;
  hasAudio: boolean;
  hasVisual: boolean;
  /** Thumbnail file relative to the index folder (thumbs/<id>.jpg or .png), if one was made. */
  thumb?: string;
  /** Source file state when indexed: a re-add with equal mtime and size is skipped (resume). */
  mtimeMs: number;
  size: number;
  /** ISO time of indexing. */
  addedAt: string;
  /** Id of the model that made the row's embeddings (entries written before it was recorded lack it). */
  model?: string;
  /** Who embedded it, when not the writing process: a queue worker's `host/pid`. */
  worker?: string;
}

/** One search result. */
export interface SearchHit {
  id: string;
  score: number;
  entry: IndexEntry;
}

export const MODALITIES: readonly Modality[] = ['audio', 'image', 'video'];
export const SPACES: readonly EmbeddingSpace[] = ['audio', 'visual'];

/** Whether an item has the embedding of a space. */
export function hasSpace(e: IndexEntry, space: EmbeddingSpace): boolean {
  return space === 'audio' ? e.hasAudio : e.hasVisual;
}
