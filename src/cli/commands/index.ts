/**
 * `cavmae index add|list|remove|compact|stats|build-ann`: the media index (src/index; embedded
 * folder or LanceDB). `add` needs the model (in this process, or `cavmae worker`s with --queue);
 * the others only read or rewrite the index.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { INDEX_DIR } from '../options.js';
import { defineCommand, flag, int, negatable, oneOf, str, variadicArgument } from '../schema.js';

const ADD = {
  inputs: variadicArgument('<inputs...>', 'media files and folders'),
  model: str('--model <file>', 'model checkpoint', { required: true }),
  index: str('--index <dir>', 'index folder, or a LanceDB URI (created when absent)', { required: true }),
  backend: oneOf(
    '--backend <name>',
    'backend of a new index: embedded or lancedb (an existing one is recognised)',
    ['embedded', 'lancedb'] as const,
  ),
  queue: str(
    '--queue <url>',
    'redis://HOST:PORT/N: split the work into jobs for `cavmae worker` processes; this process commits their results',
  ),
  batch: int('--batch <n>', 'items per commit (with --queue: files per job)', { min: 1, default: 16 }),
  attempts: int('--attempts <n>', 'with --queue: attempts per job before its files are reported failed', {
    min: 1,
    default: 5,
  }),
  threads: int('--threads <n>', 'compute threads for embedding in this process (default: one per core)', {
    min: 1,
  }),
  thumbnails: negatable('--no-thumbnails', 'do not write thumbnails'),
  force: flag('--force', 're-embed files even when unchanged'),
  json: flag('--json', 'print the summary as JSON'),
};

/** Opens the index at `--index` (either backend) for reading, runs `f`, closes it. */
async function withReader<T>(
  location: string,
  f: (idx: import('../../index/backend.js').SearchableIndex) => T,
): Promise<T> {
  const { openIndexReader } = await import('../../index/backend.js');
  const { indexDirOf } = await import('../../index/run.js');
  const idx = await openIndexReader(indexDirOf(location));
  try {
    return f(idx);
  } finally {
    await idx.close();
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
    async ({ json, backend, queue, attempts, ...o }) => {
      const { runIndexAdd, formatAddSummary } = await import('../../index/run.js');
      const s = await runIndexAdd({
        ...o,
        force: !!o.force,
        ...(backend ? { backend } : {}),
        ...(queue ? { queue, attempts } : {}),
      });
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
      withReader(o.index, (idx) => {
        for (const e of idx.list()) {
          const streams = `${e.hasAudio ? 'a' : '-'}${e.hasVisual ? 'v' : '-'}`;
          process.stdout.write(
            o.json ? JSON.stringify(e) + '\n' : `${e.id}  ${e.modality.padEnd(5)} ${streams}  ${e.path}\n`,
          );
        }
      }),
  );

  defineCommand(index, 'stats', 'model, counts and layout of the index', { index: INDEX_DIR }, (o) =>
    withReader(o.index, (idx) => {
      process.stdout.write(JSON.stringify({ backend: idx.backend, ...idx.stats() }, null, 2) + '\n');
    }),
  );

  defineCommand(
    index,
    'remove',
    'remove items by id or by file path',
    { items: variadicArgument('<items...>', 'ids (16 hex digits) or paths'), index: INDEX_DIR },
    async (o) => {
      const { indexDirOf, removeFromIndex } = await import('../../index/run.js');
      const r = await removeFromIndex(indexDirOf(o.index), o.items);
      process.stdout.write(`removed ${r.removed.length}; ${r.left} items left\n`);
      if (r.unknown.length) throw new UserError(`not in the index: ${r.unknown.join(', ')}`);
    },
  );

  defineCommand(
    index,
    'compact',
    'rewrite the vectors without removed or replaced rows',
    { index: INDEX_DIR },
    async (o) => {
      const { indexDirOf, compactIndex } = await import('../../index/run.js');
      process.stdout.write(`${await compactIndex(indexDirOf(o.index))}\n`);
    },
  );

  defineCommand(
    index,
    'build-ann',
    "build the approximate-search index now: HNSW graphs (embedded; else built at the first --approximate search) or LanceDB's vector index (IVF)",
    {
      index: INDEX_DIR,
      m: int('--m <n>', 'graph degree', { min: 1, default: 16 }),
      efConstruction: int('--ef-construction <n>', 'build beam width', { min: 1, default: 200 }),
    },
    async (o) => {
      const { indexDirOf, buildAnnIndex } = await import('../../index/run.js');
      const lines = await buildAnnIndex(indexDirOf(o.index), { m: o.m, efConstruction: o.efConstruction });
      for (const line of lines) process.stdout.write(`${line}\n`);
    },
  );
}
