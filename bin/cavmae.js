#!/usr/bin/env node
import('../dist/src/cli/main.js').then((m) => m.main(process.argv)).catch((e) => {
  process.stderr.write(`cavmae: ${e && e.message ? e.message : e}\n(has the package been built? run 'npm run setup')\n`);
  process.exit(1);
});
