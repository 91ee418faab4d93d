/**
 * The `cavmae` command line. Every command lives in its own file in ./commands/ and exports
 * `register(program)`; commands import their heavy dependencies lazily inside their action so
 * that `cavmae --help` stays instant. Commands hold no logic of their own: they parse flags and
 * call the library.
 */
import { Command, CommanderError } from 'commander';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { UserError } from '../util/errors.js';
import { packageVersion } from '../util/package.js';

export interface CommandModule {
  register(program: Command): void;
}

async function loadCommands(program: Command): Promise<void> {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'commands');
  const files = readdirSync(dir)
    .filter((f) => /\.(js|ts)$/.test(f) && !f.endsWith('.d.ts') && !f.endsWith('.map'))
    .sort();
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as Partial<CommandModule>;
    if (typeof mod.register === 'function') mod.register(program);
  }
}

export function reportError(e: unknown): number {
  if (e instanceof UserError) {
    process.stderr.write(`cavmae: ${e.message}\n`);
    return e.exitCode;
  }
  if (e instanceof CommanderError) return e.exitCode;
  const err = e as Error;
  process.stderr.write(`cavmae: internal error: ${err?.message ?? String(e)}\n`);
  if (process.env.CAVMAE_DEBUG) process.stderr.write(`${err?.stack}\n`);
  return 2;
}

/** The whole command tree, every command registered (tests read its flags from here). */
export async function buildProgram(): Promise<Command> {
  const program = new Command();
  program
    .name('cavmae')
    .description('Contrastive audio-visual masked autoencoders (CAV-MAE, CAV-MAE Sync) for Node.js')
    .version(packageVersion())
    .showHelpAfterError()
    .exitOverride();
  await loadCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.exitCode = reportError(e);
  }
}
