/**
 * `cavmae demo [--out demo-out] [--minutes M] [--ci]`: makes the AV-digits set, pretrains the
 * tiny CAV-MAE for a few minutes, prints zero-shot retrieval against chance and the accuracy of
 * a digit classifier (pretrained vs from scratch), and writes <out>/report/index.html.
 * Resumable: run it again with the same --out to continue. src/train/demo.ts does the work.
 */
import type { Command } from 'commander';
import { number } from './pretrain.js';

interface Flags {
  out: string;
  minutes?: number;
  steps?: number;
  classifierSteps?: number;
  ci?: boolean;
  finetune?: boolean;
  baseline?: boolean;
  n?: number;
  testN?: number;
  seed?: number;
  workers?: number;
  jobs?: number;
  quiet?: boolean;
  bf16: boolean;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'the whole pipeline on built-in data (AV-digits): make the data, pretrain a tiny CAV-MAE, zero-shot retrieval vs chance on synthetic and real speech, a digit classifier vs one trained from scratch, an HTML report',
    )
    .option('--out <dir>', 'output folder (data/, pretrain/, probe/, scratch/, report/)', 'demo-out')
    .option(
      '--minutes <m>',
      'cap on the pretraining wall time (default 12; 0 = no cap)',
      number('--minutes', { min: 0 }),
    )
    .option(
      '--steps <n>',
      'pretraining steps (default: the tiny recipe, 54 epochs = 2484; 1200 with --ci)',
      number('--steps', { int: true, min: 1 }),
    )
    .option(
      '--classifier-steps <n>',
      'steps of each digit classifier (default 200; 100 with --ci)',
      number('--classifier-steps', { int: true, min: 1 }),
    )
    .option('--ci', 'reduced budget (what CI runs): fewer clips and steps')
    .option('--finetune', 'fine-tune the whole pretrained encoder instead of a linear probe')
    .option(
      '--baseline',
      'also pretrain AV-MAE (no contrastive term) with the same budget and compare retrieval',
    )
    .option('--no-bf16', 'compute in fp32 (default: bf16 GEMM inputs, fp32 accumulation)')
    .option(
      '--n <n>',
      'training clips to make (default 3000; 1200 with --ci)',
      number('--n', { int: true, min: 10 }),
    )
    .option(
      '--test-n <n>',
      'held-out clips (default 300; 200 with --ci)',
      number('--test-n', { int: true, min: 10 }),
    )
    .option(
      '--seed <n>',
      'seed of data, initialisation and training (default 0)',
      number('--seed', { int: true, min: 0 }),
    )
    .option('--workers <n>', 'data loader threads (default 2)', number('--workers', { int: true, min: 0 }))
    .option(
      '--jobs <n>',
      'clips synthesised in parallel (default 2)',
      number('--jobs', { int: true, min: 1 }),
    )
    .option('--quiet', 'no progress bars')
    .action(async (f: Flags) => {
      const { runDemo, formatDemo } = await import('../../train/demo.js');
      const r = await runDemo(f);
      process.stdout.write(formatDemo(r) + '\n');
    });
}
