/**
 * `cavmae forward`: run a checkpoint on a safetensors file of inputs and write the named outputs
 * (the golden fixtures' names), optionally with parameter gradients. The contract golden tests
 * and PyTorch interop rely on; the work is done by src/interop/forward-run.ts.
 */
import type { Command } from 'commander';

interface ForwardFlags {
  model: string;
  config?: string;
  inputs: string;
  out: string;
  task?: 'pretrain' | 'feat' | 'ft';
  mode?: string;
  grads?: string;
  maskRatio?: string;
  contrastWeight?: string;
  maskMode?: string;
  loss?: string;
  bf16?: boolean;
  seed?: string;
}

export function register(program: Command): void {
  program
    .command('forward')
    .description(
      'run a CAV-MAE or CAV-MAE Sync checkpoint on inputs from a safetensors file and write outputs (and gradients) as safetensors',
    )
    .requiredOption('--model <path>', 'checkpoint: .pth or .safetensors')
    .option(
      '--config <preset|json>',
      'model config: a preset name or a JSON file of the constructor arguments ("model": "cavmae-sync" for Sync; optional when the checkpoint carries one)',
    )
    .requiredOption(
      '--inputs <path>',
      'safetensors with audio [B,T,128], image [B,3,H,W], optional noise_a, noise_v, labels',
    )
    .requiredOption('--out <path>', 'output safetensors')
    .option('--task <task>', 'pretrain | feat | ft (default: ft for a fine-tuning checkpoint, else pretrain)')
    .option(
      '--mode <mode>',
      'ft: multimodal | audioonly | videoonly | missingaudioonly | missingvideoonly; feat of a fine-tuning model: av | a',
    )
    .option(
      '--grads <names>',
      'comma-separated parameter names whose loss gradient to write as grad.<name> ("all" for every trainable one)',
    )
    .option('--mask-ratio <r>', 'masking ratio of both modalities (default 0.75)')
    .option(
      '--contrast-weight <w>',
      "contrastive loss weight lambda_c (default: the config's; 0.01 for the official constructor arguments)",
    )
    .option('--mask-mode <m>', 'audio masking: unstructured | time | freq | tf (default unstructured)')
    .option('--loss <bce|ce>', 'fine-tuning loss for --grads with labels (default bce)')
    .option('--bf16', 'bf16 GEMM inputs with fp32 accumulation')
    .option('--seed <n>', 'seed of the mask noise the inputs do not provide (default 0)')
    .action(async (flags: ForwardFlags) => {
      const { UserError } = await import('../../util/errors.js');
      const num = (v: string | undefined, what: string): number | undefined => {
        if (v === undefined) return undefined;
        const x = Number(v);
        if (v.trim() === '' || !Number.isFinite(x))
          throw new UserError(`${what} must be a number, got "${v}"`);
        return x;
      };
      if (flags.loss !== undefined && flags.loss !== 'bce' && flags.loss !== 'ce')
        throw new UserError(`--loss must be bce or ce, got "${flags.loss}"`);
      const { runForward } = await import('../../interop/forward-run.js');
      const { writeSafetensors } = await import('../../io/safetensors.js');
      const r = runForward({
        model: flags.model,
        config: flags.config,
        inputs: flags.inputs,
        task: flags.task,
        mode: flags.mode,
        grads: flags.grads
          ? flags.grads
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : undefined,
        maskRatio: num(flags.maskRatio, '--mask-ratio'),
        contrastWeight: num(flags.contrastWeight, '--contrast-weight'),
        maskMode: flags.maskMode,
        loss: flags.loss as 'bce' | 'ce' | undefined,
        bf16: flags.bf16,
        seed: num(flags.seed, '--seed'),
      });
      writeSafetensors(
        flags.out,
        new Map([...r.outputs].map(([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: v.data }])),
      );
      if (r.unexpected.length)
        process.stderr.write(
          `cavmae forward: ignored ${r.unexpected.length} checkpoint key(s) the ${r.config.model} model does not use\n`,
        );
      process.stdout.write(`${flags.out}: ${[...r.outputs.keys()].join(', ')}\n`);
    });
}
