/**
 * `cavmae demo [--out demo-out] [--minutes M] [--ci]`: makes the AV-digits set, pretrains the
 * tiny CAV-MAE for a few minutes, prints zero-shot retrieval against chance and the accuracy of
 * a digit classifier (pretrained vs from scratch), and writes <out>/report/index.html.
 * Resumable: run it again with the same --out to continue. src/train/demo.ts does the work.
 */
import type { Command } from 'commander';
import { QUIET, WORKERS } from '../options.js';
import { defineCommand, flag, int, negatable, num, str } from '../schema.js';

const OPTIONS = {
  out: str('--out <dir>', 'output folder (data/, pretrain/, probe/, scratch/, report/)', {
    default: 'demo-out',
  }),
  minutes: num('--minutes <m>', 'cap on the pretraining wall time (default 12; 0 = no cap)', { min: 0 }),
  steps: int(
    '--steps <n>',
    'pretraining steps (default: the tiny recipe, 54 epochs = 2484; 1200 with --ci)',
    { min: 1 },
  ),
  classifierSteps: int(
    '--classifier-steps <n>',
    'steps of each digit classifier (default 200; 100 with --ci)',
    { min: 1 },
  ),
  ci: flag('--ci', 'reduced budget (what CI runs): fewer clips and steps'),
  finetune: flag('--finetune', 'fine-tune the whole pretrained encoder instead of a linear probe'),
  baseline: flag(
    '--baseline',
    'also pretrain AV-MAE (no contrastive term) with the same budget and compare retrieval',
  ),
  bf16: negatable(
    '--no-bf16',
    'compute in fp32 (default: bf16 GEMM inputs with fp32 accumulation where the CPU has bf16 dot products, AVX512-BF16; else fp32)',
    { explicit: true },
  ),
  n: int('--n <n>', 'training clips to make (default 3000; 1200 with --ci)', { min: 10 }),
  testN: int('--test-n <n>', 'held-out clips (default 300; 200 with --ci)', { min: 10 }),
  seed: int('--seed <n>', 'seed of data, initialisation and training (default 0)', { min: 0 }),
  workers: WORKERS,
  jobs: int('--jobs <n>', 'clips synthesised in parallel (default 2)', { min: 1 }),
  quiet: QUIET,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'demo',
    'the whole pipeline on built-in data (AV-digits): make the data, pretrain a tiny CAV-MAE, zero-shot retrieval vs chance on synthetic and real speech, a digit classifier vs one trained from scratch, an HTML report',
    OPTIONS,
    async (o) => {
      const { runDemo, formatDemo } = await import('../../train/demo.js');
      const r = await runDemo(o);
      process.stdout.write(formatDemo(r) + '\n');
    },
  );
}
