/**
 * `cavmae index add|list|remove|compact|stats|build-ann`: the embedded media index (src/index).
 * `add` needs the model (via the inference API); the others only read or rewrite the folder.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

export function register(program: Command): void {
  const index = program.command('index').description('build and maintain an embedded media index (a folder; no server needed)');

  index
    .command('add')
    .description('embed media files (folders are walked) into the index; resumable: unchanged files are skipped')
    .argument('<inputs...>', 'media files and folders')
    .requiredOption('--model <file>', 'model checkpoint')
    .requiredOption('--index <dir>', 'index folder (created when absent)')
    .option('--batch <n>', 'items per commit', positiveInt('--batch'), 16)
    .option('--no-thumbnails', 'do not write thumbnails')
    .option('--force', 're-embed files even when unchanged')
    .option('--json', 'print the summary as JSON')
    .action(async (inputs: string[], o: { model: string; index: string; batch: number; thumbnails: boolean; force?: boolean; json?: boolean }) => {
      const { runIndexAdd, formatAddSummary } = await import('../../index/run.js');
      const s = await runIndexAdd({ inputs, model: o.model, index: o.index, batch: o.batch, thumbnails: o.thumbnails, force: !!o.force });
      process.stdout.write(o.json ? JSON.stringify(s) + '\n' : formatAddSummary(s, o.index) + '\n');
      if (s.failed.length > 0) process.exitCode = 1;
    });

  index
    .command('list')
    .description('list the indexed items')
    .requiredOption('--index <dir>', 'index folder')
    .option('--json', 'one JSON object per line')
    .action(async (o: { index: string; json?: boolean }) => {
      const { MediaIndex } = await import('../../index/store.js');
      const { indexDirOf } = await import('../../index/run.js');
      for (const e of MediaIndex.open(indexDirOf(o.index)).list()) {
        const streams = `${e.hasAudio ? 'a' : '-'}${e.hasVisual ? 'v' : '-'}`;
        process.stdout.write(o.json ? JSON.stringify(e) + '\n' : `${e.id}  ${e.modality.padEnd(5)} ${streams}  ${e.path}\n`);
      }
    });

  index
    .command('stats')
    .description('model, counts and layout of the index')
    .requiredOption('--index <dir>', 'index folder')
    .action(async (o: { index: string }) => {
      const { MediaIndex } = await import('../../index/store.js');
      const { indexDirOf } = await import('../../index/run.js');
      process.stdout.write(JSON.stringify(MediaIndex.open(indexDirOf(o.index)).stats(), null, 2) + '\n');
    });

  index
    .command('remove')
    .description('remove items by id or by file path')
    .argument('<items...>', 'ids (16 hex digits) or paths')
    .requiredOption('--index <dir>', 'index folder')
    .action(async (items: string[], o: { index: string }) => {
      const { MediaIndex } = await import('../../index/store.js');
      const { indexDirOf, resolveIds } = await import('../../index/run.js');
      const idx = MediaIndex.open(indexDirOf(o.index), { writable: true });
      try {
        const r = idx.remove(resolveIds(items));
        process.stdout.write(`removed ${r.removed.length}; ${idx.count} items left\n`);
        if (r.unknown.length) throw new UserError(`not in the index: ${r.unknown.join(', ')}`);
      } finally {
        idx.close();
      }
    });

  index
    .command('compact')
    .description('rewrite the vectors without removed or replaced rows')
    .requiredOption('--index <dir>', 'index folder')
    .action(async (o: { index: string }) => {
      const { MediaIndex } = await import('../../index/store.js');
      const { indexDirOf } = await import('../../index/run.js');
      const idx = MediaIndex.open(indexDirOf(o.index), { writable: true });
      try {
        const r = idx.compact();
        process.stdout.write(`compacted ${r.before} rows to ${r.after}\n`);
      } finally {
        idx.close();
      }
    });

  index
    .command('build-ann')
    .description('build (or extend) the approximate-search graphs (HNSW) now instead of at the first --approximate search')
    .requiredOption('--index <dir>', 'index folder')
    .option('--m <n>', 'graph degree', positiveInt('--m'), 16)
    .option('--ef-construction <n>', 'build beam width', positiveInt('--ef-construction'), 200)
    .action(async (o: { index: string; m: number; efConstruction: number }) => {
      const { MediaIndex } = await import('../../index/store.js');
      const { indexDirOf } = await import('../../index/run.js');
      const idx = MediaIndex.open(indexDirOf(o.index));
      const stats = idx.stats();
      for (const space of ['audio', 'visual'] as const) {
        if ((space === 'audio' ? stats.withAudio : stats.withVisual) === 0) continue;
        const t0 = Date.now();
        idx.ann(space, { m: o.m, efConstruction: o.efConstruction });
        process.stdout.write(`${space}: graph over ${space === 'audio' ? stats.withAudio : stats.withVisual} items in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      }
    });
}
