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
import { UserError } from '../../util/errors.js';

interface Flags {
  modelBench?: boolean;
  preset?: string;
  batch?: number;
  dtype?: string;
  reps?: number;
  tasks?: string;
  warmup?: number;
  json?: boolean;
  quick?: boolean;
  threads?: number[];
  out?: string;
  progress?: boolean;
  only?: string[];
  kernelsOnly?: boolean;
  model?: string;
  peak?: boolean;
}

function partList(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function threadList(v: string): number[] {
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1 || n > 256)) {
    throw new UserError(`--threads must be a comma-separated list of integers >= 1, got '${v}'`);
  }
  return list;
}

function intArg(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n))
      throw new UserError(`${name} must be a whole number, got '${v}'`);
    return n;
  };
}

function secondsArg(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n >= 0 && n <= 600))
    throw new UserError(`--warmup must be a number of seconds in [0, 600], got '${v}'`);
  return n;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description(
      'measure kernel speed: GEMM GFLOP/s of the ViT-B shapes, other kernels vs memory bandwidth, call overhead',
    )
    .option('--json', 'print one JSON object (env, peak, gemm, kernels, bandwidth, overhead) on stdout')
    .option('--quick', 'a few-second smoke run: one GEMM shape, short warm-up')
    .option('--threads <list>', 'thread counts to measure, e.g. 1,2 (default 1,2)', threadList)
    .option('--out <file>', 'also write the JSON report to this file')
    .option('--no-progress', 'no progress lines on stderr')
    .option(
      '--only <list>',
      'measure only these parts: gemm, peak (hardware FMA probe), attention, overhead, elementwise, or kernel names (e.g. add,geluForward)',
      partList,
    )
    .option('--kernels-only', 'measure only the memory-bound kernels (same as --only elementwise)')
    .option(
      '--model-bench',
      "benchmark the whole model on the PyTorch peer's workload instead (embedding, pretraining step, fine-tuning forward)",
    )
    .option('--preset <name>', 'model bench: CAV-MAE preset (default base)')
    .option('--batch <n>', 'model bench: batch size (default 8)', intArg('--batch'))
    .option('--dtype <dtype>', 'model bench: fp32, bf16 or int8 (inference tasks only) (default fp32)')
    .option(
      '--reps <n>',
      'model bench: timed repetitions per task, median reported (default 3)',
      intArg('--reps'),
    )
    .option(
      '--tasks <list>',
      'model bench: comma-separated subset of embed,pretrain,ft,api (default embed,pretrain,ft); api: CavMae.load to the first clip, then batch-1 latency',
    )
    .option(
      '--no-peak',
      'model bench: skip the GEMM and hardware peak probes (no MFU; for cold-start timing)',
    )
    .option(
      '--model <file>',
      'model bench, api task: the checkpoint to load (default: the seeded preset model in a temporary file)',
    )
    .option(
      '--warmup <seconds>',
      'model bench: seconds of GEMM load before measuring (default 4)',
      secondsArg,
    )
    .action(async (flags: Flags) => {
      const log =
        flags.progress === false ? undefined : (line: string) => process.stderr.write(`bench: ${line}\n`);
      if (flags.modelBench) {
        const { runModelBench, formatModelReport } = await import('../../bench/model.js');
        if (flags.threads && flags.threads.length !== 1)
          throw new UserError('--threads takes one number with --model-bench');
        const report = await runModelBench({
          preset: flags.preset,
          batch: flags.batch,
          dtype: flags.dtype as 'fp32' | 'bf16' | 'int8' | undefined,
          reps: flags.reps,
          tasks: flags.tasks?.split(',').map((t) => t.trim()) as
            ('embed' | 'pretrain' | 'ft' | 'api')[] | undefined,
          model: flags.model,
          measurePeak: flags.peak,
          threads: flags.threads?.[0],
          warmupSeconds: flags.warmup,
          log,
        });
        if (flags.out) {
          const { writeFileAtomic } = await import('../../io/atomic.js');
          writeFileAtomic(flags.out, `${JSON.stringify(report, null, 2)}\n`);
        }
        process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : `${formatModelReport(report)}\n`);
        return;
      }
      for (const f of ['preset', 'batch', 'dtype', 'reps', 'tasks', 'warmup', 'model'] as const)
        if (flags[f] !== undefined) throw new UserError(`--${f} needs --model-bench`);
      const { runKernelBench, formatKernelReport, BENCH_PARTS } = await import('../../bench/kernels.js');
      const { NATIVE_FUNCTIONS } = await import('../../kernels/native.js');
      const only = [...(flags.only ?? []), ...(flags.kernelsOnly ? ['elementwise'] : [])];
      const known = new Set<string>([...BENCH_PARTS, ...NATIVE_FUNCTIONS]);
      const unknown = only.filter((p) => !known.has(p));
      if (unknown.length)
        throw new UserError(
          `--only: unknown part(s) ${unknown.join(', ')} (parts: ${BENCH_PARTS.join(', ')}, or kernel names)`,
        );
      const report = await runKernelBench({
        quick: flags.quick,
        threads: flags.threads,
        only: only.length ? only : undefined,
        log,
      });
      if (flags.out) {
        const { writeFileAtomic } = await import('../../io/atomic.js');
        writeFileAtomic(flags.out, `${JSON.stringify(report, null, 2)}\n`);
      }
      process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : `${formatKernelReport(report)}\n`);
    });
}
