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
    .requiredOption('--index <dir>', 'index folder, or a LanceDB URI (created when absent)')
    .option('--backend <name>', 'backend of a new index: embedded or lancedb (an existing one is recognised)')
    .option('--queue <url>', 'redis://HOST:PORT/N: split the work into jobs for `cavmae worker` processes; this process commits their results')
    .option('--batch <n>', 'items per commit (with --queue: files per job)', positiveInt('--batch'), 16)
    .option('--attempts <n>', 'with --queue: attempts per job before its files are reported failed', positiveInt('--attempts'), 5)
    .option('--threads <n>', 'compute threads for embedding in this process (default: one per core)', positiveInt('--threads'))
    .option('--no-thumbnails', 'do not write thumbnails')
    .option('--force', 're-embed files even when unchanged')
    .option('--json', 'print the summary as JSON')
    .action(async (inputs: string[], o: { model: string; index: string; backend?: string; queue?: string; batch: number; attempts: number; threads?: number; thumbnails: boolean; force?: boolean; json?: boolean }) => {
      const { runIndexAdd, formatAddSummary } = await import('../../index/run.js');
      const { checkBackend } = await import('../../index/backend.js');
      const s = await runIndexAdd({
        inputs, model: o.model, index: o.index, batch: o.batch, thumbnails: o.thumbnails, force: !!o.force, threads: o.threads,
        ...(o.backend ? { backend: checkBackend(o.backend) } : {}), ...(o.queue ? { queue: o.queue, attempts: o.attempts } : {}),
      });
      process.stdout.write(o.json ? JSON.stringify(s) + '\n' : formatAddSummary(s, o.index) + '\n');
      if (s.failed.length > 0) process.exitCode = 1;
    });

  index
    .command('list')
    .description('list the indexed items')
    .requiredOption('--index <dir>', 'index folder')
    .option('--json', 'one JSON object per line')
    .action(async (o: { index: string; json?: boolean }) => {
      const { openIndexReader } = await import('../../index/backend.js');
      const { indexDirOf } = await import('../../index/run.js');
      const idx = await openIndexReader(indexDirOf(o.index));
      for (const e of idx.list()) {
        const streams = `${e.hasAudio ? 'a' : '-'}${e.hasVisual ? 'v' : '-'}`;
        process.stdout.write(o.json ? JSON.stringify(e) + '\n' : `${e.id}  ${e.modality.padEnd(5)} ${streams}  ${e.path}\n`);
      }
      await idx.close();
    });

  index
    .command('stats')
    .description('model, counts and layout of the index')
    .requiredOption('--index <dir>', 'index folder')
    .action(async (o: { index: string }) => {
      const { openIndexReader } = await import('../../index/backend.js');
      const { indexDirOf } = await import('../../index/run.js');
      const idx = await openIndexReader(indexDirOf(o.index));
      process.stdout.write(JSON.stringify({ backend: idx.backend, ...idx.stats() }, null, 2) + '\n');
      await idx.close();
    });

  index
    .command('remove')
    .description('remove items by id or by file path')
    .argument('<items...>', 'ids (16 hex digits) or paths')
    .requiredOption('--index <dir>', 'index folder')
    .action(async (items: string[], o: { index: string }) => {
      const { indexDirOf, removeFromIndex } = await import('../../index/run.js');
      const r = await removeFromIndex(indexDirOf(o.index), items);
      process.stdout.write(`removed ${r.removed.length}; ${r.left} items left\n`);
      if (r.unknown.length) throw new UserError(`not in the index: ${r.unknown.join(', ')}`);
    });

  index
    .command('compact')
    .description('rewrite the vectors without removed or replaced rows')
    .requiredOption('--index <dir>', 'index folder')
    .action(async (o: { index: string }) => {
      const { indexDirOf, compactIndex } = await import('../../index/run.js');
      process.stdout.write(`${await compactIndex(indexDirOf(o.index))}\n`);
    });

  index
    .command('build-ann')
    .description('build the approximate-search index now: HNSW graphs (embedded; else built at the first --approximate search) or LanceDB\'s vector index (IVF)')
    .requiredOption('--index <dir>', 'index folder')
    .option('--m <n>', 'graph degree', positiveInt('--m'), 16)
    .option('--ef-construction <n>', 'build beam width', positiveInt('--ef-construction'), 200)
    .action(async (o: { index: string; m: number; efConstruction: number }) => {
      const { indexDirOf, buildAnnIndex } = await import('../../index/run.js');
      for (const line of await buildAnnIndex(indexDirOf(o.index), { m: o.m, efConstruction: o.efConstruction })) process.stdout.write(`${line}\n`);
    });
}
