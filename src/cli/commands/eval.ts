/**
 * `cavmae eval --pred P [--target T] [--label-csv CSV] [--json]`: mAP / mAUC / d' / acc and a
 * per-class AP/AUC report from stored predictions (safetensors `pred` [N,K] + `target` [N,K],
 * .npy or .csv as the reference writes them). Model-driven evaluation is added by the
 * training layer.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('eval')
    .description('classification metrics (mAP, mAUC, d\', acc, per-class AP/AUC) of stored predictions, as the reference computes them')
    .option('--pred <file>', 'predictions [N,K]: .safetensors (tensor "pred", optionally "target"), .npy or .csv')
    .option('--target <file>', 'targets [N,K] (0/1): .safetensors (tensor "target"), .npy or .csv')
    .option('--label-csv <file>', 'class names (index,mid,display_name) for the per-class report')
    .option('--summary', 'omit the per-class table in text output')
    .option('--json', 'print one JSON object')
    .action(async (opts: { pred?: string; target?: string; labelCsv?: string; summary?: boolean; json?: boolean }) => {
      if (!opts.pred) throw new UserError('eval: --pred <file> is required (stored predictions [N,K]; see --help)');
      const { evaluatePredictionFiles, reportToJson, formatReport } = await import('../../eval/predictions.js');
      let names: string[] | undefined;
      if (opts.labelCsv) {
        const { loadLabelCsv } = await import('../../data/datafile.js');
        names = loadLabelCsv(opts.labelCsv).names;
      }
      const report = evaluatePredictionFiles(opts.pred, opts.target, names);
      if (opts.json) process.stdout.write(`${JSON.stringify(reportToJson(report))}\n`);
      else process.stdout.write(`${formatReport(report, { perClass: !opts.summary })}\n`);
    });
}
