/** What `cavmae index ...` and `cavmae search` do, kept out of the command files. */
import { existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { OptionError, UserError, fileError } from '../util/errors.js';
import { Progress } from '../train/progress.js';
import { addMedia, collectMediaFiles, type AddSummary } from './add.js';
import { detectMedia } from './media.js';
import { MediaIndex, mediaId, ID_PATTERN } from './store.js';
import type { Modality } from './types.js';
import type { Engine, SearchMode, SearchResult } from '../serve/engine.js';
import { embedderFromEngine, searchIndex } from '../serve/engine.js';
import { loadEngine } from '../serve/load-engine.js';

export interface IndexAddOptions {
  inputs: string[];
  model: string;
  index: string;
  batch: number;
  thumbnails: boolean;
  force: boolean;
  progress?: boolean;
}

/** `cavmae index add`: resumable, with a progress display; Ctrl-C commits what was embedded. */
export async function runIndexAdd(
  o: IndexAddOptions,
  err: NodeJS.WriteStream = process.stderr,
): Promise<AddSummary> {
  if (!existsSync(o.model)) throw fileError(o.model, 'model file not found');
  const files = collectMediaFiles(o.inputs, { exclude: [o.index] });
  if (files.length === 0) throw new UserError(`no media files found in ${o.inputs.join(', ')}`);
  const engine = await loadEngine(o.model);
  const ac = new AbortController();
  const onInt = () => {
    err.write('\ncavmae: interrupted: committing what was embedded (run the same command again to resume)\n');
    ac.abort();
  };
  process.once('SIGINT', onInt);
  try {
    const embedder = embedderFromEngine(engine);
    const index = MediaIndex.openOrCreate(o.index, {
      modelId: embedder.modelId,
      modelName: embedder.modelName,
      dim: embedder.dim,
      modelPath: o.model,
    });
    try {
      const progress =
        o.progress === false ? undefined : new Progress({ total: files.length, label: 'index', stream: err });
      const summary = await addMedia(index, files, embedder, {
        batchSize: o.batch,
        thumbnails: o.thumbnails,
        force: o.force,
        signal: ac.signal,
        onProgress: (p) => progress?.update(p.done, { added: p.added, skipped: p.skipped, failed: p.failed }),
      });
      progress?.stop();
      return summary;
    } finally {
      index.close();
    }
  } finally {
    process.off('SIGINT', onInt);
    await engine.close?.();
  }
}

export function formatAddSummary(s: AddSummary, indexDir: string): string {
  const lines = [
    `${indexDir}: ${s.added} added, ${s.skipped} already indexed, ${s.failed.length} failed${s.interrupted ? ' (interrupted)' : ''}; ` +
      `the index holds ${s.index.count} items (${s.index.byModality.video} video, ${s.index.byModality.audio} audio, ${s.index.byModality.image} image)`,
  ];
  for (const f of s.failed) lines.push(`  failed: ${f.error}`);
  return lines.join('\n');
}

/** Resolves `ids or paths` to index ids. */
export function resolveIds(refs: string[]): string[] {
  return refs.map((r) => (ID_PATTERN.test(r) ? r : mediaId(r)));
}

export interface SearchCommandOptions {
  index: string;
  audio?: string;
  image?: string;
  video?: string;
  k: number;
  model?: string;
  mode: SearchMode;
  approximate: boolean;
}

/** `cavmae search`: embeds the query with the index's model (or --model) and searches. */
export async function runSearch(
  o: SearchCommandOptions,
): Promise<{ query: string; kind: Modality; result: SearchResult }> {
  const given = [o.audio, o.image, o.video].filter((x) => x !== undefined);
  if (given.length !== 1)
    throw new OptionError((n) => `give exactly one of ${n('audio')}, ${n('image')}, ${n('video')}`);
  const query = given[0]!;
  const expected: Modality = o.audio ? 'audio' : o.image ? 'image' : 'video';
  if (!existsSync(query) || !statSync(query).isFile()) throw fileError(query, 'file not found');
  const facts = await detectMedia(query);
  const kindOk =
    expected === facts.modality ||
    (expected === 'audio' && facts.modality === 'video' && facts.hasAudio) ||
    (expected === 'image' && facts.modality === 'video');
  if (!kindOk)
    throw new OptionError(
      (n) =>
        `${query}: is ${facts.modality === 'image' ? 'an image' : facts.modality}, not ${expected === 'image' ? 'an image' : expected} (${n(expected)})`,
    );
  const index = MediaIndex.open(o.index);
  const model = o.model ?? index.model.path;
  if (!model)
    throw new OptionError((n) => `${o.index}: the index does not record its model file; pass ${n('model')}`);
  if (!existsSync(model))
    throw new OptionError(
      (n) => `${model}: model file not found (the index was built with it; pass ${n('model')} to use a copy)`,
    );
  let engine: Engine | undefined;
  try {
    engine = await loadEngine(model);
    const info = engine.info();
    index.checkIdentity({ modelId: info.modelId, modelName: info.modelName, dim: info.dim });
    // --audio on a video uses its soundtrack only, --image its picture only.
    const emb = await embedderFromEngine(engine).embedFile(query, expected === 'video' ? 'video' : expected);
    const embedding =
      expected === 'audio' ? { audio: emb.audio } : expected === 'image' ? { visual: emb.visual } : emb;
    return {
      query,
      kind: expected,
      result: searchIndex(index, expected, embedding, { k: o.k, mode: o.mode, approximate: o.approximate }),
    };
  } finally {
    await engine?.close?.();
  }
}

export function formatSearch(r: { query: string; result: SearchResult }): string {
  const out: string[] = [];
  for (const list of r.result.lists) {
    out.push(`${basename(r.query)}: ${list.from} -> ${list.to}`);
    list.hits.forEach((h, i) =>
      out.push(
        `  ${String(i + 1).padStart(3)}  ${h.score.toFixed(4)}  ${h.entry.modality.padEnd(5)}  ${h.entry.path}`,
      ),
    );
  }
  if (out.length === 0) out.push('no results: the index has no embeddings this query can be compared with');
  return out.join('\n');
}

export function indexDirOf(p: string): string {
  const dir = resolve(p);
  if (!existsSync(join(dir, 'meta.json')))
    throw fileError(dir, "no media index here (build one with 'cavmae index add')");
  return dir;
}
