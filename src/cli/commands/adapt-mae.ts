/** `cavmae adapt-mae`: ImageNet MAE weights -> CAV-MAE initialisation (spec 4.8). */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('adapt-mae')
    .description(
      'adapt an ImageNet MAE checkpoint (e.g. mae_pretrain_vit_base_full.pth) into a CAV-MAE initialisation (IN-initial)',
    )
    .requiredOption('--mae <file>', 'MAE checkpoint with decoder (.pth with a "model" entry, or safetensors)')
    .requiredOption('--out <file>', 'output .safetensors')
    .option(
      '--modality-specific-depth <n>',
      'modality-specific blocks; the remaining MAE blocks become blocks_u',
      '11',
    )
    .option('--json', 'print the report as JSON')
    .action(async (opts: { mae: string; out: string; modalitySpecificDepth: string; json?: boolean }) => {
      const depth = Number(opts.modalitySpecificDepth);
      if (!Number.isInteger(depth) || depth < 0)
        throw new UserError(
          `--modality-specific-depth: "${opts.modalitySpecificDepth}" is not a non-negative integer`,
        );
      const { adaptMaeCheckpoint, NOT_FROM_MAE } = await import('../../io/adapt-mae.js');
      const r = adaptMaeCheckpoint(opts.mae, opts.out, { modalitySpecificDepth: depth });
      if (opts.json) {
        process.stdout.write(
          `${JSON.stringify({ out: r.out, tensors: r.tensors.size, maeDepth: r.maeDepth, dropped: r.dropped, notFromMae: NOT_FROM_MAE })}\n`,
        );
        return;
      }
      process.stdout.write(
        `${opts.mae} -> ${opts.out}: ${r.tensors.size} tensors (${depth} modality-specific + ${r.maeDepth - depth} unified blocks)\n` +
          `dropped MAE keys: ${r.dropped.length ? r.dropped.join(', ') : 'none'}\n` +
          `left to the model's own initialisation: ${NOT_FROM_MAE.join(', ')}, and the unused norm*_a/_v of blocks_a, blocks_v, decoder_blocks\n`,
      );
    });
}
