/**
 * `cavmae classify --model M (FILE | --audio A --image I) [--label-csv CSV] [--top K] [--json]`:
 * class scores of a fine-tuned model. A video is classified from its soundtrack and its 10
 * reference frames, probabilities averaged over the frames (the reference's frame aggregation).
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`${flag} must be a positive integer, got '${v}'`);
    return n;
  };
}

function frameList(v: string): number[] | 'all' | 'middle' {
  if (v === 'all' || v === 'middle') return v;
  const frames = v.split(',').map((s) => Number(s.trim()));
  if (frames.length === 0 || frames.some((f) => !Number.isInteger(f) || f < 0 || f > 9))
    throw new UserError(`--frames must be all, middle or a list of frame numbers 0-9, got '${v}'`);
  return frames;
}

export function register(program: Command): void {
  program
    .command('classify')
    .description('classify a clip with a fine-tuned model (label names from --label-csv or the checkpoint)')
    .argument('[file]', 'a video (sound + frames), an audio file or an image')
    .requiredOption('--model <file>', 'fine-tuned checkpoint (.pth or .safetensors)')
    .option('--audio <file>', 'audio input (instead of FILE)')
    .option('--image <file>', 'image input, or a video whose frames are used (instead of FILE)')
    .option('--label-csv <file>', 'class names: index,mid,display_name')
    .option('--config <c>', 'model config (preset name or JSON) for checkpoints that carry none')
    .option('--top <k>', 'how many classes to list', positiveInt('--top'), 5)
    .option(
      '--mode <mode>',
      'multimodal, audioonly, videoonly, missingaudioonly or missingvideoonly (default: from the model and the inputs)',
    )
    .option(
      '--activation <a>',
      'sigmoid or softmax (default: the training loss recorded in the checkpoint, else sigmoid)',
    )
    .option('--frames <list>', 'video frames to average: all (default), middle, or e.g. 0,5,9', frameList)
    .option('--bf16', 'bf16 matrix products')
    .option('--json', 'print one JSON object')
    .action(
      async (
        file: string | undefined,
        o: {
          model: string;
          audio?: string;
          image?: string;
          labelCsv?: string;
          config?: string;
          top: number;
          mode?: string;
          activation?: string;
          frames?: number[] | 'all' | 'middle';
          bf16?: boolean;
          json?: boolean;
        },
      ) => {
        if (file && (o.audio || o.image))
          throw new UserError('classify: give either FILE or --audio/--image, not both');
        if (!file && !o.audio && !o.image)
          throw new UserError('classify: give a media FILE, or --audio and/or --image');
        if (o.activation && o.activation !== 'sigmoid' && o.activation !== 'softmax')
          throw new UserError(`--activation must be sigmoid or softmax, got '${o.activation}'`);
        const { CavMae } = await import('../../api/cavmae.js');
        const { classificationJson, formatClassification } = await import('../../api/outputs.js');
        const model = await CavMae.load(o.model, { labels: o.labelCsv, config: o.config, bf16: o.bf16 });
        const frames =
          o.frames === 'all' || o.frames === undefined ? undefined : o.frames === 'middle' ? [5] : o.frames;
        const r = await model.classify(file ?? { audio: o.audio, image: o.image }, {
          top: o.top,
          mode: o.mode as never,
          activation: o.activation as 'sigmoid' | 'softmax' | undefined,
          frames,
        });
        process.stdout.write(
          o.json
            ? JSON.stringify(classificationJson(r)) + '\n'
            : formatClassification(r, file ?? [o.audio, o.image].filter(Boolean).join(' + ')) + '\n',
        );
      },
    );
}
