/** `cavmae bench-loader --data F`: data loader throughput (samples/s) as one JSON line. */
import type { Command } from 'commander';
import { defineCommand, flag, int, negatable, num, str } from '../schema.js';

const PROBABILITY = { min: 0, max: 1, default: 0 };

const OPTIONS = {
  data: str('--data <file>', 'datafile JSON or manifest', { required: true }),
  labelCsv: str('--label-csv <file>', 'label CSV (index,mid,display_name)'),
  batchSize: int('--batch <n>', 'batch size', { min: 1, default: 32 }),
  workers: int('--workers <n>', 'decoding worker threads', { min: 0, default: 2 }),
  epochs: int('--epochs <n>', 'passes over the data', { min: 1, default: 2 }),
  maxBatches: int('--max-batches <n>', 'batches per epoch at most', { min: 1 }),
  targetLength: int('--target-length <n>', 'fbank rows per sample', { min: 1, default: 1024 }),
  imageSize: int('--image-size <px>', 'image side', { min: 1, default: 224 }),
  eval: flag('--eval', 'evaluation behaviour (fixed frame, no augmentation)'),
  mixup: num('--mixup <p>', 'mixup probability (training)', PROBABILITY),
  freqm: int('--freqm <n>', 'SpecAugment frequency mask (training)', { min: 0, default: 0 }),
  timem: int('--timem <n>', 'SpecAugment time mask (training)', { min: 0, default: 0 }),
  noise: negatable('--no-noise', 'no noise + roll (training)'),
  labelSmooth: num('--label-smooth <e>', 'label smoothing', PROBABILITY),
  cacheMB: int('--cache-mb <n>', 'decoded-media cache per worker (MiB)', { min: 0, default: 384 }),
  seed: int('--seed <s>', 'seed', { min: 0, default: 0 }),
  stepMs: int(
    '--step-ms <ms>',
    'simulated synchronous training step per batch (checks that decoding overlaps it)',
    { min: 0, default: 0 },
  ),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'bench-loader',
    'measure the data loader: samples/s per epoch (first = cold, later = with the decoded-media cache), printed as JSON',
    OPTIONS,
    async ({ eval: evaluation, ...o }) => {
      const { benchLoader } = await import('../../data/bench-loader.js');
      const r = await benchLoader({ ...o, train: !evaluation });
      process.stdout.write(JSON.stringify(r) + '\n');
    },
  );
}
