/** `cavmae features FILE --out F.safetensors`: the model inputs of one media file, for debugging and golden tests. */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

function integer(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new UserError(`${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
}

function finiteNumber(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new UserError(`${name} must be a number, got '${v}'`);
    return n;
  };
}

export function register(program: Command): void {
  program
    .command('features')
    .description(
      'write the model inputs of one audio, image or video file as safetensors: audio [N,128] (normalised), audio_raw [frames,128] (log-mel), image [3,224,224] (video: frame 5 of 10)',
    )
    .argument('<media-file>', 'audio, image or video file (kind detected from the content)')
    .requiredOption('--out <file>', 'output .safetensors file')
    .option(
      '--target-length <n>',
      'rows of the audio input (zero-padded or cropped)',
      integer('--target-length', 1),
      1024,
    )
    .option(
      '--frame <i>',
      'video frame index out of 10 (the evaluation frame is 5)',
      integer('--frame', 0),
      5,
    )
    .option('--mean <m>', 'fbank normalisation mean (default: AudioSet, -5.081)', finiteNumber('--mean'))
    .option('--std <s>', 'fbank normalisation std (default: AudioSet, 4.4849)', finiteNumber('--std'))
    .option('--timeout <seconds>', 'time limit per ffmpeg call', integer('--timeout', 1), 120)
    .action(
      async (
        file: string,
        o: { out: string; targetLength: number; frame: number; mean?: number; std?: number; timeout: number },
      ) => {
        const { extractMediaFeatures } = await import('../../audio/media.js');
        const { writeSafetensors } = await import('../../io/safetensors.js');
        if (o.frame > 9) throw new UserError(`--frame must be in 0..9, got ${o.frame}`);
        const f = await extractMediaFeatures(file, {
          targetLength: o.targetLength,
          frame: o.frame,
          mean: o.mean,
          std: o.std,
          timeoutMs: o.timeout * 1000,
        });
        writeSafetensors(o.out, f.tensors, f.metadata);
        const shapes = Object.entries(f.tensors).map(([k, t]) => `${k} [${t.shape.join(',')}]`);
        process.stdout.write(`${o.out}: ${f.kind}: ${shapes.join(', ')}\n`);
      },
    );
}
