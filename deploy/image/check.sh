#!/bin/sh
# The Dockerfile's two stages without a container (CI has no Docker engine):
# the same files copied into a build folder and an app folder, the same
# scripts run there, then the app folder checked: it holds no dev dependency,
# and bin/tcrawl.js runs from it.
set -eu
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir "$work/build" "$work/app"
cd "$root"
cp -R package.json package-lock.json tsconfig.json tsconfig.build.json src workflows activities "$work/build/"
(cd "$work/build" && sh "$root/deploy/image/build.sh")

cp package.json package-lock.json "$work/app/"
(cd "$work/app" && sh "$root/deploy/image/install.sh")
cp -R bin schema "$work/app/"
cp -R "$work/build/dist" "$work/app/dist"

cd "$work/app"
for dev in typescript tsx eslint; do
  if [ -e "node_modules/$dev" ]; then echo "check: the image would hold the dev dependency $dev" >&2; exit 1; fi
done
node bin/tcrawl.js --help >/dev/null
node bin/tcrawl.js worker --help >/dev/null
node -e "require('./dist/src/index.js').parseCrawlSpec({ seeds: ['https://example.com/'] })"
# What a worker does first: bundle the workflow code (webpack and @swc/core, production dependencies).
node -e "
  const { bundleWorkflowCode } = require('@temporalio/worker');
  const { crawlWorkflowsPath } = require('./dist/src/worker.js');
  bundleWorkflowCode({ workflowsPath: crawlWorkflowsPath, logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} } })
    .then((bundle) => { if (bundle.code.length < 1000) throw new Error('empty workflow bundle'); });
"
echo "check: the image's build steps work: $(du -sh node_modules | cut -f1) of production dependencies; bin/tcrawl.js runs dist/, the workflow code bundles"
