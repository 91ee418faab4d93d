#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's built-in test runner.
// Node 20's `--test` does not expand globs, so the list is built here.
// Usage: node scripts/run-tests.mjs [--package] [substring filters...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// --package: only the packaging test (dist/test/package: npm pack, install into a new project),
// which the default run leaves out because it builds and installs the whole package (.ci/run runs
// it after the suite).
const args = process.argv.slice(2);
const packageOnly = args.includes('--package');
const filters = args.filter((a) => a !== '--package');
const isPackageTest = (f) => f.split(/[\\/]/).includes('package');
let files = walk('dist/test').sort().filter((f) => isPackageTest(f) === packageOnly);
if (filters.length) files = files.filter((f) => filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)');
  process.exit(1);
}
const concurrency = process.env.CAVMAE_TEST_CONCURRENCY ?? '2';
const r = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
