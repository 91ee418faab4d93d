/**
 * `cavmae embed --model M --data F --out E`: pooled, L2-normalised `audio` [N,D] and `video`
 * [N,D] embeddings in datafile order, with the item ids (metadata "ids") and, for labelled
 * data, `labels` [N] (first label index). A CAV-MAE Sync model writes its F pair vectors per
 * clip, [N,F,D], and the clip strategy (metadata "cavmae.clip_strategy").
 */
import type { Command } from 'commander';
import { BF16, MODEL_CONFIG, QUIET, WORKERS } from '../options.js';
import { defineCommand, int, str } from '../schema.js';

const OPTIONS = {
  model: str('--model <ckpt>', 'pretrained or fine-tuned model', { required: true }),
  data: str('--data <file>', 'datafile or manifest', { required: true }),
  out: str('--out <file>', 'output safetensors', { required: true }),
  config: MODEL_CONFIG,
  labelCsv: str(
    '--label-csv <file>',
    'class index for the "labels" tensor (default: labels found in the data)',
  ),
  batchSize: int('--batch-size <n>', 'clips per forward pass (default 32; Sync: pairs, default 32)', {
    min: 1,
  }),
  workers: WORKERS,
  bf16: BF16,
  quiet: QUIET,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'embed',
    'write pooled, L2-normalised audio [N,D] and video [N,D] embeddings of a datafile (row order = datafile order) plus the item ids; a CAV-MAE Sync model: [N,F,D] pair vectors',
    OPTIONS,
    async (o) => {
      const { embedToFile } = await import('../../eval/embed.js');
      const { Progress } = await import('../../util/progress.js');
      let progress: InstanceType<typeof Progress> | undefined;
      const e = await embedToFile({
        ...o,
        onBatch: (done, total) => {
          if (o.quiet) return;
          progress ??= new Progress({ total, label: 'embed' });
          progress.update(done);
        },
      });
      progress?.stop();
      const shape = e.frames ? `${e.n}, ${e.frames}, ${e.dim}` : `${e.n}, ${e.dim}`;
      const sides = [e.audio ? `audio [${shape}]` : '', e.video ? `video [${shape}]` : '']
        .filter(Boolean)
        .join(', ');
      process.stdout.write(
        `${o.out}: ${sides}${e.frames ? ` (pair vectors, clips compared by ${e.strategy})` : ''}, ids${e.labels ? ', labels' : ''}\n`,
      );
    },
  );
}
