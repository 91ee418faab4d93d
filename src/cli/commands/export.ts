/** `cavmae export MODEL OUT.pth [--data-parallel]`: our checkpoint -> a PyTorch state dict for the official code. */
import type { Command } from 'commander';

export function register(program: Command): void {
  program
    .command('export')
    .description(
      'write a model as a PyTorch state dict (torch.save zip format, official key names and order) that the official code loads with load_state_dict(strict=True)',
    )
    .argument('<model>', 'our checkpoint (.safetensors or .pth): pretrained, fine-tuned or Sync')
    .argument('<output>', 'output .pth')
    .option(
      '--data-parallel',
      'prefix every key with "module." (torch.nn.DataParallel, as the official scripts save)',
    )
    .option('--config <config>', 'model config (preset or JSON file) for checkpoints that carry none')
    .option('--json', 'print the report as JSON')
    .action(
      async (
        model: string,
        output: string,
        o: { dataParallel?: boolean; config?: string; json?: boolean },
      ) => {
        const { exportPth } = await import('../../io/export.js');
        const r = exportPth(model, output, { dataParallel: !!o.dataParallel, config: o.config });
        if (o.json) {
          process.stdout.write(`${JSON.stringify(r)}\n`);
          return;
        }
        const args = Object.entries(r.args).map(
          ([k, v]) =>
            `${k}=${typeof v === 'string' ? `'${v}'` : v === true ? 'True' : v === false ? 'False' : v}`,
        );
        const lines = [
          `${model} -> ${output}: ${r.className}, ${r.keys} tensors (${r.parameters} parameters, ${r.bytes} bytes)${r.dataParallel ? ', keys prefixed with "module."' : ''}`,
          `load it with: ${r.dataParallel ? `torch.nn.DataParallel(${r.className}(${args.join(', ')}))` : `${r.className}(${args.join(', ')})`}.load_state_dict(torch.load('${output}'), strict=True)`,
          ...r.warnings.map((w) => `warning: ${w}`),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
      },
    );
}
