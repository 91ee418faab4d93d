/**
 * `cavmae reconstruct --model M (FILE | --audio A --image I) --mask-ratio r --mask-mode m
 * --out panel.png`: masks a clip, reconstructs it (forward_inpaint, spec 6.1) and draws the
 * reference's 2x3 panel (original / masked / reconstruction of the image and the spectrogram)
 * with the per-modality MSE over masked patches.
 */
import type { Command } from 'commander';
import { BF16, clipInput, clipInputs, MODEL_CONFIG, pngOut, rawOut, VIDEO_FRAME } from '../options.js';
import { defineCommand, flag, int, num, oneOf, optionalArgument, str } from '../schema.js';

const RATIO = { min: 0, max: 1, exclusive: true };

const OPTIONS = {
  file: optionalArgument(
    '[file]',
    'a video with sound (or, for a one-modality model, an audio file or an image)',
  ),
  model: str('--model <file>', 'pretrained checkpoint with its decoder', { required: true }),
  ...clipInputs('middle frame is used'),
  out: pngOut('the panel PNG', 'panel'),
  maskRatio: num('--mask-ratio <r>', 'mask ratio of both modalities', { ...RATIO, default: 0.75 }),
  maskRatioA: num('--mask-ratio-a <r>', 'audio mask ratio (overrides --mask-ratio)', RATIO),
  maskRatioV: num('--mask-ratio-v <r>', 'visual mask ratio (overrides --mask-ratio)', RATIO),
  maskMode: oneOf(
    '--mask-mode <m>',
    'audio masking: unstructured, time, freq or tf',
    ['unstructured', 'time', 'freq', 'tf'] as const,
    { default: 'unstructured' },
  ),
  seed: int('--seed <n>', 'mask noise seed', { min: 0, default: 2 }),
  frame: VIDEO_FRAME,
  raw: rawOut(
    'also write predictions and masks: .safetensors (pred_a, pred_v, mask_a, mask_v, loss_mae_a, loss_mae_v) or .json',
  ),
  config: MODEL_CONFIG,
  bf16: BF16,
  json: flag('--json', 'print the MSEs as JSON'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'reconstruct',
    'mask and reconstruct a clip with a pretrained model; 2x3 panel PNG and per-modality MSE',
    OPTIONS,
    async ({ file, model: path, out, raw, config, bf16, json, ...o }) => {
      const input = clipInput('reconstruct', file, o, '--audio and --image');
      const { CavMae } = await import('../../api/cavmae.js');
      const { writePng, writeReconstructionRaw, reconstructionSummary } =
        await import('../../api/outputs.js');
      const model = await CavMae.load(path, { config, bf16 });
      const r = await model.reconstruct(input, o);
      writePng(out, r.panelPng);
      if (raw) writeReconstructionRaw(raw, r);
      if (json) {
        process.stdout.write(JSON.stringify({ out, raw: raw ?? null, ...reconstructionSummary(r) }) + '\n');
      } else {
        const f = (x?: number) => (x === undefined ? 'n/a' : x.toFixed(6));
        process.stdout.write(
          `${out}: MSE over masked patches: audio ${f(r.mseAudio)}, visual ${f(r.mseVisual)}${r.normPixLoss ? ' (normalised-pixel targets)' : ''}\n`,
        );
      }
    },
  );
}
