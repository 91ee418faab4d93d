/** `cavmae prepare DIR-or-LIST --out D`: 16 kHz wavs + reference frame folders + datafile JSON. */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { FFMPEG_TIMEOUT } from '../options.js';
import { argument, defineCommand, flag, int, str } from '../schema.js';
import { progressBar } from '../progress-bar.js';

const OPTIONS = {
  input: argument(
    '<input>',
    'folder of videos (searched recursively) or a list file (one path per line / first csv column)',
  ),
  out: str('--out <dir>', 'output folder', { required: true }),
  frames: int('--frames <n>', 'frames per video: 10 (CAV-MAE) or 16 (CAV-MAE Sync positions)', {
    min: 1,
    default: 10,
  }),
  jobs: int('--jobs <n>', 'videos processed in parallel', { min: 1, default: 2 }),
  labels: str('--labels <csv>', 'csv of "video_id,labels" rows (labels: comma-separated label ids, quoted)'),
  timeout: FFMPEG_TIMEOUT,
  quiet: flag('--quiet', 'no progress bar'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'prepare',
    'extract 16 kHz mono wavs and reference frames (<out>/frames/frame_<i>/<video_id>.jpg) from videos and write the official datafile <out>/data.json; resumable, failures go to <out>/failures.jsonl',
    OPTIONS,
    async (o) => {
      const { listVideos, readLabelsCsv, prepareVideos } = await import('../../vision/prepare.js');
      const videos = listVideos(o.input);
      const labels = o.labels ? readLabelsCsv(o.labels) : undefined;
      const started = Date.now();
      const bar = await progressBar(
        !o.quiet,
        'prepare |{bar}| {value}/{total} videos | {rate}/s | ETA {eta_formatted} | failed {failed}',
        { etaBuffer: 20 },
      );
      bar?.start(videos.length, 0, { rate: '0.00', failed: 0 });
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
        process.stderr.write(`cavmae: ... ${summary.failures.length - 20} more in ${summary.failuresFile}\n`);
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
