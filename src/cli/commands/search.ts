/** `cavmae search --index P (--audio F | --image F | --video F) --k K`: ranked matches with scores. */
import type { Command } from 'commander';
import { INDEX_DIR } from '../options.js';
import { defineCommand, flag, int, oneOf, str } from '../schema.js';

const OPTIONS = {
  index: INDEX_DIR,
  audio: str('--audio <file>', "audio query (a video's soundtrack is used)"),
  image: str('--image <file>', "image query (a video's frame is used)"),
  video: str('--video <file>', 'video query (both its audio and its picture)'),
  k: int('--k <n>', 'results per list', { min: 1, default: 10 }),
  model: str('--model <file>', 'model checkpoint (default: the one the index was built with)'),
  mode: oneOf('--mode <mode>', 'cross, same or all', ['cross', 'same', 'all'] as const, { default: 'all' }),
  approximate: flag('--approximate', 'use the HNSW graph (built on first use) instead of exact search'),
  json: flag('--json', 'print JSON'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'search',
    'search an index with an audio, image or video query (cross-modal and same-modal lists)',
    OPTIONS,
    async ({ json, ...o }) => {
      const { runSearch, formatSearch, indexDirOf } = await import('../../index/run.js');
      const r = await runSearch({ ...o, index: indexDirOf(o.index), approximate: !!o.approximate });
      if (json) {
        const lists = r.result.lists.map((l) => ({
          from: l.from,
          to: l.to,
          hits: l.hits.map((h) => ({
            id: h.id,
            score: h.score,
            path: h.entry.path,
            modality: h.entry.modality,
          })),
        }));
        process.stdout.write(JSON.stringify({ query: r.query, kind: r.kind, lists }) + '\n');
      } else {
        process.stdout.write(formatSearch(r) + '\n');
      }
    },
  );
}
