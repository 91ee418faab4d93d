/**
 * `cavmae bench [--json] [--quick] [--only <parts>] [--kernels-only]`: the kernel benchmark
 * (src/bench/kernels.ts); --only measures a subset (gemm, peak, attention, overhead, elementwise,
 * or kernel names), --kernels-only the memory-bound kernels alone (= --only elementwise). With --json,
 * stdout is one JSON object on one line ({ env, peak, gemm, kernels, bandwidth, overhead });
 * progress goes to stderr. Without it, a readable table.
 *
 * `cavmae bench --model-bench [--json] [--preset base] [--batch 8] [--dtype fp32|bf16|int8]
 * [--reps 3] [--tasks embed,pretrain,ft,api] [--threads 2] [--model FILE]`: the whole model on the
 * PyTorch peer's workload (src/bench/model.ts); `api` times CavMae.load of a checkpoint (--model,
 * default the seeded preset model written to a temporary file) to the first clip's embeddings,
 * then one clip at a time; with --json the last line of stdout is the JSON report.
 */
import type { Command } from 'commander';
import type { ModelDtype, ModelTask } from '../../bench/model.js';
import { UserError } from '../../util/errors.js';
import {
  apiEnum,
  defineCommand,
  flag,
  flagName,
  int,
  list,
  negatable,
  num,
  parseNumber,
  str,
} from '../schema.js';

const MODEL_BENCH = {
  preset: str('--preset <name>', 'model bench: CAV-MAE preset (default base)'),
  batch: int('--batch <n>', 'model bench: batch size (default 8)', { min: 0 }),
  dtype: apiEnum<ModelDtype>(
    '--dtype <dtype>',
    'model bench: fp32, bf16 or int8 (inference tasks only) (default fp32)',
  ),
  reps: int('--reps <n>', 'model bench: timed repetitions per task, median reported (default 3)', { min: 0 }),
  tasks: list<ModelTask>(
    '--tasks <list>',
    'model bench: comma-separated subset of embed,pretrain,ft,api (default embed,pretrain,ft); api: CavMae.load to the first clip, then batch-1 latency',
  ),
  model: str(
    '--model <file>',
    'model bench, api task: the checkpoint to load (default: the seeded preset model in a temporary file)',
  ),
  warmupSeconds: num('--warmup <seconds>', 'model bench: seconds of GEMM load before measuring (default 4)', {
    min: 0,
    max: 600,
  }),
};

const OPTIONS = {
  json: flag('--json', 'print one JSON object (env, peak, gemm, kernels, bandwidth, overhead) on stdout'),
  quick: flag('--quick', 'a few-second smoke run: one GEMM shape, short warm-up'),
  threads: list('--threads <list>', 'thread counts to measure, e.g. 1,2 (default 1,2)', (s, f) =>
    parseNumber(s, f, { integer: true, min: 1, max: 256 }),
  ),
  out: str('--out <file>', 'also write the JSON report to this file'),
  progress: negatable('--no-progress', 'no progress lines on stderr'),
  only: list(
    '--only <list>',
    'measure only these parts: gemm, peak (hardware FMA probe), attention, overhead, elementwise, or kernel names (e.g. add,geluForward)',
  ),
  kernelsOnly: flag('--kernels-only', 'measure only the memory-bound kernels (same as --only elementwise)'),
  modelBench: flag(
    '--model-bench',
    "benchmark the whole model on the PyTorch peer's workload instead (embedding, pretraining step, fine-tuning forward)",
  ),
  ...MODEL_BENCH,
  peak: negatable('--no-peak', 'model bench: skip the GEMM and hardware peak probes (no MFU; for cold-start timing)'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'bench',
    'measure kernel speed: GEMM GFLOP/s of the ViT-B shapes, other kernels vs memory bandwidth, call overhead',
    OPTIONS,
    async ({ json, quick, threads, out, progress, only, kernelsOnly, modelBench, peak, ...model }) => {
      const log = progress ? (line: string) => process.stderr.write(`bench: ${line}\n`) : undefined;
      let report: object;
      let text: string;
      if (modelBench) {
        const { runModelBench, formatModelReport } = await import('../../bench/model.js');
        if (threads && threads.length !== 1)
          throw new UserError('--threads takes one number with --model-bench');
        const r = await runModelBench({ ...model, measurePeak: peak, threads: threads?.[0], log });
        [report, text] = [r, formatModelReport(r)];
      } else {
        const given = Object.keys(model) as (keyof typeof MODEL_BENCH)[];
        if (given.length) throw new UserError(`${flagName(MODEL_BENCH[given[0]].flags)} needs --model-bench`);
        if (!peak) throw new UserError('--no-peak needs --model-bench');
        const { runKernelBench, formatKernelReport, BENCH_PARTS } = await import('../../bench/kernels.js');
        const { NATIVE_FUNCTIONS } = await import('../../kernels/native.js');
        const parts = [...(only ?? []), ...(kernelsOnly ? ['elementwise'] : [])];
        const known = new Set<string>([...BENCH_PARTS, ...NATIVE_FUNCTIONS]);
        const unknown = parts.filter((p) => !known.has(p));
        if (unknown.length)
          throw new UserError(
            `--only: unknown part(s) ${unknown.join(', ')} (parts: ${BENCH_PARTS.join(', ')}, or kernel names)`,
          );
        const r = await runKernelBench({ quick, threads, only: parts.length ? parts : undefined, log });
        [report, text] = [r, formatKernelReport(r)];
      }
      if (out) {
        const { writeFileAtomic } = await import('../../io/atomic.js');
        writeFileAtomic(out, `${JSON.stringify(report, null, 2)}\n`);
      }
      process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${text}\n`);
    },
  );
}
