/** `cavmae make-weights --data F [--label-csv C] [--out W]`: balanced-sampling weight file (spec 4.5). */
import type { Command } from 'commander';
import { defineCommand, str } from '../schema.js';

const OPTIONS = {
  data: str('--data <file>', 'training datafile JSON or manifest', { required: true }),
  labelCsv: str(
    '--label-csv <file>',
    'label CSV (index,mid,display_name); default: an index built from the data labels',
  ),
  out: str('--out <file>', 'output weight file'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'make-weights',
    "write the balanced-sampling weight file: per class 1000/(count+0.01), summed over each sample's labels; " +
      'one float per line in datafile order (default <data without .json>_weight.csv, as gen_weight_file.py)',
    OPTIONS,
    async (o) => {
      const d = await import('../../data/datafile.js');
      const ds = d.loadDataset(o.data);
      const map = o.labelCsv ? d.loadLabelCsv(o.labelCsv) : d.buildLabelMap(ds);
      const weights = d.computeSampleWeights(d.resolveLabels(ds, map), map.numLabels);
      const out = o.out ?? d.defaultWeightPath(o.data);
      d.writeWeights(out, weights);
      process.stdout.write(`wrote ${weights.length} weights (${map.numLabels} classes) to ${out}\n`);
    },
  );
}
