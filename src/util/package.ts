/** Where the installed package is (a git clone, or node_modules/cavmae) and its version. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The folder holding cavmae's package.json (this file is dist/src/util/ or, under tsx, src/util/). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return (root = dir);
    dir = dirname(dir);
  }
  return (root = process.cwd());
}

/** The version in package.json (what `cavmae --version` prints). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string };
  return pkg.version ?? 'unknown';
}
