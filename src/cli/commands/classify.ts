/**
 * `cavmae classify --model M (FILE | --audio A --image I) [--label-csv CSV] [--top K] [--json]`:
 * class scores of a fine-tuned model. A video is classified from its soundtrack and its 10
 * reference frames, probabilities averaged over the frames (the reference's frame aggregation).
 */
import type { Command } from 'commander';
import type { FtMode } from '../../models/index.js';
import { BF16, clipInput, clipInputs, JSON_OUT, MODEL_CONFIG } from '../options.js';
import { UserError } from '../../util/errors.js';
import { apiEnum, custom, defineCommand, int, oneOf, optionalArgument, str } from '../schema.js';

/** all (undefined: every frame), middle ([5]) or a list of frame numbers. */
function frameList(raw: string, flag: string): number[] | undefined {
  if (raw === 'all') return undefined;
  if (raw === 'middle') return [5];
  const frames = raw.split(',').map((s) => Number(s.trim()));
  if (frames.some((f) => !Number.isInteger(f) || f < 0 || f > 9))
    throw new UserError(`${flag} must be all, middle or a list of frame numbers 0-9, got '${raw}'`);
  return frames;
}

const OPTIONS = {
  file: optionalArgument('[file]', 'a video (sound + frames), an audio file or an image'),
  model: str('--model <file>', 'fine-tuned checkpoint (.pth or .safetensors)', { required: true }),
  ...clipInputs('frames are used'),
  labels: str('--label-csv <file>', 'class names: index,mid,display_name'),
  config: MODEL_CONFIG,
  top: int('--top <k>', 'how many classes to list', { min: 1, default: 5 }),
  mode: apiEnum<FtMode>(
    '--mode <mode>',
    'multimodal, audioonly, videoonly, missingaudioonly or missingvideoonly (default: from the model and the inputs)',
  ),
  activation: oneOf(
    '--activation <a>',
    'sigmoid or softmax (default: the training loss recorded in the checkpoint, else sigmoid)',
    ['sigmoid', 'softmax'] as const,
  ),
  frames: custom(
    '--frames <list>',
    'video frames to average: all (default), middle, or e.g. 0,5,9',
    frameList,
  ),
  bf16: BF16,
  json: JSON_OUT,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'classify',
    'classify a clip with a fine-tuned model (label names from --label-csv or the checkpoint)',
    OPTIONS,
    async ({ file, model: path, labels, config, bf16, json, ...o }) => {
      const input = clipInput('classify', file, o, '--audio and/or --image');
      const { CavMae } = await import('../../api/cavmae.js');
      const { classificationJson, formatClassification } = await import('../../api/outputs.js');
      const model = await CavMae.load(path, { labels, config, bf16 });
      const r = await model.classify(input, o);
      process.stdout.write(
        json
          ? JSON.stringify(classificationJson(r)) + '\n'
          : formatClassification(r, file ?? [o.audio, o.image].filter(Boolean).join(' + ')) + '\n',
      );
    },
  );
}
