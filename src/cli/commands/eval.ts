/**
 * `cavmae eval --pred P [--target T] [--label-csv CSV] [--json]`: mAP / mAUC / d' / acc and a
 * per-class AP/AUC report from stored predictions (safetensors `pred` [N,K] + `target` [N,K],
 * .npy or .csv as the reference writes them).
 * `cavmae eval --model M --data F [--label-csv CSV] [--mode m]`: runs a fine-tuned model on a
 * datafile (10-frame probability aggregation as the reference) and reports the same metrics.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

interface Flags {
  pred?: string;
  target?: string;
  model?: string;
  data?: string;
  mode?: string;
  loss?: string;
  frameAgg: boolean;
  predOut?: string;
  batchSize?: string;
  workers?: string;
  labelCsv?: string;
  summary?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('eval')
    .description('classification metrics (mAP, mAUC, d\', acc, per-class AP/AUC) as the reference computes them: of stored predictions, or of a fine-tuned model on a datafile')
    .option('--pred <file>', 'predictions [N,K]: .safetensors (tensor "pred", optionally "target"), .npy or .csv')
    .option('--target <file>', 'targets [N,K] (0/1): .safetensors (tensor "target"), .npy or .csv')
    .option('--model <ckpt>', 'a fine-tuned model (cavmae finetune) to run on --data')
    .option('--data <file>', 'datafile to classify with --model')
    .option('--mode <m>', 'with --model: multimodal | audioonly | videoonly | missingaudioonly | missingvideoonly (default: the mode it was trained with)')
    .option('--loss <bce|ce>', 'with --model: sigmoid (bce) or softmax (ce) probabilities (default: what it was trained with)')
    .option('--no-frame-agg', 'with --model: middle frame only instead of averaging the probabilities of frames 0..9')
    .option('--pred-out <file>', 'with --model: also write the probabilities and targets (pred, target) as safetensors')
    .option('--batch-size <n>', 'with --model: clips per forward pass (default 32)')
    .option('--workers <n>', 'with --model: data loader threads (default 2)')
    .option('--label-csv <file>', 'class names (index,mid,display_name); with --model also the class index (default: stored with the model)')
    .option('--summary', 'omit the per-class table in text output')
    .option('--json', 'print one JSON object')
    .action(async (opts: Flags) => {
      const { reportToJson, formatReport } = await import('../../eval/predictions.js');
      if (opts.model || opts.data) {
        if (opts.pred || opts.target) throw new UserError('eval: pass either --pred (stored predictions) or --model with --data, not both');
        if (!opts.model || !opts.data) throw new UserError('eval: --model and --data go together');
        const int = (v: string | undefined, what: string): number | undefined => {
          if (v === undefined) return undefined;
          const n = Number(v);
          if (!Number.isInteger(n) || n < 0) throw new UserError(`${what} must be a non-negative integer, got '${v}'`);
          return n;
        };
        const { evaluateModelFile } = await import('../../eval/evaluate.js');
        const r = await evaluateModelFile({
          model: opts.model,
          data: opts.data,
          labelCsv: opts.labelCsv,
          mode: opts.mode,
          loss: opts.loss,
          frameAgg: opts.frameAgg,
          predOut: opts.predOut,
          batchSize: int(opts.batchSize, '--batch-size'),
          workers: int(opts.workers, '--workers'),
        });
        const how = r.frames.length > 1 ? `probabilities averaged over frames ${r.frames[0]}..${r.frames[r.frames.length - 1]}` : `frame ${r.frames[0]}`;
        if (opts.json) process.stdout.write(`${JSON.stringify({ ...reportToJson(r), mode: r.mode, loss: r.loss, frames: r.frames, perFrame: r.perFrame })}\n`);
        else process.stdout.write(`mode ${r.mode}, ${r.loss === 'ce' ? 'softmax' : 'sigmoid'} probabilities, ${how}\n${formatReport(r, { perClass: !opts.summary })}\n`);
        return;
      }
      if (!opts.pred) throw new UserError('eval: --pred <file> (stored predictions [N,K]) or --model <ckpt> --data <file> is required (see --help)');
      const { evaluatePredictionFiles } = await import('../../eval/predictions.js');
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
