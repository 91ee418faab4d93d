/** `cavmae prepare DIR-or-LIST --out D`: 16 kHz wavs + reference frame folders + datafile JSON. */
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
    .command('prepare')
    .description(
      'extract 16 kHz mono wavs and reference frames (<out>/frames/frame_<i>/<video_id>.jpg) from videos and write the official datafile <out>/data.json; resumable, failures go to <out>/failures.jsonl',
    )
    .argument(
      '<input>',
      'folder of videos (searched recursively) or a list file (one path per line / first csv column)',
    )
    .requiredOption('--out <dir>', 'output folder')
    .option(
      '--frames <n>',
      'frames per video: 10 (CAV-MAE) or 16 (CAV-MAE Sync positions)',
      positiveInt('--frames'),
      10,
    )
    .option('--jobs <n>', 'videos processed in parallel', positiveInt('--jobs'), 2)
    .option('--labels <csv>', 'csv of "video_id,labels" rows (labels: comma-separated label ids, quoted)')
    .option('--timeout <seconds>', 'time limit per ffmpeg call', positiveInt('--timeout'), 120)
    .option('--quiet', 'no progress bar')
    .action(
      async (
        input: string,
        o: { out: string; frames: number; jobs: number; labels?: string; timeout: number; quiet?: boolean },
      ) => {
        const { listVideos, readLabelsCsv, prepareVideos } = await import('../../vision/prepare.js');
        const videos = listVideos(input);
        const labels = o.labels ? readLabelsCsv(o.labels) : undefined;
        const showBar = !o.quiet && process.stderr.isTTY;
        const started = Date.now();
        let bar: import('cli-progress').SingleBar | undefined;
        if (showBar) {
          const { default: cliProgress } = await import('cli-progress');
          bar = new cliProgress.SingleBar(
            {
              format:
                'prepare |{bar}| {value}/{total} videos | {rate}/s | ETA {eta_formatted} | failed {failed}',
              stream: process.stderr,
              hideCursor: true,
              etaBuffer: 20,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(videos.length, 0, { rate: '0.00', failed: 0 });
        }
        const summary = await prepareVideos(videos, {
          out: o.out,
          frames: o.frames,
          jobs: o.jobs,
          labels,
          timeoutMs: o.timeout * 1000,
          onProgress: (p) => {
            const rate = p.done / Math.max((Date.now() - started) / 1000, 1e-3);
            bar?.update(p.done, { rate: rate.toFixed(2), failed: p.failed });
          },
        });
        bar?.stop();
        for (const f of summary.failures.slice(0, 20)) process.stderr.write(`cavmae: skipped ${f.error}\n`);
        if (summary.failures.length > 20)
          process.stderr.write(
            `cavmae: ... ${summary.failures.length - 20} more in ${summary.failuresFile}\n`,
          );
        process.stdout.write(
          `prepared ${summary.prepared}, already done ${summary.skipped}, failed ${summary.failed} of ${summary.total} videos ` +
            `in ${((Date.now() - started) / 1000).toFixed(1)} s; datafile ${summary.dataFile}\n`,
        );
        if (summary.failed > 0) {
          throw new UserError(
            `${summary.failed} of ${summary.total} videos failed (reasons in ${summary.failuresFile})`,
          );
        }
      },
    );
}
