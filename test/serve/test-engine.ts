/**
 * A small deterministic Engine for the server tests (no model): embeddings are derived from the
 * uploaded bytes exactly as the index tests' TestEmbedder derives them from files, so an indexed
 * file uploaded as a query finds itself with score 1. Heat maps and panels are real PNGs.
 */
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import {
  searchIndex,
  type ClassifyResult,
  type Engine,
  type EngineInfo,
  type LocalizeResult,
  type MaskMode,
  type MediaInput,
  type ReconstructResult,
  type SearchRequest,
  type SearchResult,
} from '../../src/serve/engine.js';
import { MediaIndex, type MediaEmbedding } from '../../src/index/index.js';
import { searchableEmbedded, type SearchableIndex } from '../../src/index/backend.js';
import { extractFrames, decodeImage } from '../../src/vision/index.js';
import { UserError } from '../../src/util/errors.js';
import { embedBytes, seededVector } from '../index/test-media.js';

export const TEST_LABELS = ['tone', 'noise', 'speech', 'music', 'silence', 'engine', 'bird', 'water'];

export interface TestEngineOptions {
  dim?: number;
  index?: MediaIndex | SearchableIndex;
  /** Simulated model time per job. */
  delayMs?: number;
  capabilities?: Partial<EngineInfo['capabilities']>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class TestEngine implements Engine {
  readonly index?: SearchableIndex;
  readonly dim: number;
  delayMs: number;
  calls = 0;
  closed = false;
  private readonly caps: EngineInfo['capabilities'];

  constructor(opts: TestEngineOptions = {}) {
    this.dim = opts.dim ?? 16;
    this.index = opts.index instanceof MediaIndex ? searchableEmbedded(opts.index) : opts.index;
    this.delayMs = opts.delayMs ?? 0;
    this.caps = { classify: true, localize: true, reconstruct: true, ...opts.capabilities };
  }

  info(): EngineInfo {
    return {
      modelId: 'sha256:test-embedder-v1',
      modelName: 'test-embedder',
      dim: this.dim,
      capabilities: this.caps,
      labels: TEST_LABELS,
    };
  }

  private async work(input: MediaInput): Promise<void> {
    this.calls++;
    if (this.delayMs) await sleep(this.delayMs);
    if (input.name.includes('explode')) throw new Error(`engine bug while reading ${input.path}`);
    if (input.name.includes('baddecode'))
      throw new UserError(`${input.path}: cannot decode the audio stream`);
  }

  async embed(input: MediaInput): Promise<MediaEmbedding> {
    await this.work(input);
    return embedBytes(input.data, input.kind, this.dim);
  }

  async search(input: MediaInput, request: SearchRequest): Promise<SearchResult> {
    if (!this.index) throw new UserError('no index');
    return searchIndex(this.index, input.kind, await this.embed(input), request);
  }

  async classify(input: MediaInput, opts: { top: number }): Promise<ClassifyResult> {
    await this.work(input);
    const v = seededVector(createHash('sha256').update(input.data).digest('hex'), TEST_LABELS.length);
    const labels = TEST_LABELS.map((name, index) => ({ index, name, score: 1 / (1 + Math.exp(-v[index])) }))
      .sort((a, b) => b.score - a.score)
      .slice(0, opts.top);
    return { labels, activation: 'sigmoid' };
  }

  private async picture(input: MediaInput): Promise<{ width: number; height: number; data: Uint8Array }> {
    if (input.kind === 'video') return (await extractFrames(input.path!, { count: 10, only: [5] }))[0];
    return decodeImage(input.data, { what: input.name });
  }

  async localize(image: MediaInput, audio: MediaInput): Promise<LocalizeResult> {
    await this.work(image);
    const seed = createHash('sha256').update(image.data).update(audio.data).digest('hex');
    const raw = seededVector(seed, 14 * 14); // [14, 14]
    // Smooth blob + noise so the map has structure; then min-max normalise as the reference.
    const heat = new Float32Array(14 * 14);
    for (let y = 0; y < 14; y++)
      for (let x = 0; x < 14; x++)
        heat[y * 14 + x] = Math.exp(-((x - 9) ** 2 + (y - 5) ** 2) / 12) + 0.1 * raw[y * 14 + x];
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of heat) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    for (let i = 0; i < heat.length; i++) heat[i] = (heat[i] - lo) / (hi - lo);
    const pic = await this.picture(image);
    const base = await sharp(pic.data, { raw: { width: pic.width, height: pic.height, channels: 3 } })
      .resize(224, 224, { fit: 'cover' })
      .raw()
      .toBuffer();
    const out = Buffer.alloc(224 * 224 * 3); // [224, 224, 3]
    for (let y = 0; y < 224; y++) {
      for (let x = 0; x < 224; x++) {
        const h = heat[Math.floor(y / 16) * 14 + Math.floor(x / 16)];
        const i = (y * 224 + x) * 3;
        out[i] = Math.round(0.5 * base[i] + 0.5 * 255 * h);
        out[i + 1] = Math.round(0.5 * base[i + 1] + 0.5 * 80 * h);
        out[i + 2] = Math.round(0.5 * base[i + 2]);
      }
    }
    const overlayPng = await sharp(out, { raw: { width: 224, height: 224, channels: 3 } })
      .png()
      .toBuffer();
    return { heat, width: 14, height: 14, overlayPng };
  }

  async reconstruct(
    media: { image: MediaInput; audio: MediaInput },
    ratio: number,
    mode: MaskMode,
  ): Promise<ReconstructResult> {
    await this.work(media.image);
    const pic = await this.picture(media.image);
    const tile = await sharp(pic.data, { raw: { width: pic.width, height: pic.height, channels: 3 } })
      .resize(160, 160, { fit: 'cover' })
      .png()
      .toBuffer();
    const panelPng = await sharp({
      create: {
        width: 3 * 170 + 10,
        height: 2 * 170 + 10,
        channels: 3,
        background: { r: 240, g: 242, b: 245 },
      },
    })
      .composite([0, 1, 2].map((i) => ({ input: tile, left: 10 + i * 170, top: 10 })))
      .png()
      .toBuffer();
    return {
      panelPng,
      mseAudio: 0.5 * ratio + (mode === 'unstructured' ? 0 : 0.01),
      mseVisual: 0.25 * ratio,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
