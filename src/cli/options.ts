/**
 * Schema entries shared by several commands (./schema.ts): one definition per flag that means
 * the same everywhere. A command spreads a group or picks an entry; `{ ...ENTRY, help }` words
 * one differently.
 */
import { UserError } from '../util/errors.js';
import { apiEnum, custom, flag, int, negatable, num, str, tristate } from './schema.js';

export const BF16 = flag('--bf16', 'bf16 GEMM inputs with fp32 accumulation');
export const JSON_OUT = flag('--json', 'print one JSON object');
export const QUIET = flag('--quiet', 'no progress display');
export const WORKERS = int('--workers <n>', 'data loader threads (default 2)', { min: 0 });
export const MODEL_CONFIG = str(
  '--config <preset|json>',
  'model config (preset name or JSON file) for checkpoints that carry none',
);
export const INDEX_DIR = str('--index <dir>', 'index folder', { required: true });
export const FFMPEG_TIMEOUT = int('--timeout <seconds>', 'time limit per ffmpeg call', {
  min: 1,
  default: 120,
});
/** `--frame` of the commands that take Sync models too (the API checks the range per model). */
export const CLIP_FRAME = int(
  '--frame <i>',
  'video frame 0-9 (default 5); a CAV-MAE Sync model: the (segment, frame) pair 0..F-1 (default F/2)',
  { min: 0, max: 4095 },
);

/** `--out <file.png>`: a picture's path, named *.png. */
export function pngOut(help: string, picture: string) {
  return custom(
    '--out <file.png>',
    help,
    (raw, flag) => {
      if (!raw.toLowerCase().endsWith('.png'))
        throw new UserError(`${flag} ${raw}: the ${picture} is a PNG; name the file *.png`);
      return raw;
    },
    { required: true },
  );
}

/** `--raw <file>`: extra outputs as .safetensors or .json. */
export function rawOut(help: string) {
  return custom('--raw <file>', help, (raw, flag) => {
    if (!/\.(json|safetensors)$/i.test(raw))
      throw new UserError(`${flag} ${raw}: use a .json or .safetensors file name`);
    return raw;
  });
}

/** The inputs of classify and reconstruct: a media FILE, or --audio and/or --image. */
export const clipInputs = (image: string) => ({
  audio: str('--audio <file>', 'audio input (instead of FILE)'),
  image: str('--image <file>', `image input, or a video whose ${image} (instead of FILE)`),
});

/** FILE, or { audio, image } from the flags; exactly one of the two forms. */
export function clipInput(
  command: string,
  file: string | undefined,
  o: { audio?: string; image?: string },
  missing: string,
): string | { audio?: string; image?: string } {
  if (file && (o.audio || o.image))
    throw new UserError(`${command}: give either FILE or --audio/--image, not both`);
  if (!file && !o.audio && !o.image) throw new UserError(`${command}: give a media FILE, or ${missing}`);
  return file ?? { audio: o.audio, image: o.image };
}

/** Adam, learning-rate schedule and batching of pretrain and finetune; `d`: the task's defaults. */
export function optimiserOptions(d: {
  lr: string;
  batchSize: number;
  epochs: number;
  lrStart: number;
  lrStep: number;
}) {
  return {
    lr: num('--lr <x>', `base learning rate (default ${d.lr})`),
    batchSize: int('--batch-size <n>', `samples per forward pass (default ${d.batchSize})`, { min: 1 }),
    epochs: int('--epochs <n>', `epochs (default ${d.epochs})`, { min: 1 }),
    schedule: apiEnum<'multistep' | 'cosine' | 'constant'>(
      '--schedule <kind>',
      'multistep (per epoch, the reference) | cosine (per step, warm-up; Sync) | constant (default multistep)',
    ),
    lrStart: int('--lr-start <e>', `multistep: first decay after this many epochs (default ${d.lrStart})`, {
      min: 0,
    }),
    lrStep: int('--lr-step <e>', `multistep: epochs between decays (default ${d.lrStep})`, { min: 1 }),
    lrDecay: num('--lr-decay <g>', 'multistep: decay factor (default 0.5)'),
    warmupSteps: int('--warmup-steps <n>', 'cosine: linear warm-up steps (default 10% of all steps)', {
      min: 0,
    }),
    minLrRatio: num('--min-lr-ratio <r>', 'cosine: final lr / lr (default 0.1)', { min: 0 }),
    beta1: num('--beta1 <b>', 'Adam beta1 (default 0.95)'),
    beta2: num('--beta2 <b>', 'Adam beta2 (default 0.999)'),
    weightDecay: num('--weight-decay <w>', 'L2 weight decay (default 5e-7)', { min: 0 }),
    accum: int('--accum <k>', 'gradient accumulation: k forward batches per optimizer step (default 1)', {
      min: 1,
    }),
  };
}

/** Seed, stopping, checkpoints and resume of a training run (pretrain, finetune). */
export const RUN_OPTIONS = {
  // Neither flag: the recipe's choice (the tiny recipe: bf16 where the CPU computes it natively).
  bf16: tristate(
    '--bf16',
    'bf16 GEMM inputs with fp32 accumulation (default: the recipe\'s; a bf16 recipe only where the CPU has bf16 dot products)',
    '--no-bf16',
    'fp32 throughout, also where the recipe asks for bf16',
  ),
  seed: int('--seed <n>', 'seed of initialisation, data order, augmentation and masking (default 0)', {
    min: 0,
  }),
  // Only an explicit --no-noise counts: the default follows the recipe (Sync: no noise).
  noise: negatable('--no-noise', 'no noise + time-roll augmentation of the fbank', { explicit: true }),
  maxSteps: int('--max-steps <n>', 'stop after this many optimizer steps in total', { min: 0 }),
  maxMinutes: num('--max-minutes <m>', 'stop after this many minutes (this process)', { min: 0 }),
  checkpointEvery: int(
    '--checkpoint-every <n>',
    'checkpoint every n steps as well as at every epoch end (default 0: epochs only)',
    { min: 0 },
  ),
  keepCheckpoints: int('--keep-checkpoints <n>', 'checkpoints kept (default 3)', { min: 1 }),
  resume: flag('--resume', 'continue the run in --out from its last checkpoint'),
  workers: WORKERS,
  quiet: QUIET,
};
