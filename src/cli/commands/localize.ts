/**
 * `cavmae localize --model M --image I [--audio A] --out heat.png [--raw map.safetensors|.json]`:
 * where in the picture the sound comes from (audio-to-patch similarity, spec 6.2), as a heat
 * map over the image. Without --audio, --image must be a video with sound.
 */
import type { Command } from 'commander';
import { BF16, MODEL_CONFIG, pngOut, rawOut, VIDEO_FRAME } from '../options.js';
import { defineCommand, flag, int, oneOf, str } from '../schema.js';

const OPTIONS = {
  model: str('--model <file>', 'pretrained (or fine-tuned) checkpoint', { required: true }),
  image: str(
    '--image <file>',
    'image, or a video (its middle frame; its soundtrack when --audio is absent)',
    {
      required: true,
    },
  ),
  audio: str('--audio <file>', 'audio (or a video whose soundtrack is used)'),
  out: pngOut('overlay PNG (heat colours over the image)', 'overlay'),
  raw: rawOut('also write the raw maps: .safetensors (map [gh,gw], heat [H,W], query [D]) or .json'),
  query: oneOf(
    '--query <q>',
    'audio query: column (the centre time column), mean (all audio tokens) or patchesmean (visual baseline)',
    ['column', 'mean', 'patchesmean'] as const,
    { default: 'column' },
  ),
  column: int('--column <t>', 'time column of the column query (default: the centre)', {
    min: 0,
    max: 1 << 20,
  }),
  upsample: oneOf('--upsample <m>', 'bilinear or nearest', ['bilinear', 'nearest'] as const, {
    default: 'bilinear',
  }),
  size: int('--size <px>', 'side of the heat map and overlay', { min: 8, max: 4096, default: 224 }),
  frame: VIDEO_FRAME,
  config: MODEL_CONFIG,
  bf16: BF16,
  json: flag('--json', 'print the peak and files as JSON'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'localize',
    'heat map of the sound source over an image (audio-to-patch cosine similarity)',
    OPTIONS,
    async ({ model: path, image, audio, out, raw, config, bf16, json, ...o }) => {
      const { CavMae } = await import('../../api/cavmae.js');
      const { writePng, writeLocalizationRaw } = await import('../../api/outputs.js');
      const model = await CavMae.load(path, { config, bf16 });
      const r = await model.localize(image, audio, o);
      writePng(out, r.overlayPng);
      if (raw) writeLocalizationRaw(raw, r);
      const cy = ((r.peak.row + 0.5) * r.height) / r.gridHeight;
      const cx = ((r.peak.col + 0.5) * r.width) / r.gridWidth;
      if (json) {
        process.stdout.write(
          JSON.stringify({
            out,
            raw: raw ?? null,
            query: r.queryKind,
            grid: [r.gridHeight, r.gridWidth],
            size: [r.height, r.width],
            peak: { ...r.peak, x: cx, y: cy },
          }) + '\n',
        );
      } else {
        process.stdout.write(
          `${out}: ${r.width}x${r.height} heat map (${r.queryKind} query); strongest patch row ${r.peak.row}, column ${r.peak.col} of ${r.gridHeight}x${r.gridWidth} (centre x=${cx.toFixed(0)}, y=${cy.toFixed(0)}), cosine ${r.peak.score.toFixed(4)}\n`,
        );
        if (raw) process.stdout.write(`raw maps: ${raw}\n`);
      }
    },
  );
}
