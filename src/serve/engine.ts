/**
 * The contract between the HTTP server (and the index commands) and the model.
 *
 * The server never touches the model directly: it calls an `Engine`. The real engine, wrapping
 * a loaded CAV-MAE checkpoint, is made by `createEngine(modelPath, indexPath)` in
 * `src/api/engine.ts` (the inference API); tests use a small deterministic engine of their own.
 *
 * Conventions:
 * - Inputs are whole files as bytes (`data`), already size- and duration-checked and
 *   content-sniffed by the server (`kind` is what the bytes are, not what the name says). When
 *   the bytes also exist on disk (`path`: an upload spooled to a temporary file, an indexed
 *   file), an engine may read the file instead, e.g. to let ffmpeg seek.
 * - A `video` input may stand for an image (its middle frame, as the reference's eval loader
 *   takes) and for audio (its soundtrack).
 * - Embeddings are pooled and L2-normalised, width `info().dim`.
 * - Bad input (undecodable media, a silent video given as audio) is a `UserError` naming the
 *   input; the server answers it with 422. Anything else is a 500.
 */
import { readFileSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { MaskMode } from '../models/masking.js';
import { UserError } from '../util/errors.js';
import type { SearchableIndex } from '../index/backend.js';
import { identityOf } from '../index/store.js';
import type {
  ClipVectors,
  EmbeddingSpace,
  MediaEmbedder,
  MediaEmbedding,
  Modality,
  SearchHit,
} from '../index/types.js';

export type MediaKind = Modality;

export interface MediaInput {
  kind: MediaKind;
  data: Uint8Array;
  /** Original file name (for messages only; never used as a path). */
  name: string;
  /** The same bytes on disk, when they are. */
  path?: string;
  /** Duration in seconds for audio and video, when the server probed it. */
  durationSec?: number;
}

export interface EngineCapabilities {
  classify: boolean;
  localize: boolean;
  reconstruct: boolean;
}

export interface EngineInfo {
  /** Hash of the weights and config (the index records it). */
  modelId: string;
  modelName: string;
  /** Embedding width (a CAV-MAE Sync model: F·D, its clip vectors). */
  dim: number;
  /** A CAV-MAE Sync model's clip vectors: strategy and pairs per clip. */
  clip?: ClipVectors;
  capabilities: EngineCapabilities;
  /** Class names of the classifier head, when there is one. */
  labels?: string[];
  /** Anything else worth showing (preset, parameter count, kernels). */
  details?: Record<string, string | number | boolean>;
}

/** Which result lists a search returns: cross-modal, same-modal, or both. */
export type SearchMode = 'cross' | 'same' | 'all';

export interface SearchRequest {
  k: number;
  mode?: SearchMode;
  approximate?: boolean;
}

export interface SearchList {
  /** The query embedding used ... */
  from: EmbeddingSpace;
  /** ... and the stored embeddings it was compared with. */
  to: EmbeddingSpace;
  hits: SearchHit[];
}

export interface SearchResult {
  query: { kind: MediaKind; hasAudio: boolean; hasVisual: boolean };
  lists: SearchList[];
}

export interface ClassifyResult {
  /** Best first. */
  labels: { index: number; name: string; score: number }[];
  /** How scores were made from logits. */
  activation: 'sigmoid' | 'softmax';
}

export interface LocalizeResult {
  /** Heat map, row-major [height, width], min-max normalised to [0, 1]. */
  heat: Float32Array;
  width: number;
  height: number;
  /** The image with the heat map blended over it. */
  overlayPng: Uint8Array;
  /** A CAV-MAE Sync model and a video: one overlay per (segment, frame) pair (the maps above: pair F/2). */
  frames?: { frame: number; overlayPng: Uint8Array }[];
}

// Audio masking of the reconstruction (docs/reference.md#masking); the visual side is always unstructured.
export { MASK_MODES, type MaskMode } from '../models/masking.js';

export interface ReconstructResult {
  /** 2x3 panel: original / masked / reconstructed image and spectrogram. */
  panelPng: Uint8Array;
  /** Mean squared error on masked patches (normalised units). */
  mseAudio: number;
  mseVisual: number;
}

export interface Engine {
  info(): EngineInfo;
  /** The media index searched by `search` (and served by /media), when one was opened (either backend). */
  readonly index?: SearchableIndex;
  embed(input: MediaInput): Promise<MediaEmbedding>;
  search(input: MediaInput, request: SearchRequest): Promise<SearchResult>;
  classify(input: MediaInput, opts: { top: number }): Promise<ClassifyResult>;
  /** `image`: an image or a video (its frame); `audio`: audio or a video (its soundtrack). */
  localize(image: MediaInput, audio: MediaInput): Promise<LocalizeResult>;
  reconstruct(
    media: { image: MediaInput; audio: MediaInput },
    ratio: number,
    mode: MaskMode,
  ): Promise<ReconstructResult>;
  /** Frees the model; the server calls it on shutdown. */
  close?(): Promise<void>;
}

/** The signature `src/api/engine.ts` exports. */
export type CreateEngine = (modelPath: string, indexPath?: string) => Promise<Engine>;

/**
 * The search every engine does: embed, then look the query's embeddings up in the index (either
 * backend). mode 'cross': audio -> visual and visual -> audio; 'same': audio -> audio, visual ->
 * visual; 'all' (default): both. Lists whose target space is empty are left out.
 */
export async function searchIndex(
  index: SearchableIndex,
  kind: MediaKind,
  embedding: MediaEmbedding,
  request: SearchRequest,
): Promise<SearchResult> {
  const mode = request.mode ?? 'all';
  const stats = index.stats();
  const lists: SearchList[] = [];
  for (const from of ['audio', 'visual'] as const) {
    if (!embedding[from]) continue;
    const other: EmbeddingSpace = from === 'audio' ? 'visual' : 'audio';
    const targets: EmbeddingSpace[] = [
      ...(mode !== 'same' ? [other] : []),
      ...(mode !== 'cross' ? [from] : []),
    ];
    for (const to of targets) {
      if ((to === 'audio' ? stats.withAudio : stats.withVisual) === 0) continue;
      const hits = await index.searchAsync(embedding[from]!, {
        space: to,
        k: request.k,
        approximate: request.approximate,
      });
      lists.push({ from, to, hits });
    }
  }
  return { query: { kind, hasAudio: !!embedding.audio, hasVisual: !!embedding.visual }, lists };
}

/** Largest file `embedderFromEngine` reads into memory. */
export const MAX_EMBED_FILE_BYTES = 2 * 1024 ** 3; // 2 GiB (2 << 30 overflows int32 to a negative number)

/** Adapts an engine to the index's `MediaEmbedder` (used by `cavmae index add`). */
export function embedderFromEngine(engine: Engine): MediaEmbedder {
  return {
    ...identityOf(engine.info()),
    async embedFile(path: string, modality: Modality): Promise<MediaEmbedding> {
      const size = statSync(path).size;
      if (size > MAX_EMBED_FILE_BYTES)
        throw new UserError(`${path}: ${size} bytes is more than the ${MAX_EMBED_FILE_BYTES}-byte limit`);
      return engine.embed({ kind: modality, data: readFileSync(path), name: basename(path), path });
    },
  };
}
