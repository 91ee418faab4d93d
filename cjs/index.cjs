'use strict';
// require('cavmae'): the package is an ES module. Node >= 20.19 (and >= 22.12) loads it through
// require() as well; older versions cannot, and get a message that says what to write instead.
try {
  module.exports = require('../dist/src/index.js');
} catch (e) {
  if (e && (e.code === 'ERR_REQUIRE_ESM' || e.code === 'ERR_REQUIRE_ASYNC_MODULE')) {
    const err = new Error(
      `cavmae is an ES module and this Node.js (${process.version}) cannot require() it: ` +
        "use `import { CavMae } from 'cavmae'` (or `const { CavMae } = await import('cavmae')` from CommonJS), " +
        'or Node.js >= 20.19',
    );
    err.code = 'ERR_REQUIRE_ESM';
    err.cause = e;
    throw err;
  }
  throw e;
}
