/**
 * `cavmae localize --model M --image I [--audio A] --out heat.png [--raw map.safetensors|.json]`:
 * where in the picture the sound comes from (audio-to-patch similarity, spec 6.2), as a heat
 * map over the image. Without --audio, --image must be a video with sound.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('localize')
    .description('heat map of the sound source over an image (audio-to-patch cosine similarity)')
    .requiredOption('--model <file>', 'pretrained (or fine-tuned) checkpoint')
    .requiredOption(
      '--image <file>',
      'image, or a video (its middle frame; its soundtrack when --audio is absent)',
    )
    .option('--audio <file>', 'audio (or a video whose soundtrack is used)')
    .requiredOption('--out <file.png>', 'overlay PNG (heat colours over the image)')
    .option(
      '--raw <file>',
      'also write the raw maps: .safetensors (map [gh,gw], heat [H,W], query [D]) or .json',
    )
    .option(
      '--query <q>',
      'audio query: column (the centre time column), mean (all audio tokens) or patchesmean (visual baseline)',
      'column',
    )
    .option('--column <t>', 'time column of the column query (default: the centre)')
    .option('--upsample <m>', 'bilinear or nearest', 'bilinear')
    .option('--size <px>', 'side of the heat map and overlay', '224')
    .option('--frame <i>', 'video frame 0-9 (default 5)')
    .option('--config <c>', 'model config (preset name or JSON) for checkpoints that carry none')
    .option('--bf16', 'bf16 matrix products')
    .option('--json', 'print the peak and files as JSON')
    .action(
      async (o: {
        model: string;
        image: string;
        audio?: string;
        out: string;
        raw?: string;
        query: string;
        column?: string;
        upsample: string;
        size: string;
        frame?: string;
        config?: string;
        bf16?: boolean;
        json?: boolean;
      }) => {
        if (!['column', 'mean', 'patchesmean'].includes(o.query))
          throw new UserError(`--query must be column, mean or patchesmean, got '${o.query}'`);
        if (!['bilinear', 'nearest'].includes(o.upsample))
          throw new UserError(`--upsample must be bilinear or nearest, got '${o.upsample}'`);
        const int = (flag: string, v: string | undefined, lo: number, hi: number): number | undefined => {
          if (v === undefined) return undefined;
          const n = Number(v);
          if (!Number.isInteger(n) || n < lo || n > hi)
            throw new UserError(`${flag} must be an integer in ${lo}..${hi}, got '${v}'`);
          return n;
        };
        const size = int('--size', o.size, 8, 4096)!;
        const column = int('--column', o.column, 0, 1 << 20);
        const frame = int('--frame', o.frame, 0, 9);
        const { CavMae } = await import('../../api/cavmae.js');
        const { writePng, writeLocalizationRaw } = await import('../../api/outputs.js');
        if (!o.out.toLowerCase().endsWith('.png'))
          throw new UserError(`--out ${o.out}: the overlay is a PNG; name the file *.png`);
        const model = await CavMae.load(o.model, { config: o.config, bf16: o.bf16 });
        const r = await model.localize(o.image, o.audio, {
          query: o.query as 'column',
          column,
          upsample: o.upsample as 'bilinear',
          size,
          frame,
        });
        writePng(o.out, r.overlayPng);
        if (o.raw) writeLocalizationRaw(o.raw, r);
        const cy = ((r.peak.row + 0.5) * r.height) / r.gridHeight;
        const cx = ((r.peak.col + 0.5) * r.width) / r.gridWidth;
        if (o.json) {
          process.stdout.write(
            JSON.stringify({
              out: o.out,
              raw: o.raw ?? null,
              query: r.queryKind,
              grid: [r.gridHeight, r.gridWidth],
              size: [r.height, r.width],
              peak: { ...r.peak, x: cx, y: cy },
            }) + '\n',
          );
        } else {
          process.stdout.write(
            `${o.out}: ${r.width}x${r.height} heat map (${r.queryKind} query); strongest patch row ${r.peak.row}, column ${r.peak.col} of ${r.gridHeight}x${r.gridWidth} (centre x=${cx.toFixed(0)}, y=${cy.toFixed(0)}), cosine ${r.peak.score.toFixed(4)}\n`,
          );
          if (o.raw) process.stdout.write(`raw maps: ${o.raw}\n`);
        }
      },
    );
}
