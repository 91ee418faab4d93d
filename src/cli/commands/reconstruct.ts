/**
 * `cavmae reconstruct --model M (FILE | --audio A --image I) --mask-ratio r --mask-mode m
 * --out panel.png`: masks a clip, reconstructs it (forward_inpaint, spec 6.1) and draws the
 * reference's 2x3 panel (original / masked / reconstruction of the image and the spectrogram)
 * with the per-modality MSE over masked patches.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

function ratio(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!(n > 0 && n < 1)) throw new UserError(`${flag} must be a number in (0, 1), got '${v}'`);
    return n;
  };
}

export function register(program: Command): void {
  program
    .command('reconstruct')
    .description('mask and reconstruct a clip with a pretrained model; 2x3 panel PNG and per-modality MSE')
    .argument('[file]', 'a video with sound (or, for a one-modality model, an audio file or an image)')
    .requiredOption('--model <file>', 'pretrained checkpoint with its decoder')
    .option('--audio <file>', 'audio input (instead of FILE)')
    .option('--image <file>', 'image input, or a video whose middle frame is used (instead of FILE)')
    .requiredOption('--out <file.png>', 'the panel PNG')
    .option('--mask-ratio <r>', 'mask ratio of both modalities', ratio('--mask-ratio'), 0.75)
    .option('--mask-ratio-a <r>', 'audio mask ratio (overrides --mask-ratio)', ratio('--mask-ratio-a'))
    .option('--mask-ratio-v <r>', 'visual mask ratio (overrides --mask-ratio)', ratio('--mask-ratio-v'))
    .option('--mask-mode <m>', 'audio masking: unstructured, time, freq or tf', 'unstructured')
    .option('--seed <n>', 'mask noise seed', '2')
    .option('--frame <i>', 'video frame 0-9 (default 5)')
    .option(
      '--raw <file>',
      'also write predictions and masks: .safetensors (pred_a, pred_v, mask_a, mask_v, loss_mae_a, loss_mae_v) or .json',
    )
    .option('--config <c>', 'model config (preset name or JSON) for checkpoints that carry none')
    .option('--bf16', 'bf16 matrix products')
    .option('--json', 'print the MSEs as JSON')
    .action(
      async (
        file: string | undefined,
        o: {
          model: string;
          audio?: string;
          image?: string;
          out: string;
          maskRatio: number;
          maskRatioA?: number;
          maskRatioV?: number;
          maskMode: string;
          seed: string;
          frame?: string;
          raw?: string;
          config?: string;
          bf16?: boolean;
          json?: boolean;
        },
      ) => {
        if (file && (o.audio || o.image))
          throw new UserError('reconstruct: give either FILE or --audio/--image, not both');
        if (!file && !o.audio && !o.image)
          throw new UserError('reconstruct: give a media FILE, or --audio and --image');
        if (!['unstructured', 'time', 'freq', 'tf'].includes(o.maskMode))
          throw new UserError(`--mask-mode must be unstructured, time, freq or tf, got '${o.maskMode}'`);
        const seed = Number(o.seed);
        if (!Number.isInteger(seed) || seed < 0)
          throw new UserError(`--seed must be a non-negative integer, got '${o.seed}'`);
        const frame = o.frame === undefined ? undefined : Number(o.frame);
        if (frame !== undefined && !(Number.isInteger(frame) && frame >= 0 && frame <= 9))
          throw new UserError(`--frame must be an integer in 0..9, got '${o.frame}'`);
        if (!o.out.toLowerCase().endsWith('.png'))
          throw new UserError(`--out ${o.out}: the panel is a PNG; name the file *.png`);
        const { CavMae } = await import('../../api/cavmae.js');
        const { writePng, writeReconstructionRaw } = await import('../../api/outputs.js');
        const model = await CavMae.load(o.model, { config: o.config, bf16: o.bf16 });
        const r = await model.reconstruct(file ?? { audio: o.audio, image: o.image }, {
          maskRatioA: o.maskRatioA ?? o.maskRatio,
          maskRatioV: o.maskRatioV ?? o.maskRatio,
          maskMode: o.maskMode as 'unstructured',
          seed,
          frame,
        });
        writePng(o.out, r.panelPng);
        if (o.raw) writeReconstructionRaw(o.raw, r);
        if (o.json) {
          process.stdout.write(
            JSON.stringify({
              out: o.out,
              raw: o.raw ?? null,
              mseAudio: r.mseAudio ?? null,
              mseVisual: r.mseVisual ?? null,
              maskRatioA: r.maskRatioA,
              maskRatioV: r.maskRatioV,
              maskMode: r.maskMode,
              normPixLoss: r.normPixLoss,
            }) + '\n',
          );
        } else {
          const f = (x?: number) => (x === undefined ? 'n/a' : x.toFixed(6));
          process.stdout.write(
            `${o.out}: MSE over masked patches: audio ${f(r.mseAudio)}, visual ${f(r.mseVisual)}${r.normPixLoss ? ' (normalised-pixel targets)' : ''}\n`,
          );
        }
      },
    );
}
