/**
 * `cavmae retrieval --model M --data F [--json]`: zero-shot cross-modal retrieval in both
 * directions (R@1/5/10, median rank, class-match@1 when labelled) with chance levels; or the
 * same from stored embeddings (`--embeddings E`, written by `cavmae embed`). CAV-MAE Sync models
 * compare clips by their 16 pair vectors (`--strategy`, default diagonal_mean); `--segments`
 * ranks every (segment, frame) pair on its own, for Sync and clip-level CAV-MAE models alike
 * (src/eval/retrieval-report.ts).
 */
import type { Command } from 'commander';
import { number } from './pretrain.js';

interface Flags {
  model?: string;
  data?: string;
  embeddings?: string;
  config?: string;
  labelCsv?: string;
  strategy?: string;
  segments?: boolean;
  segmentLength?: number;
  batchSize?: number;
  workers?: number;
  bf16?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('retrieval')
    .description('zero-shot audio->visual and visual->audio retrieval (R@1/5/10, median rank; class-match@1 when the items are labelled)')
    .option('--model <ckpt>', 'pretrained or fine-tuned model (CAV-MAE or CAV-MAE Sync)')
    .option('--data <file>', 'datafile; item i of the audio side pairs with item i of the visual side')
    .option('--embeddings <file>', 'embeddings written by `cavmae embed` (instead of --model/--data)')
    .option('--config <preset|json>', 'model config when the checkpoint carries none')
    .option('--label-csv <file>', 'class index for class-match@1 (default: labels found in the data)')
    .option('--strategy <s>', 'clip similarity: pooled (CAV-MAE: one vector per clip) | diagonal_mean (Sync default: mean cosine of time-aligned pairs) | diagonal_max | mean | max (over all 16 x 16 pairs)')
    .option('--segments', 'segment-level retrieval: every (segment, frame) pair of every clip is an item (Sync pair features; a clip-level CAV-MAE sees only the segment\'s patches, in place); class-match@1 from the manifest\'s pair_labels / pair_digits')
    .option('--segment-length <rows>', 'with --segments and a CAV-MAE model: segment length in fbank rows (default 96; Sync models use their own)', number('--segment-length', { int: true, min: 16 }))
    .option('--batch-size <n>', 'clips (Sync: pairs) per forward pass (default 32)', number('--batch-size', { int: true, min: 1 }))
    .option('--workers <n>', 'data loader threads (default 2)', number('--workers', { int: true, min: 0 }))
    .option('--bf16', 'bf16 GEMM inputs')
    .option('--json', 'print one JSON object')
    .action(async (f: Flags) => {
      const { retrievalCommand, formatLevelRetrieval } = await import('../../eval/retrieval-report.js');
      const r = await retrievalCommand(f);
      process.stdout.write((f.json ? JSON.stringify(r) : formatLevelRetrieval(r)) + '\n');
    });
}
