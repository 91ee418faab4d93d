/**
 * `cavmae retrieval --model M --data F [--json]`: zero-shot cross-modal retrieval in both
 * directions (R@1/5/10, median rank, class-match@1 when labelled) with chance levels; or the
 * same from stored embeddings (`--embeddings E`, written by `cavmae embed`).
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { number } from './pretrain.js';

interface Flags {
  model?: string;
  data?: string;
  embeddings?: string;
  config?: string;
  labelCsv?: string;
  strategy?: string;
  batchSize?: number;
  workers?: number;
  bf16?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('retrieval')
    .description('zero-shot audio->visual and visual->audio retrieval (R@1/5/10, median rank; class-match@1 when the items are labelled)')
    .option('--model <ckpt>', 'pretrained or fine-tuned model')
    .option('--data <file>', 'datafile; item i of the audio side pairs with item i of the visual side')
    .option('--embeddings <file>', 'embeddings written by `cavmae embed` (instead of --model/--data)')
    .option('--config <preset|json>', 'model config when the checkpoint carries none')
    .option('--label-csv <file>', 'class index for class-match@1 (default: labels found in the data)')
    .option('--strategy <s>', 'clip similarity: pooled (CAV-MAE: one vector per clip; the only one for these models)')
    .option('--batch-size <n>', 'clips per forward pass (default 32)', number('--batch-size', { int: true, min: 1 }))
    .option('--workers <n>', 'data loader threads (default 2)', number('--workers', { int: true, min: 0 }))
    .option('--bf16', 'bf16 GEMM inputs')
    .option('--json', 'print one JSON object')
    .action(async (f: Flags) => {
      if (f.strategy !== undefined && f.strategy !== 'pooled') {
        throw new UserError(`--strategy ${f.strategy}: per-frame clip strategies need CAV-MAE Sync embeddings; CAV-MAE models give one pooled vector per clip (use --strategy pooled)`);
      }
      const { retrievalReport, formatRetrieval } = await import('../../eval/embed.js');
      const r = await retrievalReport(f);
      process.stdout.write((f.json ? JSON.stringify(r) : formatRetrieval(r)) + '\n');
    });
}
