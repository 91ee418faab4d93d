#!/usr/bin/env node
// prepack (npm pack / npm publish), after `npm run build`: make the package contents exactly the
// current sources. Compiled files whose TypeScript source is gone (a renamed or deleted module
// leaves them in dist/ because tsc never deletes) are removed, and the native addon is copied to
// prebuilds/ (rebuilt first when native/ changed), so `npm install cavmae` works without a compiler.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT, prebuild } from './native.mjs';

const DIST = join(ROOT, 'dist', 'src');
const SRC = join(ROOT, 'src');

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else yield p;
  }
}

if (!existsSync(join(DIST, 'index.js'))) throw new Error('dist/src/index.js is missing: run `npm run build` first');
let removed = 0;
for (const file of walk(DIST)) {
  const m = /^(.*)\.(js|d\.ts|js\.map)$/.exec(relative(DIST, file));
  if (m && !existsSync(join(SRC, `${m[1]}.ts`))) {
    rmSync(file);
    removed++;
  }
}
if (removed) process.stdout.write(`cavmae: prepack: removed ${removed} compiled files whose source is gone\n`);
prebuild();
