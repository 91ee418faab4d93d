/** `cavmae search --index P (--audio F | --image F | --video F) --k K`: ranked matches with scores. */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('search')
    .description('search an index with an audio, image or video query (cross-modal and same-modal lists)')
    .requiredOption('--index <dir>', 'index folder')
    .option('--audio <file>', 'audio query (a video\'s soundtrack is used)')
    .option('--image <file>', 'image query (a video\'s frame is used)')
    .option('--video <file>', 'video query (both its audio and its picture)')
    .option('--k <n>', 'results per list', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new UserError(`--k must be a positive integer, got '${v}'`);
      return n;
    }, 10)
    .option('--model <file>', 'model checkpoint (default: the one the index was built with)')
    .option('--mode <mode>', 'cross, same or all', 'all')
    .option('--approximate', 'use the HNSW graph (built on first use) instead of exact search')
    .option('--json', 'print JSON')
    .action(async (o: { index: string; audio?: string; image?: string; video?: string; k: number; model?: string; mode: string; approximate?: boolean; json?: boolean }) => {
      if (!['cross', 'same', 'all'].includes(o.mode)) throw new UserError(`--mode must be cross, same or all, got '${o.mode}'`);
      const { runSearch, formatSearch, indexDirOf } = await import('../../index/run.js');
      const r = await runSearch({ ...o, index: indexDirOf(o.index), mode: o.mode as 'cross' | 'same' | 'all', approximate: !!o.approximate });
      if (o.json) {
        const lists = r.result.lists.map((l) => ({ from: l.from, to: l.to, hits: l.hits.map((h) => ({ id: h.id, score: h.score, path: h.entry.path, modality: h.entry.modality })) }));
        process.stdout.write(JSON.stringify({ query: r.query, kind: r.kind, lists }) + '\n');
      } else {
        process.stdout.write(formatSearch(r) + '\n');
      }
    });
}
