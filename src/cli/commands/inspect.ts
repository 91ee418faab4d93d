/** `cavmae inspect FILE`: keys, shapes, dtypes and metadata of a checkpoint (no tensor data read). */
import type { Command } from 'commander';
import { argument, defineCommand, flag } from '../schema.js';

export function register(program: Command): void {
  defineCommand(
    program,
    'inspect',
    'list the tensors (name, dtype, shape) and metadata of a .safetensors or .pth checkpoint',
    { file: argument('<file>', 'checkpoint'), json: flag('--json', 'print JSON') },
    async ({ file, ...opts }) => {
      const { inspectCheckpoint } = await import('../../io/tools.js');
      const { formatKeyReport } = await import('../../io/checkpoint.js');
      const r = inspectCheckpoint(file);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r)}\n`);
        return;
      }
      const lines = [
        `${file}: ${r.format}, ${r.tensors.length} tensors, ${r.elements} elements${r.nestedKey ? `, state dict under "${r.nestedKey}"` : ''}${r.strippedModule ? `, "module." stripped from ${r.strippedModule} keys` : ''}`,
      ];
      const width = Math.min(60, Math.max(0, ...r.tensors.map((t) => t.name.length)));
      for (const t of r.tensors)
        lines.push(`  ${t.name.padEnd(width)}  ${t.dtype.padEnd(5)} [${t.shape.join(', ')}]`);
      const meta = Object.entries(r.metadata);
      if (meta.length) {
        lines.push('metadata:');
        for (const [k, v] of meta) lines.push(`  ${k}: ${v.length > 200 ? `${v.slice(0, 200)}...` : v}`);
      }
      if (r.layout) {
        lines.push(`official ${r.layout.model} layout check:`);
        lines.push(formatKeyReport(r.layout.report));
      }
      process.stdout.write(`${lines.join('\n')}\n`);
    },
  );
}
