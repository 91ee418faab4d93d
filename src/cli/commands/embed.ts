/**
 * `cavmae embed --model M --data F --out E`: pooled, L2-normalised `audio` [N,D] and `video`
 * [N,D] embeddings in datafile order, with the item ids (metadata "ids") and, for labelled
 * data, `labels` [N] (first label index).
 */
import type { Command } from 'commander';
import { number } from './pretrain.js';

interface Flags {
  model: string;
  data: string;
  out: string;
  config?: string;
  labelCsv?: string;
  batchSize?: number;
  workers?: number;
  bf16?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('embed')
    .description('write pooled, L2-normalised audio [N,D] and video [N,D] embeddings of a datafile (row order = datafile order) plus the item ids')
    .requiredOption('--model <ckpt>', 'pretrained or fine-tuned model')
    .requiredOption('--data <file>', 'datafile or manifest')
    .requiredOption('--out <file>', 'output safetensors')
    .option('--config <preset|json>', 'model config when the checkpoint carries none')
    .option('--label-csv <file>', 'class index for the "labels" tensor (default: labels found in the data)')
    .option('--batch-size <n>', 'clips per forward pass (default 32)', number('--batch-size', { int: true, min: 1 }))
    .option('--workers <n>', 'data loader threads (default 2)', number('--workers', { int: true, min: 0 }))
    .option('--bf16', 'bf16 GEMM inputs')
    .option('--quiet', 'no progress display')
    .action(async (f: Flags) => {
      const { embedToFile } = await import('../../eval/embed.js');
      const { Progress } = await import('../../train/progress.js');
      let progress: InstanceType<typeof Progress> | undefined;
      const e = await embedToFile({
        ...f,
        onBatch: (done, total) => {
          if (f.quiet) return;
          progress ??= new Progress({ total, label: 'embed' });
          progress.update(done);
        },
      });
      progress?.stop();
      const sides = [e.audio ? `audio [${e.n}, ${e.dim}]` : '', e.video ? `video [${e.n}, ${e.dim}]` : ''].filter(Boolean).join(', ');
      process.stdout.write(`${f.out}: ${sides}, ids${e.labels ? ', labels' : ''}\n`);
    });
}
