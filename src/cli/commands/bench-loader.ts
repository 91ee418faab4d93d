/** `cavmae bench-loader --data F`: data loader throughput (samples/s) as one JSON line. */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new UserError(`${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
}

function prob(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !(n >= 0 && n <= 1))
      throw new UserError(`${name} must be a number in [0, 1], got '${v}'`);
    return n;
  };
}

interface Flags {
  data: string;
  labelCsv?: string;
  batch: number;
  workers: number;
  epochs: number;
  maxBatches?: number;
  targetLength: number;
  imageSize: number;
  eval?: boolean;
  mixup: number;
  freqm: number;
  timem: number;
  noise: boolean;
  labelSmooth: number;
  cacheMb: number;
  seed: number;
  stepMs: number;
}

export function register(program: Command): void {
  program
    .command('bench-loader')
    .description(
      'measure the data loader: samples/s per epoch (first = cold, later = with the decoded-media cache), printed as JSON',
    )
    .requiredOption('--data <file>', 'datafile JSON or manifest')
    .option('--label-csv <file>', 'label CSV (index,mid,display_name)')
    .option('--batch <n>', 'batch size', int('--batch', 1), 32)
    .option('--workers <n>', 'decoding worker threads', int('--workers', 0), 2)
    .option('--epochs <n>', 'passes over the data', int('--epochs', 1), 2)
    .option('--max-batches <n>', 'batches per epoch at most', int('--max-batches', 1))
    .option('--target-length <n>', 'fbank rows per sample', int('--target-length', 1), 1024)
    .option('--image-size <px>', 'image side', int('--image-size', 1), 224)
    .option('--eval', 'evaluation behaviour (fixed frame, no augmentation)')
    .option('--mixup <p>', 'mixup probability (training)', prob('--mixup'), 0)
    .option('--freqm <n>', 'SpecAugment frequency mask (training)', int('--freqm', 0), 0)
    .option('--timem <n>', 'SpecAugment time mask (training)', int('--timem', 0), 0)
    .option('--no-noise', 'no noise + roll (training)')
    .option('--label-smooth <e>', 'label smoothing', prob('--label-smooth'), 0)
    .option('--cache-mb <n>', 'decoded-media cache per worker (MiB)', int('--cache-mb', 0), 384)
    .option('--seed <s>', 'seed', int('--seed', 0), 0)
    .option(
      '--step-ms <ms>',
      'simulated synchronous training step per batch (checks that decoding overlaps it)',
      int('--step-ms', 0),
      0,
    )
    .action(async (o: Flags) => {
      const { benchLoader } = await import('../../data/bench-loader.js');
      const r = await benchLoader({
        data: o.data,
        labelCsv: o.labelCsv,
        batchSize: o.batch,
        workers: o.workers,
        epochs: o.epochs,
        maxBatches: o.maxBatches,
        targetLength: o.targetLength,
        imageSize: o.imageSize,
        train: !o.eval,
        mixup: o.mixup,
        freqm: o.freqm,
        timem: o.timem,
        noise: o.noise,
        labelSmooth: o.labelSmooth,
        cacheMB: o.cacheMb,
        seed: o.seed,
        stepMs: o.stepMs,
      });
      process.stdout.write(JSON.stringify(r) + '\n');
    });
}
