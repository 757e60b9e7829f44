#!/bin/sh
# The image's first stage (Dockerfile), run in a folder holding package.json,
# package-lock.json, the tsconfigs and src/, workflows/, activities/: every
# dependency, then dist/. Scripts are skipped: `prepare` would build a second
# time, and no dependency's install script is needed to compile.
set -eu
npm ci --ignore-scripts --no-audit --no-fund
npm run build
