/**
 * `cavmae pretrain --data F [--val F] --config P --out R`: CAV-MAE pretraining with the reference
 * recipe as defaults (src/train/pretrain.ts); CAV-MAE Sync models (`--config sync-tiny`, any
 * config with "model": "cavmae-sync") train on (segment, frame) pairs with the Sync recipe. Writes R/model.safetensors, R/checkpoints/,
 * R/log.jsonl, R/plots/, R/result.json; `--resume` continues exactly from the last checkpoint.
 */
import type { Command } from 'commander';
import type { Variant } from '../../models/index.js';
import { optimiserOptions, RUN_OPTIONS } from '../options.js';
import { apiEnum, defineCommand, flag, int, negatable, num, str, tristate } from '../schema.js';

const OPTIONS = {
  data: str('--data <file>', 'training datafile (official JSON or manifest)', { required: true }),
  val: str('--val <file>', 'validation datafile: masked losses and zero-shot retrieval at every epoch end'),
  config: str(
    '--config <preset|json>',
    'model config: a preset (tiny, base, ...) or a JSON file of the constructor arguments',
    { required: true },
  ),
  out: str('--out <dir>', 'run folder', { required: true }),
  variant: apiEnum<Variant>(
    '--variant <name>',
    'cavmae | av-mae | cav | vanilla-av-mae | audio-mae | visual-mae (paper table 1)',
  ),
  recipe: str(
    '--recipe <name>',
    'defaults of the optimisation: cavmae (reference AS-2M) | sync (CAV-MAE Sync: lr 2e-4, batch 512, cosine per step with 10% warm-up to 0.1 lr, lambda_c 0.1, no noise); default: sync for Sync models, else cavmae',
  ),
  init: str(
    '--init <ckpt>',
    'initial weights (.pth/.safetensors), e.g. an ImageNet MAE adapted with `cavmae adapt-mae`',
  ),
  ...optimiserOptions({ lr: '5e-5; Sync recipe 2e-4', batchSize: 48, epochs: 25, lrStart: 10, lrStep: 5 }),
  contrastWeight: num('--contrast-weight <w>', 'lambda_c (default 0.01; 0 for the MAE-only variants)', {
    min: 0,
  }),
  maeWeight: num('--mae-weight <w>', 'weight of the reconstruction loss (default 1)', { min: 0 }),
  maskRatio: num('--mask-ratio <r>', 'masking ratio of both modalities (default 0.75)', { min: 0 }),
  maskRatioA: num('--mask-ratio-a <r>', 'audio masking ratio', { min: 0 }),
  maskRatioV: num('--mask-ratio-v <r>', 'visual masking ratio', { min: 0 }),
  maskMode: str('--mask-mode <m>', 'audio masking: unstructured | time | freq | tf (default unstructured)'),
  bidirectional: flag('--bidirectional', 'contrastive loss in both directions (the "Symc" model)'),
  contrastiveGroups: int(
    '--contrastive-groups <k>',
    'split each batch into k groups for the contrastive loss (the reference ran 4 GPUs: k = 4)',
    { min: 1 },
  ),
  normPixLoss: tristate(
    '--norm-pix-loss',
    'per-patch normalised reconstruction targets (the recipe; default from the config)',
    '--no-norm-pix-loss',
    'raw reconstruction targets (viewable reconstructions)',
  ),
  evalEvery: int('--eval-every <e>', 'evaluate on --val every e epochs (default 1)', { min: 1 }),
  strategy: str(
    '--strategy <s>',
    'Sync models: clip similarity of the validation retrieval: diagonal_mean (default) | diagonal_max | mean | max',
  ),
  evalRetrieval: negatable('--no-eval-retrieval', 'skip zero-shot retrieval in the per-epoch evaluation'),
  ...RUN_OPTIONS,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'pretrain',
    'self-supervised CAV-MAE pretraining (reference recipe by default); writes <out>/model.safetensors, checkpoints/, log.jsonl, plots/',
    OPTIONS,
    async (o) => {
      const { pretrain } = await import('../../train/pretrain.js');
      const r = await pretrain(o);
      const lines = [`pretrain: ${r.loop.globalStep}/${r.planned} steps, model ${r.model}`];
      const t = r.loop.recent;
      if (Object.keys(t).length) lines.push(`  train (last steps): ${fmt(t)}`);
      if (r.lastEval) lines.push(`  eval: ${fmt(r.lastEval)}`);
      process.stdout.write(lines.join('\n') + '\n');
    },
  );
}

function fmt(m: Record<string, number>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2)}`)
    .join(', ');
}
