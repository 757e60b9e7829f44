#!/usr/bin/env node
'use strict';
// tcrawl runs from its TypeScript sources; tsx compiles them on load.
require('tsx/cjs');
require('../src/cli/index.ts')
  .main(process.argv)
  .finally(() => {
    // Open handles (pools, timers of libraries) must not keep a finished command alive.
    setTimeout(() => process.exit(), 100).unref();
  });
