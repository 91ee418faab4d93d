/** `cavmae worker --queue redis://HOST:PORT/N [--threads T]`: embeds jobs submitted by `cavmae index add --queue`. */
import type { Command } from 'commander';
import { defineCommand, flag, int, repeated, str } from '../schema.js';

const OPTIONS = {
  queue: str('--queue <url>', 'redis://HOST:PORT/N, as given to index add', { required: true }),
  threads: int('--threads <n>', 'compute threads for the model (default: one per core)', { min: 1 }),
  model: str(
    '--model <file>',
    "the index's model file on this machine (default: the path the job names, mapped with --map)",
  ),
  map: repeated('--map <from=to>', 'path prefix of the submitting machine = path prefix here (repeatable)'),
  name: str('--name <name>', 'worker name in logs and in the index (default host/pid)'),
  lockMs: int(
    '--lock-ms <ms>',
    'job lock: a worker silent this long is presumed dead and its job redelivered',
    {
      min: 1,
      default: 30000,
    },
  ),
  maxJobs: int('--max-jobs <n>', 'exit after this many jobs', { min: 1 }),
  json: flag('--json', 'one JSON line per event on stdout'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'worker',
    'take embedding jobs from a Redis queue (cavmae index add --queue) and return the vectors; run one per machine or core group',
    OPTIONS,
    async ({ json, ...o }) => {
      const { runWorker } = await import('../../queue/worker.js');
      const s = await runWorker({
        ...o,
        log: (e) => {
          if (json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
          else if (e.event === 'ready')
            process.stderr.write(
              `worker ${e.worker}: waiting for jobs on ${e.queue} (${e.threads} threads)\n`,
            );
          else if (e.event === 'job')
            process.stderr.write(
              `worker ${e.worker}: job ${e.job}: ${e.files} files (${e.failed} failed) in ${(e.ms / 1000).toFixed(2)} s\n`,
            );
          else if (e.event === 'error') process.stderr.write(`worker ${e.worker}: ${e.message}\n`);
        },
      });
      process.stderr.write(
        `worker ${s.worker}: stopped after ${s.jobs} jobs, ${s.files} files (${s.failed} failed)\n`,
      );
    },
  );
}
