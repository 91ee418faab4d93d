/**
 * `cavmae retrieval --model M --data F [--json]`: zero-shot cross-modal retrieval in both
 * directions (R@1/5/10, median rank, class-match@1 when labelled) with chance levels; or the
 * same from stored embeddings (`--embeddings E`, written by `cavmae embed`). CAV-MAE Sync models
 * compare clips by their 16 pair vectors (`--strategy`, default diagonal_mean); `--segments`
 * ranks every (segment, frame) pair on its own, for Sync and clip-level CAV-MAE models alike
 * (src/eval/retrieval-report.ts).
 */
import type { Command } from 'commander';
import { BF16, JSON_OUT, MODEL_CONFIG, WORKERS } from '../options.js';
import { defineCommand, flag, int, str } from '../schema.js';

const OPTIONS = {
  model: str('--model <ckpt>', 'pretrained or fine-tuned model (CAV-MAE or CAV-MAE Sync)'),
  data: str('--data <file>', 'datafile; item i of the audio side pairs with item i of the visual side'),
  embeddings: str('--embeddings <file>', 'embeddings written by `cavmae embed` (instead of --model/--data)'),
  config: MODEL_CONFIG,
  labelCsv: str('--label-csv <file>', 'class index for class-match@1 (default: labels found in the data)'),
  strategy: str(
    '--strategy <s>',
    'clip similarity: pooled (CAV-MAE: one vector per clip) | diagonal_mean (Sync default: mean cosine of time-aligned pairs) | diagonal_max | mean | max (over all 16 x 16 pairs)',
  ),
  segments: flag(
    '--segments',
    "segment-level retrieval: every (segment, frame) pair of every clip is an item (Sync pair features; a clip-level CAV-MAE sees only the segment's patches, in place); class-match@1 from the manifest's pair_labels / pair_digits",
  ),
  segmentLength: int(
    '--segment-length <rows>',
    'with --segments and a CAV-MAE model: segment length in fbank rows (default 96; Sync models use their own)',
    { min: 16 },
  ),
  batchSize: int('--batch-size <n>', 'clips (Sync: pairs) per forward pass (default 32)', { min: 1 }),
  workers: WORKERS,
  bf16: BF16,
  json: JSON_OUT,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'retrieval',
    'zero-shot audio->visual and visual->audio retrieval (R@1/5/10, median rank; class-match@1 when the items are labelled)',
    OPTIONS,
    async (o) => {
      const { retrievalCommand, formatLevelRetrieval } = await import('../../eval/retrieval-report.js');
      const r = await retrievalCommand(o);
      process.stdout.write((o.json ? JSON.stringify(r) : formatLevelRetrieval(r)) + '\n');
    },
  );
}
