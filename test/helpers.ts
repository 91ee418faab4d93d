/** Shared test utilities: where the repository and its golden fixtures are, and numeric comparisons. */
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';

/** Repository root (works from test/*.ts under tsx and from dist/test/*.js). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('repository root not found');
}

const fromDist = fileURLToPath(import.meta.url).includes(join('dist', 'test'));

/** argv for `node <...> cavmae <args>`: the built CLI, or the TypeScript sources under tsx. */
export function cliArgv(args: string[]): string[] {
  const root = repoRoot();
  return fromDist
    ? [join(root, 'bin', 'cavmae.js'), ...args]
    : [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(join(root, 'src', 'cli', 'main.ts'))}); await m.main(['node', 'cavmae', ...process.argv.slice(1)]);`,
        ...args,
      ];
}

/** Whether the tests run from the TypeScript sources (under tsx) rather than from dist/. */
export const underTsx = !fromDist && fileURLToPath(import.meta.url).endsWith('.ts');

/** The URL of a module beside `from` (an import.meta.url): its .ts under tsx, its .js in dist. */
export function siblingModule(from: string, path: string): string {
  return new URL(`${path}.${underTsx ? 'ts' : 'js'}`, from).href;
}

/**
 * Runs an ES-module script (`node -e`) in a child process, under tsx when the tests do, so that
 * it can import the sources (siblingModule). env: added variables.
 */
export function runModuleScript(
  script: string,
  opts: { env?: Record<string, string>; timeoutMs?: number } = {},
): CliResult {
  const r = spawnSync(
    process.execPath,
    [...(underTsx ? ['--import', 'tsx'] : []), '--input-type=module', '-e', script],
    {
      env: { ...process.env, ...opts.env },
      encoding: 'utf8',
      timeout: opts.timeoutMs ?? 30_000,
    },
  );
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cavmae <args>` in a child process from the repository root (env: added variables). */
export function runCli(
  args: string[],
  opts: { timeoutMs?: number; env?: Record<string, string> } = {},
): CliResult {
  const r = spawnSync(process.execPath, cliArgv(args), {
    cwd: repoRoot(),
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    env: { ...process.env, ...opts.env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The golden data made by the official CAV-MAE code (test/fixtures/official: a copy of the
 * project's ../shared/fixtures with its README), so that a fresh clone checks fidelity too.
 */
export function officialFixturesDir(): string {
  return join(repoRoot(), 'test', 'fixtures', 'official');
}

/** A file of the official fixtures, e.g. fixture('model_small', 'cavmae_small.pth'). */
export function fixture(...parts: string[]): string {
  return join(officialFixturesDir(), ...parts);
}

/**
 * Whether the official fixtures are present. The repository carries them, so this is false only
 * in a stripped copy (the npm package has no tests).
 */
export function hasOfficialFixtures(): boolean {
  return existsSync(join(officialFixturesDir(), 'README.md'));
}

/** Deterministic PRNG (mulberry32) for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r() * 2 - 1) * scale;
  return out;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length mismatch');
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

/** Asserts max|a-b| <= rtol * max|ref| + atol, with a message that shows the numbers. */
export function assertClose(
  actual: ArrayLike<number>,
  ref: ArrayLike<number>,
  opts: { rtol?: number; atol?: number; what?: string } = {},
): void {
  const { rtol = 0, atol = 0, what = 'tensor' } = opts;
  const d = maxAbsDiff(actual, ref);
  const bound = rtol * maxAbs(ref) + atol;
  assert.ok(
    d <= bound,
    `${what}: max|diff| = ${d.toExponential(3)} > ${bound.toExponential(3)} (rtol ${rtol}, atol ${atol})`,
  );
}

/**
 * Runs the `cavmae` CLI in a child process: bin/cavmae.js from dist, or the TypeScript entry
 * through tsx (a runner module written into `tmp`).
 */
export function runCavmae(
  tmp: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): { status: number | null; stdout: string; stderr: string } {
  let argv: string[];
  if (fileURLToPath(import.meta.url).includes(join('dist', 'test')))
    argv = [join(repoRoot(), 'bin', 'cavmae.js'), ...args];
  else {
    const runner = join(tmp, 'run-cli.mjs');
    const main = pathToFileURL(join(repoRoot(), 'src', 'cli', 'main.ts')).href;
    writeFileSync(runner, `const m = await import(${JSON.stringify(main)});\nawait m.main(process.argv);\n`);
    argv = ['--import', 'tsx', runner, ...args];
  }
  const r = spawnSync(process.execPath, argv, {
    cwd: repoRoot(),
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 60_000,
    env: opts.env ?? process.env,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
