#!/usr/bin/env node
'use strict';
// `npm run build`'s second step, after tsc: the compiled workflow code bundled once (webpack, as the SDK does)
// into dist/workflow-bundle.js, which workers load instead of bundling at every start (src/workflow-code.ts).
// Plain JavaScript on dist/, so it runs wherever the build does: `npm pack`'s prepare, the image's build stage.
const { writeWorkflowBundle } = require('../dist/src/workflow-code.js');

const started = Date.now();
writeWorkflowBundle().then(
  ({ path, bytes }) => console.log(`workflow bundle: ${path} (${(bytes / 2 ** 20).toFixed(2)} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s)`),
  (error) => {
    console.error(`workflow bundle: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exitCode = 1;
  },
);
