/**
 * `cavmae finetune --data F --val F --init M --label-csv CSV --out R`: supervised fine-tuning
 * (AS-20K recipe defaults), linear probing (--freeze-base) or training from scratch (--config
 * without --init); src/train/finetune.ts does the work.
 */
import type { Command } from 'commander';
import { optimiserOptions, RUN_OPTIONS } from '../options.js';
import { apiEnum, defineCommand, flag, int, negatable, num, oneOf, str } from '../schema.js';

const OPTIONS = {
  data: str('--data <file>', 'training datafile', { required: true }),
  val: str(
    '--val <file>',
    'validation datafile (evaluated every epoch and, with frame aggregation, at the end)',
    { required: true },
  ),
  out: str('--out <dir>', 'run folder', { required: true }),
  init: str('--init <ckpt>', 'pretrained CAVMAE or fine-tuned CAVMAEFT weights'),
  config: str('--config <preset|json>', 'model config (required without --init: training from scratch)'),
  kind: oneOf(
    '--kind <k>',
    'classifier: cavmae-ft | cavmae-sync-ft (CAV-MAE Sync: self-attention over the 16 pair features of a clip; default: Sync when --config or --init is a Sync model)',
    ['cavmae-ft', 'cavmae-sync-ft'] as const,
  ),
  labelCsv: str(
    '--label-csv <file>',
    'class index (index,mid,display_name); default: the labels found in --data and --val',
  ),
  mode: str('--mode <m>', 'multimodal | audioonly | videoonly (default multimodal)'),
  headLr: num('--head-lr <r>', 'learning-rate multiplier of the classification head (default 100)', {
    min: 0,
  }),
  ...optimiserOptions({ lr: '5e-5', batchSize: 36, epochs: 15, lrStart: 5, lrStep: 1 }),
  loss: apiEnum<'bce' | 'ce' | 'auto'>(
    '--loss <kind>',
    'bce (multi-label) | ce (single-label, soft targets) | auto (default: ce when every item has one label)',
  ),
  freezeBase: flag('--freeze-base', 'train the head only (linear probe)'),
  mixup: num('--mixup <p>', 'mixup probability (default 0.5)', { min: 0 }),
  labelSmooth: num('--label-smooth <e>', 'label smoothing (default 0.1)', { min: 0 }),
  freqm: int('--freqm <n>', 'SpecAugment frequency mask width (default 48)', { min: 0 }),
  timem: int('--timem <n>', 'SpecAugment time mask width (default 192 x audio_length/1024)', { min: 0 }),
  balanced: flag('--bal', 'balanced sampling with weights computed from the labels (spec 4.5)'),
  weights: str('--weights <csv>', 'balanced sampling with this weight file (one weight per line)'),
  wa: negatable('--no-wa', 'no weight averaging: keep the best epoch instead'),
  waStart: int('--wa-start <e>', 'first epoch averaged (1-based, default 3)', { min: 1 }),
  waEnd: int('--wa-end <e>', 'last epoch averaged (default 15)', { min: 1 }),
  frameAgg: negatable('--no-frame-agg', 'final evaluation on the middle frame only'),
  ...RUN_OPTIONS,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'finetune',
    'fine-tune a classifier (CAVMAEFT) from a pretrained model, linear-probe it (--freeze-base), or train one from scratch (--config, no --init)',
    OPTIONS,
    async (o) => {
      const { finetune } = await import('../../train/finetune.js');
      const r = await finetune(o);
      const s = r.final.stats;
      process.stdout.write(
        `finetune: ${r.loop.globalStep}/${r.planned} steps, model ${r.model}\n` +
          `  weights: ${r.weights}\n` +
          `  final (${r.final.frames.length > 1 ? `${r.final.frames.length}-frame aggregation` : `frame ${r.final.frames[0]}`}): ` +
          `mAP ${s.mAP.toFixed(4)}, mAUC ${s.mAUC.toFixed(4)}, d' ${s.dprime.toFixed(4)}, acc ${s.acc.toFixed(4)}\n`,
      );
    },
  );
}
