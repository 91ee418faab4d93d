/**
 * `cavmae index add|list|remove|compact|stats|build-ann`: the embedded media index (src/index).
 * `add` needs the model (via the inference API); the others only read or rewrite the folder.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { INDEX_DIR } from '../options.js';
import { defineCommand, flag, int, negatable, str, variadicArgument } from '../schema.js';

const ADD = {
  inputs: variadicArgument('<inputs...>', 'media files and folders'),
  model: str('--model <file>', 'model checkpoint', { required: true }),
  index: str('--index <dir>', 'index folder (created when absent)', { required: true }),
  batch: int('--batch <n>', 'items per commit', { min: 1, default: 16 }),
  thumbnails: negatable('--no-thumbnails', 'do not write thumbnails'),
  force: flag('--force', 're-embed files even when unchanged'),
  json: flag('--json', 'print the summary as JSON'),
};

/** Opens the index of `--index` (read-only unless `writable`), runs `f`, closes a writable one. */
async function withIndex<T>(
  dir: string,
  writable: boolean,
  f: (idx: import('../../index/store.js').MediaIndex) => T,
): Promise<T> {
  const { MediaIndex } = await import('../../index/store.js');
  const { indexDirOf } = await import('../../index/run.js');
  const idx = MediaIndex.open(indexDirOf(dir), { writable });
  try {
    return f(idx);
  } finally {
    if (writable) idx.close();
  }
}

export function register(program: Command): void {
  const index = program
    .command('index')
    .description('build and maintain an embedded media index (a folder; no server needed)');

  defineCommand(
    index,
    'add',
    'embed media files (folders are walked) into the index; resumable: unchanged files are skipped',
    ADD,
    async ({ json, ...o }) => {
      const { runIndexAdd, formatAddSummary } = await import('../../index/run.js');
      const s = await runIndexAdd({ ...o, force: !!o.force });
      process.stdout.write(json ? JSON.stringify(s) + '\n' : formatAddSummary(s, o.index) + '\n');
      if (s.failed.length > 0) process.exitCode = 1;
    },
  );

  defineCommand(
    index,
    'list',
    'list the indexed items',
    { index: INDEX_DIR, json: flag('--json', 'one JSON object per line') },
    (o) =>
      withIndex(o.index, false, (idx) => {
        for (const e of idx.list()) {
          const streams = `${e.hasAudio ? 'a' : '-'}${e.hasVisual ? 'v' : '-'}`;
          process.stdout.write(
            o.json ? JSON.stringify(e) + '\n' : `${e.id}  ${e.modality.padEnd(5)} ${streams}  ${e.path}\n`,
          );
        }
      }),
  );

  defineCommand(index, 'stats', 'model, counts and layout of the index', { index: INDEX_DIR }, (o) =>
    withIndex(o.index, false, (idx) => {
      process.stdout.write(JSON.stringify(idx.stats(), null, 2) + '\n');
    }),
  );

  defineCommand(
    index,
    'remove',
    'remove items by id or by file path',
    { items: variadicArgument('<items...>', 'ids (16 hex digits) or paths'), index: INDEX_DIR },
    async (o) => {
      const { resolveIds } = await import('../../index/run.js');
      await withIndex(o.index, true, (idx) => {
        const r = idx.remove(resolveIds(o.items));
        process.stdout.write(`removed ${r.removed.length}; ${idx.count} items left\n`);
        if (r.unknown.length) throw new UserError(`not in the index: ${r.unknown.join(', ')}`);
      });
    },
  );

  defineCommand(
    index,
    'compact',
    'rewrite the vectors without removed or replaced rows',
    { index: INDEX_DIR },
    (o) =>
      withIndex(o.index, true, (idx) => {
        const r = idx.compact();
        process.stdout.write(`compacted ${r.before} rows to ${r.after}\n`);
      }),
  );

  defineCommand(
    index,
    'build-ann',
    'build (or extend) the approximate-search graphs (HNSW) now instead of at the first --approximate search',
    {
      index: INDEX_DIR,
      m: int('--m <n>', 'graph degree', { min: 1, default: 16 }),
      efConstruction: int('--ef-construction <n>', 'build beam width', { min: 1, default: 200 }),
    },
    (o) =>
      withIndex(o.index, false, (idx) => {
        const stats = idx.stats();
        for (const space of ['audio', 'visual'] as const) {
          const items = space === 'audio' ? stats.withAudio : stats.withVisual;
          if (items === 0) continue;
          const t0 = Date.now();
          idx.ann(space, { m: o.m, efConstruction: o.efConstruction });
          process.stdout.write(
            `${space}: graph over ${items} items in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
          );
        }
      }),
  );
}
