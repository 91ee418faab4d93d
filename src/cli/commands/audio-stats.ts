/** `cavmae audio-stats --data D`: fbank mean/std of a dataset, to normalise data far from AudioSet. */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new UserError(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

export function register(program: Command): void {
  program
    .command('audio-stats')
    .description(
      "mean and std of the unnormalised, padded fbank over a dataset (as the AST repository's get_norm_stats: mean of per-batch means and stds)",
    )
    .requiredOption(
      '--data <path>',
      'official datafile JSON, manifest JSON, or a folder of audio/video files',
    )
    .option(
      '--target-length <n>',
      'rows each clip is padded or cropped to',
      positiveInt('--target-length'),
      1024,
    )
    .option('--batch-size <n>', 'clips per batch (AST used 1000)', positiveInt('--batch-size'), 1000)
    .option('--jobs <n>', 'clips decoded in parallel', positiveInt('--jobs'), 2)
    .option('--timeout <seconds>', 'time limit per ffmpeg call', positiveInt('--timeout'), 120)
    .option('--json', 'print one JSON object')
    .option('--quiet', 'no progress bar')
    .action(
      async (o: {
        data: string;
        targetLength: number;
        batchSize: number;
        jobs: number;
        timeout: number;
        json?: boolean;
        quiet?: boolean;
      }) => {
        const { listAudioInputs, computeAudioStats } = await import('../../audio/stats.js');
        const paths = await listAudioInputs(o.data);
        let bar: import('cli-progress').SingleBar | undefined;
        if (!o.quiet && !o.json && process.stderr.isTTY) {
          const { default: cliProgress } = await import('cli-progress');
          bar = new cliProgress.SingleBar(
            {
              format: 'audio-stats |{bar}| {value}/{total} clips | ETA {eta_formatted}',
              stream: process.stderr,
              hideCursor: true,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(paths.length, 0);
        }
        const s = await computeAudioStats(paths, {
          targetLength: o.targetLength,
          batchSize: o.batchSize,
          concurrency: o.jobs,
          timeoutMs: o.timeout * 1000,
          onProgress: (done) => bar?.update(done),
        });
        bar?.stop();
        if (o.json) {
          process.stdout.write(`${JSON.stringify(s)}\n`);
          return;
        }
        for (const f of s.failed.slice(0, 20)) process.stderr.write(`cavmae: skipped ${f.reason}\n`);
        if (s.failed.length > 20)
          process.stderr.write(`cavmae: ... and ${s.failed.length - 20} more unreadable clips\n`);
        process.stdout.write(
          `mean ${s.mean.toFixed(4)} std ${s.std.toFixed(4)}` +
            ` (${s.clips} clips in ${s.batches} batch${s.batches === 1 ? '' : 'es'} of up to ${s.batchSize}, target length ${s.targetLength}` +
            `${s.failed.length ? `, ${s.failed.length} skipped` : ''}; pooled over all values: mean ${s.pooledMean.toFixed(4)} std ${s.pooledStd.toFixed(4)})\n`,
        );
      },
    );
}
