/** `cavmae convert IN OUT`: a PyTorch .pth (or safetensors) checkpoint -> our safetensors. */
import type { Command } from 'commander';
import { argument, defineCommand, flag } from '../schema.js';

const OPTIONS = {
  input: argument('<input>', '.pth checkpoint (torch.save zip format) or .safetensors'),
  output: argument('<output>', 'output .safetensors'),
  f32: flag('--f32', 'convert every tensor to float32 (default: keep the stored dtypes)'),
  json: flag('--json', 'print the report as JSON'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'convert',
    'convert a PyTorch .pth state dict to safetensors (strips "module.", refuses hostile pickles, reports missing/unexpected keys)',
    OPTIONS,
    async ({ input, output, ...opts }) => {
      const { convertCheckpoint } = await import('../../io/tools.js');
      const { formatKeyReport } = await import('../../io/checkpoint.js');
      const r = convertCheckpoint(input, output, { toF32: opts.f32 });
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      const lines = [
        `${input} (${r.format}${r.nestedKey ? `, state dict under "${r.nestedKey}"` : ''}) -> ${output}: ${r.keys} tensors`,
      ];
      if (r.strippedModule) lines.push(`stripped "module." from ${r.strippedModule} keys`);
      if (r.nonF32.length) {
        const shown = r.nonF32
          .slice(0, 20)
          .map((t) => `${t.key} (${t.dtype})`)
          .join(', ');
        lines.push(
          `non-F32 tensors${opts.f32 ? ' (converted to F32)' : ''}: ${shown}${r.nonF32.length > 20 ? `, ... ${r.nonF32.length - 20} more` : ''}`,
        );
      }
      if (r.layout) {
        const c = r.layout.config;
        lines.push(
          `compared with the official ${r.layout.model} layout (embed_dim ${c.embed_dim}, modality_specific_depth ${c.modality_specific_depth}${r.layout.model === 'CAVMAE' ? `, decoder ${c.decoder_embed_dim}x${c.decoder_depth}` : `, label_dim ${c.label_dim}`}):`,
        );
        lines.push(formatKeyReport(r.layout.report));
      } else {
        lines.push('not a CAV-MAE layout: keys not checked');
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    },
  );
}
