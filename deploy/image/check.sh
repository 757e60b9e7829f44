#!/bin/sh
# The Dockerfile's two stages without a container (CI has no Docker engine):
# the same files copied into a build folder and an app folder, the same
# scripts run there, then the app folder checked: it holds no dev dependency,
# bin/tcrawl.js runs from it, and so does a worker, from the prebuilt workflow
# bundle. That worker needs a Temporal server, started here from the Temporal
# CLI (TEMPORAL_CLI, or the one tcrawl builds into ~/.cache/tcrawl/bin), and
# Postgres: DATABASE_URL, or else tcrawl's embedded one in the work folder.
set -eu
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
# Traversable: run as root, the embedded Postgres runs as the OS user postgres, under $work/data.
chmod 711 "$work"
temporal_pid=""
worker_pid=""
cleanup() {
  for pid in $worker_pid $temporal_pid; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/build" "$work/app"
cd "$root"
cp -R package.json package-lock.json tsconfig.json tsconfig.build.json src workflows activities "$work/build/"
mkdir "$work/build/scripts" && cp scripts/bundle-workflows.js "$work/build/scripts/"
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
# `tcrawl replay` bundles the workflow code it checks (webpack and @swc/core, production dependencies).
node -e "
  const { bundleWorkflowCode } = require('@temporalio/worker');
  const { crawlWorkflowsPath } = require('./dist/src/workflow-code.js');
  bundleWorkflowCode({ workflowsPath: crawlWorkflowsPath, logger: { trace() {}, debug() {}, info() {}, warn: console.warn, error: console.error, log() {} } })
    .then((bundle) => { if (bundle.code.length < 1000) throw new Error('empty workflow bundle'); });
"

# A worker, until it polls: \`tcrawl dev\` (the image's \`worker\`, stopping at exit the embedded Postgres it may start).
cli="${TEMPORAL_CLI:-$HOME/.cache/tcrawl/bin/temporal}"
port="$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")"
"$cli" server start-dev --headless --ip 127.0.0.1 --port "$port" --db-filename "$work/temporal.db" --log-level error >"$work/temporal.log" 2>&1 &
temporal_pid=$!
node -e "
  const net = require('node:net');
  const deadline = Date.now() + 60_000;
  (function attempt() {
    net.connect($port, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => {
      if (Date.now() > deadline) { console.error('check: the Temporal dev server did not listen on $port'); process.exit(1); }
      setTimeout(attempt, 200);
    });
  })();
"
TCRAWL_LOG_LEVEL=DEBUG TEMPORAL_ADDRESS="127.0.0.1:$port" TCRAWL_TASK_QUEUE=image-check TCRAWL_DATA_DIR="$work/data" \
  node bin/tcrawl.js dev >"$work/worker.log" 2>&1 &
worker_pid=$!
waited=0
until grep -q "state: 'RUNNING'" "$work/worker.log"; do
  if ! kill -0 "$worker_pid" 2>/dev/null || [ "$waited" -ge 120 ]; then
    echo "check: the worker did not start polling within ${waited} s:" >&2; tail -n 40 "$work/worker.log" >&2; exit 1
  fi
  sleep 1; waited=$((waited + 1))
done
# The SDK logs the options a worker is created with (DEBUG), and "Workflow bundle created" whenever it bundles.
if ! grep -q "codePath: '$work/app/dist/workflow-bundle.js'" "$work/worker.log" || grep -q 'Workflow bundle created' "$work/worker.log"; then
  echo "check: the worker did not run the prebuilt workflow bundle:" >&2; grep -A3 -i 'workflowBundle\|workflowsPath\|bundle created' "$work/worker.log" >&2; exit 1
fi
kill -TERM "$worker_pid"; wait "$worker_pid"; worker_pid=""

echo "check: the image's build steps work: $(du -sh node_modules | cut -f1) of production dependencies; bin/tcrawl.js runs dist/, a worker polled in about ${waited} s from the prebuilt workflow bundle, and the workflow code bundles"
