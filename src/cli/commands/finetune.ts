/**
 * `cavmae finetune --data F --val F --init M --label-csv CSV --out R`: supervised fine-tuning
 * (AS-20K recipe defaults), linear probing (--freeze-base) or training from scratch (--config
 * without --init); src/train/finetune.ts does the work.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { number } from './pretrain.js';

interface Flags {
  data: string;
  val: string;
  out: string;
  init?: string;
  config?: string;
  kind?: string;
  labelCsv?: string;
  mode?: string;
  lr?: number;
  headLr?: number;
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
  loss?: string;
  freezeBase?: boolean;
  mixup?: number;
  labelSmooth?: number;
  freqm?: number;
  timem?: number;
  noise: boolean;
  bal?: boolean;
  weights?: string;
  wa: boolean;
  waStart?: number;
  waEnd?: number;
  frameAgg: boolean;
  accum?: number;
  bf16?: boolean;
  seed?: number;
  maxSteps?: number;
  maxMinutes?: number;
  checkpointEvery?: number;
  keepCheckpoints?: number;
  resume?: boolean;
  workers?: number;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('finetune')
    .description('fine-tune a classifier (CAVMAEFT) from a pretrained model, linear-probe it (--freeze-base), or train one from scratch (--config, no --init)')
    .requiredOption('--data <file>', 'training datafile')
    .requiredOption('--val <file>', 'validation datafile (evaluated every epoch and, with frame aggregation, at the end)')
    .requiredOption('--out <dir>', 'run folder')
    .option('--init <ckpt>', 'pretrained CAVMAE or fine-tuned CAVMAEFT weights')
    .option('--config <preset|json>', 'model config (required without --init: training from scratch)')
    .option('--kind <k>', 'classifier: cavmae-ft | cavmae-sync-ft (CAV-MAE Sync: self-attention over the 16 pair features of a clip; default: Sync when --config or --init is a Sync model)')
    .option('--label-csv <file>', 'class index (index,mid,display_name); default: the labels found in --data and --val')
    .option('--mode <m>', 'multimodal | audioonly | videoonly (default multimodal)')
    .option('--lr <x>', 'base learning rate (default 5e-5)', number('--lr'))
    .option('--head-lr <r>', 'learning-rate multiplier of the classification head (default 100)', number('--head-lr', { min: 0 }))
    .option('--batch-size <n>', 'default 36', number('--batch-size', { int: true, min: 1 }))
    .option('--epochs <n>', 'default 15', number('--epochs', { int: true, min: 1 }))
    .option('--schedule <kind>', 'multistep | cosine | constant (default multistep)')
    .option('--lr-start <e>', 'multistep: first decay after this many epochs (default 5)', number('--lr-start', { int: true, min: 0 }))
    .option('--lr-step <e>', 'multistep: epochs between decays (default 1)', number('--lr-step', { int: true, min: 1 }))
    .option('--lr-decay <g>', 'multistep: decay factor (default 0.5)', number('--lr-decay'))
    .option('--warmup-steps <n>', 'cosine: warm-up steps (default 10%)', number('--warmup-steps', { int: true, min: 0 }))
    .option('--min-lr-ratio <r>', 'cosine: final lr / lr (default 0.1)', number('--min-lr-ratio', { min: 0 }))
    .option('--beta1 <b>', 'Adam beta1 (default 0.95)', number('--beta1'))
    .option('--beta2 <b>', 'Adam beta2 (default 0.999)', number('--beta2'))
    .option('--weight-decay <w>', 'L2 weight decay (default 5e-7)', number('--weight-decay', { min: 0 }))
    .option('--loss <kind>', 'bce (multi-label) | ce (single-label, soft targets) | auto (default: ce when every item has one label)')
    .option('--freeze-base', 'train the head only (linear probe)')
    .option('--mixup <p>', 'mixup probability (default 0.5)', number('--mixup', { min: 0 }))
    .option('--label-smooth <e>', 'label smoothing (default 0.1)', number('--label-smooth', { min: 0 }))
    .option('--freqm <n>', 'SpecAugment frequency mask width (default 48)', number('--freqm', { int: true, min: 0 }))
    .option('--timem <n>', 'SpecAugment time mask width (default 192 x audio_length/1024)', number('--timem', { int: true, min: 0 }))
    .option('--no-noise', 'no noise + time-roll augmentation')
    .option('--bal', 'balanced sampling with weights computed from the labels (spec 4.5)')
    .option('--weights <csv>', 'balanced sampling with this weight file (one weight per line)')
    .option('--no-wa', 'no weight averaging: keep the best epoch instead')
    .option('--wa-start <e>', 'first epoch averaged (1-based, default 3)', number('--wa-start', { int: true, min: 1 }))
    .option('--wa-end <e>', 'last epoch averaged (default 15)', number('--wa-end', { int: true, min: 1 }))
    .option('--no-frame-agg', 'final evaluation on the middle frame only')
    .option('--accum <k>', 'gradient accumulation steps (default 1)', number('--accum', { int: true, min: 1 }))
    .option('--bf16', 'bf16 GEMM inputs with fp32 accumulation')
    .option('--seed <n>', 'default 0', number('--seed', { int: true, min: 0 }))
    .option('--max-steps <n>', 'stop after this many optimizer steps in total', number('--max-steps', { int: true, min: 0 }))
    .option('--max-minutes <m>', 'stop after this many minutes', number('--max-minutes', { min: 0 }))
    .option('--checkpoint-every <n>', 'checkpoint every n steps as well as every epoch', number('--checkpoint-every', { int: true, min: 0 }))
    .option('--keep-checkpoints <n>', 'checkpoints kept (default 3)', number('--keep-checkpoints', { int: true, min: 1 }))
    .option('--resume', 'continue the run in --out from its last checkpoint')
    .option('--workers <n>', 'data loader threads (default 2)', number('--workers', { int: true, min: 0 }))
    .option('--quiet', 'no progress display')
    .action(async (f: Flags, cmd: Command) => {
      if (f.kind !== undefined && f.kind !== 'cavmae-ft' && f.kind !== 'cavmae-sync-ft') throw new UserError(`--kind must be cavmae-ft or cavmae-sync-ft, got '${f.kind}'`);
      const { finetune } = await import('../../train/finetune.js');
      const r = await finetune({
        ...f,
        kind: f.kind as 'cavmae-ft' | 'cavmae-sync-ft' | undefined,
        // Only an explicit --no-noise counts (the Sync classifier refuses augmentation it lacks).
        noise: cmd.getOptionValueSource('noise') === 'cli' ? f.noise : undefined,
        balanced: f.bal,
        loss: f.loss as 'bce' | 'ce' | 'auto' | undefined,
        schedule: f.schedule as 'multistep' | 'cosine' | 'constant' | undefined,
      });
      const s = r.final.stats;
      process.stdout.write(
        `finetune: ${r.loop.globalStep}/${r.planned} steps, model ${r.model}\n` +
          `  weights: ${r.weights}\n` +
          `  final (${r.final.frames.length > 1 ? `${r.final.frames.length}-frame aggregation` : `frame ${r.final.frames[0]}`}): ` +
          `mAP ${s.mAP.toFixed(4)}, mAUC ${s.mAUC.toFixed(4)}, d' ${s.dprime.toFixed(4)}, acc ${s.acc.toFixed(4)}\n`,
      );
    });
}
