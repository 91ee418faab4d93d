/**
 * `cavmae eval --pred P [--target T] [--label-csv CSV] [--json]`: mAP / mAUC / d' / acc and a
 * per-class AP/AUC report from stored predictions (safetensors `pred` [N,K] + `target` [N,K],
 * .npy or .csv as the reference writes them).
 * `cavmae eval --model M --data F [--label-csv CSV] [--mode m]`: runs a fine-tuned model on a
 * datafile (10-frame probability aggregation as the reference) and reports the same metrics.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { JSON_OUT, WORKERS } from '../options.js';
import { defineCommand, flag, int, negatable, str } from '../schema.js';

const OPTIONS = {
  pred: str(
    '--pred <file>',
    'predictions [N,K]: .safetensors (tensor "pred", optionally "target"), .npy or .csv',
  ),
  target: str('--target <file>', 'targets [N,K] (0/1): .safetensors (tensor "target"), .npy or .csv'),
  model: str('--model <ckpt>', 'a fine-tuned model (cavmae finetune) to run on --data'),
  data: str('--data <file>', 'datafile to classify with --model'),
  mode: str(
    '--mode <m>',
    'with --model: multimodal | audioonly | videoonly | missingaudioonly | missingvideoonly (default: the mode it was trained with)',
  ),
  loss: str(
    '--loss <bce|ce>',
    'with --model: sigmoid (bce) or softmax (ce) probabilities (default: what it was trained with)',
  ),
  frameAgg: negatable(
    '--no-frame-agg',
    'with --model: middle frame only instead of averaging the probabilities of frames 0..9',
  ),
  predOut: str(
    '--pred-out <file>',
    'with --model: also write the probabilities and targets (pred, target) as safetensors',
  ),
  batchSize: int('--batch-size <n>', 'with --model: clips per forward pass (default 32)', { min: 1 }),
  workers: { ...WORKERS, help: 'with --model: data loader threads (default 2)' },
  labelCsv: str(
    '--label-csv <file>',
    'class names (index,mid,display_name); with --model also the class index (default: stored with the model)',
  ),
  summary: flag('--summary', 'omit the per-class table in text output'),
  json: JSON_OUT,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'eval',
    "classification metrics (mAP, mAUC, d', acc, per-class AP/AUC) as the reference computes them: of stored predictions, or of a fine-tuned model on a datafile",
    OPTIONS,
    async ({ pred, target, model, data, summary, json, ...o }) => {
      const { reportToJson, formatReport } = await import('../../eval/predictions.js');
      if (model || data) {
        if (pred || target)
          throw new UserError(
            'eval: pass either --pred (stored predictions) or --model with --data, not both',
          );
        if (!model || !data) throw new UserError('eval: --model and --data go together');
        const { evaluateModelFile } = await import('../../eval/evaluate.js');
        const r = await evaluateModelFile({ ...o, model, data });
        const how =
          r.frames.length > 1
            ? `probabilities averaged over frames ${r.frames[0]}..${r.frames[r.frames.length - 1]}`
            : `frame ${r.frames[0]}`;
        if (json)
          process.stdout.write(
            `${JSON.stringify({ ...reportToJson(r), mode: r.mode, loss: r.loss, frames: r.frames, perFrame: r.perFrame })}\n`,
          );
        else
          process.stdout.write(
            `mode ${r.mode}, ${r.loss === 'ce' ? 'softmax' : 'sigmoid'} probabilities, ${how}\n${formatReport(r, { perClass: !summary })}\n`,
          );
        return;
      }
      if (!pred)
        throw new UserError(
          'eval: --pred <file> (stored predictions [N,K]) or --model <ckpt> --data <file> is required (see --help)',
        );
      const { evaluatePredictionFiles } = await import('../../eval/predictions.js');
      let names: string[] | undefined;
      if (o.labelCsv) {
        const { loadLabelCsv } = await import('../../data/datafile.js');
        names = loadLabelCsv(o.labelCsv).names;
      }
      const report = evaluatePredictionFiles(pred, target, names);
      if (json) process.stdout.write(`${JSON.stringify(reportToJson(report))}\n`);
      else process.stdout.write(`${formatReport(report, { perClass: !summary })}\n`);
    },
  );
}
