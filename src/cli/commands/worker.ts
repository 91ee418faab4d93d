/** `cavmae worker --queue redis://HOST:PORT/N [--threads T]`: embeds jobs submitted by `cavmae index add --queue`. */
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
  program
    .command('worker')
    .description(
      'take embedding jobs from a Redis queue (cavmae index add --queue) and return the vectors; run one per machine or core group',
    )
    .requiredOption('--queue <url>', 'redis://HOST:PORT/N, as given to index add')
    .option(
      '--threads <n>',
      'compute threads for the model (default: one per core)',
      positiveInt('--threads'),
    )
    .option(
      '--model <file>',
      "the index's model file on this machine (default: the path the job names, mapped with --map)",
    )
    .option(
      '--map <from=to>',
      'path prefix of the submitting machine = path prefix here (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--name <name>', 'worker name in logs and in the index (default host/pid)')
    .option(
      '--lock-ms <ms>',
      'job lock: a worker silent this long is presumed dead and its job redelivered',
      positiveInt('--lock-ms'),
      30000,
    )
    .option('--max-jobs <n>', 'exit after this many jobs', positiveInt('--max-jobs'))
    .option('--json', 'one JSON line per event on stdout')
    .action(
      async (o: {
        queue: string;
        threads?: number;
        model?: string;
        map: string[];
        name?: string;
        lockMs: number;
        maxJobs?: number;
        json?: boolean;
      }) => {
        const { runWorker } = await import('../../queue/worker.js');
        const s = await runWorker({
          queue: o.queue,
          threads: o.threads,
          model: o.model,
          map: o.map,
          name: o.name,
          lockMs: o.lockMs,
          maxJobs: o.maxJobs,
          log: (e) => {
            if (o.json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...e })}\n`);
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
