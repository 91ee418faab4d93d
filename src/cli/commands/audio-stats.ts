/** `cavmae audio-stats --data D`: fbank mean/std of a dataset, to normalise data far from AudioSet. */
import type { Command } from 'commander';
import { FFMPEG_TIMEOUT, JSON_OUT } from '../options.js';
import { progressBar } from '../progress-bar.js';
import { defineCommand, flag, int, str } from '../schema.js';

const OPTIONS = {
  data: str('--data <path>', 'official datafile JSON, manifest JSON, or a folder of audio/video files', {
    required: true,
  }),
  targetLength: int('--target-length <n>', 'rows each clip is padded or cropped to', {
    min: 1,
    default: 1024,
  }),
  batchSize: int('--batch-size <n>', 'clips per batch (AST used 1000)', { min: 1, default: 1000 }),
  concurrency: int('--jobs <n>', 'clips decoded in parallel', { min: 1, default: 2 }),
  timeout: FFMPEG_TIMEOUT,
  json: JSON_OUT,
  quiet: flag('--quiet', 'no progress bar'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'audio-stats',
    "mean and std of the unnormalised, padded fbank over a dataset (as the AST repository's get_norm_stats: mean of per-batch means and stds)",
    OPTIONS,
    async ({ data, timeout, json, quiet, ...o }) => {
      const { listAudioInputs, computeAudioStats } = await import('../../audio/stats.js');
      const paths = await listAudioInputs(data);
      const bar = await progressBar(
        !quiet && !json,
        'audio-stats |{bar}| {value}/{total} clips | ETA {eta_formatted}',
      );
      bar?.start(paths.length, 0);
      const s = await computeAudioStats(paths, {
        ...o,
        timeoutMs: timeout * 1000,
        onProgress: (done) => bar?.update(done),
      });
      bar?.stop();
      if (json) {
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
