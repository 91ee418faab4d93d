/**
 * `cavmae bench [--json] [--quick]`: the kernel benchmark (src/bench/kernels.ts). With --json,
 * stdout is one JSON object on one line ({ env, peak, gemm, kernels, bandwidth, overhead });
 * progress goes to stderr. Without it, a readable table.
 *
 * Extension point: other suites (issue 6's `--model-bench`) add their flags here and branch in
 * the action before the kernel suite, each behind its own lazy import.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

interface Flags {
  json?: boolean;
  quick?: boolean;
  threads?: number[];
  out?: string;
  progress?: boolean;
}

function threadList(v: string): number[] {
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1 || n > 256)) {
    throw new UserError(`--threads must be a comma-separated list of integers >= 1, got '${v}'`);
  }
  return list;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('measure kernel speed: GEMM GFLOP/s of the ViT-B shapes, other kernels vs memory bandwidth, call overhead')
    .option('--json', 'print one JSON object (env, peak, gemm, kernels, bandwidth, overhead) on stdout')
    .option('--quick', 'a few-second smoke run: one GEMM shape, short warm-up')
    .option('--threads <list>', 'thread counts to measure, e.g. 1,2 (default 1,2)', threadList)
    .option('--out <file>', 'also write the JSON report to this file')
    .option('--no-progress', 'no progress lines on stderr')
    .action(async (flags: Flags) => {
      const { runKernelBench, formatKernelReport } = await import('../../bench/kernels.js');
      const log = flags.progress === false ? undefined : (line: string) => process.stderr.write(`bench: ${line}\n`);
      const report = await runKernelBench({ quick: flags.quick, threads: flags.threads, log });
      if (flags.out) {
        const { writeFileAtomic } = await import('../../io/atomic.js');
        writeFileAtomic(flags.out, `${JSON.stringify(report, null, 2)}\n`);
      }
      process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : `${formatKernelReport(report)}\n`);
    });
}
