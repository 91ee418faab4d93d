/**
 * The real `Engine` (src/serve/engine.ts) over a loaded checkpoint: what `cavmae serve` and
 * `cavmae index add` / `cavmae search` call.
 *
 * Design contract:
 * - `createEngine(modelPath, indexPath?)` loads the model once (CavMae) and, when given, opens
 *   the media index read-only. An index built with another model is refused (its recorded model
 *   id must equal this model's sha256 of config + weights).
 * - Inputs arrive as bytes (+ a path when they are on disk); the path is preferred so ffmpeg can
 *   seek. An `image` role may be a video (its middle frame), an `audio` role a video's soundtrack.
 * - Embeddings are pooled and L2-normalised (`dim` wide); a video yields both, an image the
 *   visual one, audio the audio one; a silent video no audio.
 */
import { MediaIndex } from '../index/store.js';
import type { MediaEmbedder, MediaEmbedding, Modality } from '../index/types.js';
import type {
  ClassifyResult,
  CreateEngine,
  Engine,
  EngineInfo,
  LocalizeResult,
  MaskMode,
  MediaInput,
  ReconstructResult,
  SearchRequest,
  SearchResult,
} from '../serve/engine.js';
import { searchIndex } from '../serve/engine.js';
import { kernels } from '../kernels/index.js';
import { OptionError } from '../util/errors.js';
import { CavMae, type LoadOptions } from './cavmae.js';
import type { MediaSource } from './inputs.js';

/** The bytes' file when there is one (ffmpeg seeks), else the bytes. */
function source(input: MediaInput): MediaSource {
  return input.path ?? input.data;
}

export class ModelEngine implements Engine {
  readonly index?: MediaIndex;
  private readonly infoCache: EngineInfo;

  constructor(
    readonly cavmae: CavMae,
    index?: MediaIndex,
  ) {
    this.index = index;
    const caps = cavmae.capabilities;
    const c = cavmae.config;
    this.infoCache = {
      modelId: cavmae.modelId,
      modelName: cavmae.name,
      dim: cavmae.dim,
      capabilities: { classify: caps.classify, localize: caps.localize, reconstruct: caps.reconstruct },
      ...(cavmae.isFineTuned
        ? { labels: cavmae.labels?.names ?? Array.from({ length: c.label_dim! }, (_, i) => `class ${i}`) }
        : {}),
      details: {
        model: c.model,
        variant: c.variant,
        parameters: cavmae.model.arena.params.reduce((s, p) => s + p.size, 0),
        audioLength: c.audio_length,
        imageSize: c.img_size,
        kernels: kernels().name,
      },
    };
    if (index)
      index.checkIdentity({
        modelId: this.infoCache.modelId,
        modelName: this.infoCache.modelName,
        dim: this.infoCache.dim,
      });
  }

  info(): EngineInfo {
    return this.infoCache;
  }

  async embed(input: MediaInput): Promise<MediaEmbedding> {
    const e = await this.cavmae.embedMedia(source(input), { what: input.name });
    return {
      ...(e.audio ? { audio: e.audio.pooled } : {}),
      ...(e.visual ? { visual: e.visual.pooled } : {}),
    };
  }

  async search(input: MediaInput, request: SearchRequest): Promise<SearchResult> {
    if (!this.index) throw new OptionError((n) => `no media index was opened (pass ${n('index')})`);
    const e = await this.embed(input);
    return searchIndex(this.index, input.kind, e, request);
  }

  async classify(input: MediaInput, opts: { top: number }): Promise<ClassifyResult> {
    const r = await this.cavmae.classify(source(input), { top: opts.top });
    return {
      labels: r.top.map((l) => ({ index: l.index, name: l.name, score: l.score })),
      activation: r.activation,
    };
  }

  async localize(image: MediaInput, audio: MediaInput): Promise<LocalizeResult> {
    const r =
      image === audio
        ? await this.cavmae.localize(source(image))
        : await this.cavmae.localize(source(image), source(audio));
    return { heat: r.heat, width: r.width, height: r.height, overlayPng: r.overlayPng };
  }

  async reconstruct(
    media: { image: MediaInput; audio: MediaInput },
    ratio: number,
    mode: MaskMode,
  ): Promise<ReconstructResult> {
    const input =
      media.image === media.audio
        ? source(media.image)
        : { image: source(media.image), audio: source(media.audio) };
    const r = await this.cavmae.reconstruct(input, { maskRatio: ratio, maskMode: mode });
    return { panelPng: r.panelPng, mseAudio: r.mseAudio ?? NaN, mseVisual: r.mseVisual ?? NaN };
  }

  async close(): Promise<void> {
    this.index?.close();
  }
}

/**
 * The index's `MediaEmbedder` (src/index/add.ts) over a model: pooled embeddings of a file by
 * its content (the index keeps only the streams the file has).
 */
export function mediaEmbedder(cavmae: CavMae): MediaEmbedder {
  return {
    modelId: cavmae.modelId,
    modelName: cavmae.name,
    dim: cavmae.dim,
    async embedFile(path: string, _modality: Modality): Promise<MediaEmbedding> {
      const e = await cavmae.embedMedia(path);
      return {
        ...(e.audio ? { audio: e.audio.pooled } : {}),
        ...(e.visual ? { visual: e.visual.pooled } : {}),
      };
    },
  };
}

/** Loads the model (and opens the index read-only) for `cavmae serve`. */
export const createEngine: CreateEngine = async (modelPath: string, indexPath?: string): Promise<Engine> => {
  return createModelEngine(modelPath, indexPath);
};

export async function createModelEngine(
  modelPath: string,
  indexPath?: string,
  opts: LoadOptions = {},
): Promise<ModelEngine> {
  const cavmae = await CavMae.load(modelPath, opts);
  const index = indexPath ? MediaIndex.open(indexPath) : undefined;
  try {
    return new ModelEngine(cavmae, index);
  } catch (e) {
    index?.close();
    throw e;
  }
}
