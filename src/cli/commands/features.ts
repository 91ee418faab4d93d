/** `cavmae features FILE --out F.safetensors`: the model inputs of one media file, for debugging and golden tests. */
import type { Command } from 'commander';
import { FFMPEG_TIMEOUT } from '../options.js';
import { argument, defineCommand, int, num, str } from '../schema.js';

const OPTIONS = {
  file: argument('<media-file>', 'audio, image or video file (kind detected from the content)'),
  out: str('--out <file>', 'output .safetensors file', { required: true }),
  targetLength: int('--target-length <n>', 'rows of the audio input (zero-padded or cropped)', {
    min: 1,
    default: 1024,
  }),
  frame: int('--frame <i>', 'video frame index out of 10 (the evaluation frame is 5)', {
    min: 0,
    max: 9,
    default: 5,
  }),
  mean: num('--mean <m>', 'fbank normalisation mean (default: AudioSet, -5.081)'),
  std: num('--std <s>', 'fbank normalisation std (default: AudioSet, 4.4849)'),
  timeout: FFMPEG_TIMEOUT,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'features',
    'write the model inputs of one audio, image or video file as safetensors: audio [N,128] (normalised), audio_raw [frames,128] (log-mel), image [3,224,224] (video: frame 5 of 10)',
    OPTIONS,
    async ({ file, out, timeout, ...o }) => {
      const { extractMediaFeatures } = await import('../../audio/media.js');
      const { writeSafetensors } = await import('../../io/safetensors.js');
      const f = await extractMediaFeatures(file, { ...o, timeoutMs: timeout * 1000 });
      writeSafetensors(out, f.tensors, f.metadata);
      const shapes = Object.entries(f.tensors).map(([k, t]) => `${k} [${t.shape.join(',')}]`);
      process.stdout.write(`${out}: ${f.kind}: ${shapes.join(', ')}\n`);
    },
  );
}
