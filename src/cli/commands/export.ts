/** `cavmae export MODEL OUT.pth [--data-parallel]`: our checkpoint -> a PyTorch state dict for the official code. */
import type { Command } from 'commander';
import { JSON_OUT, MODEL_CONFIG } from '../options.js';
import { argument, defineCommand, flag } from '../schema.js';

const OPTIONS = {
  model: argument('<model>', 'our checkpoint (.safetensors or .pth): pretrained, fine-tuned or Sync'),
  output: argument('<output>', 'output .pth'),
  dataParallel: flag(
    '--data-parallel',
    'prefix every key with "module." (torch.nn.DataParallel, as the official scripts save)',
  ),
  config: MODEL_CONFIG,
  json: JSON_OUT,
};

/** A Python literal of a constructor argument. */
const py = (v: unknown): string =>
  typeof v === 'string' ? `'${v}'` : v === true ? 'True' : v === false ? 'False' : `${v}`;

export function register(program: Command): void {
  defineCommand(
    program,
    'export',
    'write a model as a PyTorch state dict (torch.save zip format, official key names and order) that the official code loads with load_state_dict(strict=True)',
    OPTIONS,
    async ({ model, output, json, ...o }) => {
      const { exportPth } = await import('../../io/export.js');
      const r = exportPth(model, output, { dataParallel: !!o.dataParallel, config: o.config });
      if (json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      const ctor = `${r.className}(${Object.entries(r.args)
        .map(([k, v]) => `${k}=${py(v)}`)
        .join(', ')})`;
      const lines = [
        `${model} -> ${output}: ${r.className}, ${r.keys} tensors (${r.parameters} parameters, ${r.bytes} bytes)${r.dataParallel ? ', keys prefixed with "module."' : ''}`,
        `load it with: ${r.dataParallel ? `torch.nn.DataParallel(${ctor})` : ctor}.load_state_dict(torch.load('${output}'), strict=True)`,
        ...r.warnings.map((w) => `warning: ${w}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    },
  );
}
