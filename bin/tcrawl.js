#!/usr/bin/env node
'use strict';
// tcrawl runs its compiled JavaScript (dist/, made by `npm run build`): a packed
// tarball carries it, and `npm install` in a clone or from git builds it (the
// `prepare` script). No TypeScript toolchain is needed at run time.
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cli = path.join(root, 'dist', 'src', 'cli', 'index.js');

function refuse(problem, code) {
  process.stderr.write(`tcrawl: ${problem}: run \`npm run build\` in ${root}. [${code}]\n`);
  process.exit(1);
}

/** In a checkout (the package has no sources), the newest source file newer than the build, if any. */
function sourceNewerThan(builtAtMs) {
  for (const dir of ['src', 'workflows', 'activities']) {
    const abs = path.join(root, dir);
    if (!fs.existsSync(abs)) continue;
    for (const file of fs.readdirSync(abs, { recursive: true })) {
      if (String(file).endsWith('.ts') && fs.statSync(path.join(abs, file)).mtimeMs > builtAtMs) return path.join(dir, file);
    }
  }
  return undefined;
}

let builtAtMs;
try {
  builtAtMs = fs.statSync(cli).mtimeMs;
} catch {
  refuse(`not built (${cli} is missing)`, 'TCRAWL_NOT_BUILT');
}
// The compiled code must be that of these sources: running an older build would look like the new code misbehaving.
const changed = sourceNewerThan(builtAtMs);
if (changed) refuse(`${changed} changed since dist/ was built`, 'TCRAWL_STALE_BUILD');

require(cli)
  .main(process.argv)
  .finally(() => {
    // Open handles (pools, timers of libraries) must not keep a finished command alive.
    setTimeout(() => process.exit(), 100).unref();
  });
