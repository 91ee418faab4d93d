/** `cavmae adapt-mae`: ImageNet MAE weights -> CAV-MAE initialisation (spec 4.8). */
import type { Command } from 'commander';
import { defineCommand, flag, int, str } from '../schema.js';

const OPTIONS = {
  mae: str('--mae <file>', 'MAE checkpoint with decoder (.pth with a "model" entry, or safetensors)', {
    required: true,
  }),
  out: str('--out <file>', 'output .safetensors', { required: true }),
  modalitySpecificDepth: int(
    '--modality-specific-depth <n>',
    'modality-specific blocks; the remaining MAE blocks become blocks_u',
    { min: 0, default: 11 },
  ),
  json: flag('--json', 'print the report as JSON'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'adapt-mae',
    'adapt an ImageNet MAE checkpoint (e.g. mae_pretrain_vit_base_full.pth) into a CAV-MAE initialisation (IN-initial)',
    OPTIONS,
    async ({ mae, out, json, modalitySpecificDepth: depth }) => {
      const { adaptMaeCheckpoint, NOT_FROM_MAE } = await import('../../io/adapt-mae.js');
      const r = adaptMaeCheckpoint(mae, out, { modalitySpecificDepth: depth });
      if (json) {
        process.stdout.write(
          `${JSON.stringify({ out: r.out, tensors: r.tensors.size, maeDepth: r.maeDepth, dropped: r.dropped, notFromMae: NOT_FROM_MAE })}\n`,
        );
        return;
      }
      process.stdout.write(
        `${mae} -> ${out}: ${r.tensors.size} tensors (${depth} modality-specific + ${r.maeDepth - depth} unified blocks)\n` +
          `dropped MAE keys: ${r.dropped.length ? r.dropped.join(', ') : 'none'}\n` +
          `left to the model's own initialisation: ${NOT_FROM_MAE.join(', ')}, and the unused norm*_a/_v of blocks_a, blocks_v, decoder_blocks\n`,
      );
    },
  );
}
