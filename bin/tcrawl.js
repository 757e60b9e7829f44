#!/usr/bin/env node
'use strict';
// tcrawl runs its compiled JavaScript (dist/, made by `npm run build`): a packed
// tarball carries it, and `npm install` in a clone or from git builds it (the
// `prepare` script). No TypeScript toolchain is needed at run time.
const path = require('node:path');

const cli = path.join(__dirname, '..', 'dist', 'src', 'cli', 'index.js');
let main;
try {
  ({ main } = require(cli));
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && err.message.includes(cli)) {
    process.stderr.write(
      `tcrawl: not built (${cli} is missing): run \`npm run build\` in ${path.resolve(__dirname, '..')}. [TCRAWL_NOT_BUILT]\n`,
    );
    process.exit(1);
  }
  throw err;
}
main(process.argv).finally(() => {
  // Open handles (pools, timers of libraries) must not keep a finished command alive.
  setTimeout(() => process.exit(), 100).unref();
});
