#!/bin/sh
# The image's first stage (Dockerfile), run in a folder holding package.json,
# package-lock.json, the tsconfigs, src/, workflows/, activities/ and
# scripts/bundle-workflows.js: every dependency, then dist/ (tsc, then the
# workflow bundle). Scripts are skipped: `prepare` would build a second
# time, and no dependency's install script is needed to compile.
set -eu
npm ci --ignore-scripts --no-audit --no-fund
npm run build
