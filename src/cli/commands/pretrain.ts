/**
 * `cavmae pretrain --data F [--val F] --config P --out R`: CAV-MAE pretraining with the reference
 * recipe as defaults (src/train/pretrain.ts); CAV-MAE Sync models (`--config sync-tiny`, any
 * config with "model": "cavmae-sync") train on (segment, frame) pairs with the Sync recipe. Writes R/model.safetensors, R/checkpoints/,
 * R/log.jsonl, R/plots/, R/result.json; `--resume` continues exactly from the last checkpoint.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

export function number(name: string, opts: { int?: boolean; min?: number } = {}) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min)) {
      throw new UserError(`${name} must be ${opts.int ? 'an integer' : 'a number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}, got '${v}'`);
    }
    return n;
  };
}

interface Flags {
  data: string;
  val?: string;
  config: string;
  out: string;
  variant?: string;
  recipe?: string;
  strategy?: string;
  init?: string;
  lr?: number;
  batchSize?: number;
  epochs?: number;
  schedule?: string;
  lrStart?: number;
  lrStep?: number;
  lrDecay?: number;
  warmupSteps?: number;
  minLrRatio?: number;
  beta1?: number;
  beta2?: number;
  weightDecay?: number;
  contrastWeight?: number;
  maeWeight?: number;
  maskRatio?: number;
  maskRatioA?: number;
  maskRatioV?: number;
  maskMode?: string;
  bidirectional?: boolean;
  contrastiveGroups?: number;
  normPixLoss?: boolean;
  accum?: number;
  bf16?: boolean;
  seed?: number;
  noise: boolean;
  maxSteps?: number;
  maxMinutes?: number;
  checkpointEvery?: number;
  keepCheckpoints?: number;
  resume?: boolean;
  workers?: number;
  quiet?: boolean;
  evalRetrieval: boolean;
  evalEvery?: number;
}

export function register(program: Command): void {
  program
    .command('pretrain')
    .description('self-supervised CAV-MAE pretraining (reference recipe by default); writes <out>/model.safetensors, checkpoints/, log.jsonl, plots/')
    .requiredOption('--data <file>', 'training datafile (official JSON or manifest)')
    .option('--val <file>', 'validation datafile: masked losses and zero-shot retrieval at every epoch end')
    .requiredOption('--config <preset|json>', 'model config: a preset (tiny, base, ...) or a JSON file of the constructor arguments')
    .requiredOption('--out <dir>', 'run folder')
    .option('--variant <name>', 'cavmae | av-mae | cav | vanilla-av-mae | audio-mae | visual-mae (paper table 1)')
    .option('--recipe <name>', 'defaults of the optimisation: cavmae (reference AS-2M) | sync (CAV-MAE Sync: lr 2e-4, batch 512, cosine per step with 10% warm-up to 0.1 lr, lambda_c 0.1, no noise); default: sync for Sync models, else cavmae')
    .option('--init <ckpt>', 'initial weights (.pth/.safetensors), e.g. an ImageNet MAE adapted with `cavmae adapt-mae`')
    .option('--lr <x>', 'base learning rate (default 5e-5; Sync recipe 2e-4)', number('--lr'))
    .option('--batch-size <n>', 'samples per forward pass (default 48)', number('--batch-size', { int: true, min: 1 }))
    .option('--epochs <n>', 'epochs (default 25)', number('--epochs', { int: true, min: 1 }))
    .option('--schedule <kind>', 'multistep (reference: per epoch) | cosine (Sync: per step, warm-up) | constant (default multistep)')
    .option('--lr-start <e>', 'multistep: first decay after this many epochs (default 10)', number('--lr-start', { int: true, min: 0 }))
    .option('--lr-step <e>', 'multistep: epochs between decays (default 5)', number('--lr-step', { int: true, min: 1 }))
    .option('--lr-decay <g>', 'multistep: decay factor (default 0.5)', number('--lr-decay'))
    .option('--warmup-steps <n>', 'cosine: linear warm-up steps (default 10% of all steps)', number('--warmup-steps', { int: true, min: 0 }))
    .option('--min-lr-ratio <r>', 'cosine: final lr / lr (default 0.1)', number('--min-lr-ratio', { min: 0 }))
    .option('--beta1 <b>', 'Adam beta1 (default 0.95)', number('--beta1'))
    .option('--beta2 <b>', 'Adam beta2 (default 0.999)', number('--beta2'))
    .option('--weight-decay <w>', 'L2 weight decay (default 5e-7)', number('--weight-decay', { min: 0 }))
    .option('--contrast-weight <w>', 'lambda_c (default 0.01; 0 for the MAE-only variants)', number('--contrast-weight', { min: 0 }))
    .option('--mae-weight <w>', 'weight of the reconstruction loss (default 1)', number('--mae-weight', { min: 0 }))
    .option('--mask-ratio <r>', 'masking ratio of both modalities (default 0.75)', number('--mask-ratio', { min: 0 }))
    .option('--mask-ratio-a <r>', 'audio masking ratio', number('--mask-ratio-a', { min: 0 }))
    .option('--mask-ratio-v <r>', 'visual masking ratio', number('--mask-ratio-v', { min: 0 }))
    .option('--mask-mode <m>', 'audio masking: unstructured | time | freq | tf (default unstructured)')
    .option('--bidirectional', 'contrastive loss in both directions (the "Symc" model)')
    .option('--contrastive-groups <k>', 'split each batch into k groups for the contrastive loss (the reference ran 4 GPUs: k = 4)', number('--contrastive-groups', { int: true, min: 1 }))
    .option('--norm-pix-loss', 'per-patch normalised reconstruction targets (the recipe; default from the config)')
    .option('--no-norm-pix-loss', 'raw reconstruction targets (viewable reconstructions)')
    .option('--accum <k>', 'gradient accumulation: k forward batches per optimizer step (default 1)', number('--accum', { int: true, min: 1 }))
    .option('--bf16', 'bf16 GEMM inputs with fp32 accumulation')
    .option('--seed <n>', 'seed of initialisation, data order, augmentation and masks (default 0)', number('--seed', { int: true, min: 0 }))
    .option('--no-noise', 'no noise + time-roll augmentation of the fbank')
    .option('--max-steps <n>', 'stop after this many optimizer steps in total', number('--max-steps', { int: true, min: 0 }))
    .option('--max-minutes <m>', 'stop after this many minutes (this process)', number('--max-minutes', { min: 0 }))
    .option('--checkpoint-every <n>', 'checkpoint every n steps as well as at every epoch end (default 0: epochs only)', number('--checkpoint-every', { int: true, min: 0 }))
    .option('--keep-checkpoints <n>', 'checkpoints kept (default 3)', number('--keep-checkpoints', { int: true, min: 1 }))
    .option('--resume', 'continue the run in --out from its last checkpoint')
    .option('--workers <n>', 'data loader threads (default 2)', number('--workers', { int: true, min: 0 }))
    .option('--eval-every <e>', 'evaluate on --val every e epochs (default 1)', number('--eval-every', { int: true, min: 1 }))
    .option('--strategy <s>', 'Sync models: clip similarity of the validation retrieval: diagonal_mean (default) | diagonal_max | mean | max')
    .option('--no-eval-retrieval', 'skip zero-shot retrieval in the per-epoch evaluation')
    .option('--quiet', 'no progress display')
    .action(async (f: Flags, cmd: Command) => {
      const { pretrain } = await import('../../train/pretrain.js');
      const r = await pretrain({
        ...f,
        // Only an explicit --no-noise counts: the default follows the recipe (Sync: no noise).
        noise: cmd.getOptionValueSource('noise') === 'cli' ? f.noise : undefined,
        variant: f.variant as import('../../models/index.js').Variant | undefined,
        schedule: f.schedule as 'multistep' | 'cosine' | 'constant' | undefined,
      });
      const lines = [`pretrain: ${r.loop.globalStep}/${r.planned} steps, model ${r.model}`];
      const t = r.loop.recent;
      if (Object.keys(t).length) lines.push(`  train (last steps): ${fmt(t)}`);
      if (r.lastEval) lines.push(`  eval: ${fmt(r.lastEval)}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}

function fmt(m: Record<string, number>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${Math.abs(v) >= 1e-3 || v === 0 ? v.toFixed(4) : v.toExponential(2)}`)
    .join(', ');
}
