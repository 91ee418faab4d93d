/**
 * `cavmae forward`: run a checkpoint on a safetensors file of inputs and write the named outputs
 * (the golden fixtures' names), optionally with parameter gradients. The contract golden tests
 * and PyTorch interop rely on; the work is done by src/interop/forward-run.ts.
 */
import type { Command } from 'commander';
import type { ForwardTask } from '../../interop/forward-run.js';
import { BF16 } from '../options.js';
import { apiEnum, defineCommand, list, num, oneOf, str } from '../schema.js';

const OPTIONS = {
  model: str('--model <path>', 'checkpoint: .pth or .safetensors', { required: true }),
  config: str(
    '--config <preset|json>',
    'model config: a preset name or a JSON file of the constructor arguments ("model": "cavmae-sync" for Sync; optional when the checkpoint carries one)',
  ),
  inputs: str(
    '--inputs <path>',
    'safetensors with audio [B,T,128], image [B,3,H,W], optional noise_a, noise_v, labels',
    { required: true },
  ),
  out: str('--out <path>', 'output safetensors', { required: true }),
  task: apiEnum<ForwardTask>(
    '--task <task>',
    'pretrain | feat | ft (default: ft for a fine-tuning checkpoint, else pretrain)',
  ),
  mode: str(
    '--mode <mode>',
    'ft: multimodal | audioonly | videoonly | missingaudioonly | missingvideoonly; feat of a fine-tuning model: av | a',
  ),
  grads: list(
    '--grads <names>',
    'comma-separated parameter names whose loss gradient to write as grad.<name> ("all" for every trainable one)',
  ),
  maskRatio: num('--mask-ratio <r>', 'masking ratio of both modalities (default 0.75)'),
  contrastWeight: num(
    '--contrast-weight <w>',
    "contrastive loss weight lambda_c (default: the config's; 0.01 for the official constructor arguments)",
  ),
  maskMode: str('--mask-mode <m>', 'audio masking: unstructured | time | freq | tf (default unstructured)'),
  loss: oneOf('--loss <bce|ce>', 'fine-tuning loss for --grads with labels (default bce)', [
    'bce',
    'ce',
  ] as const),
  bf16: BF16,
  seed: num('--seed <n>', 'seed of the mask noise the inputs do not provide (default 0)'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'forward',
    'run a CAV-MAE or CAV-MAE Sync checkpoint on inputs from a safetensors file and write outputs (and gradients) as safetensors',
    OPTIONS,
    async ({ out, ...o }) => {
      const { runForward } = await import('../../interop/forward-run.js');
      const { writeSafetensors } = await import('../../io/safetensors.js');
      const r = runForward(o);
      writeSafetensors(
        out,
        new Map([...r.outputs].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }])),
      );
      if (r.unexpected.length)
        process.stderr.write(
          `cavmae forward: ignored ${r.unexpected.length} checkpoint key(s) the ${r.config.model} model does not use\n`,
        );
      process.stdout.write(`${out}: ${[...r.outputs.keys()].join(', ')}\n`);
    },
  );
}
