#!/bin/sh
# The image's last stage (Dockerfile), run in a folder holding package.json and
# package-lock.json: the production dependencies only, with their install
# scripts (@swc/core's, which the workflow bundler loads: `tcrawl replay`
# bundles the code it checks; workers load the prebuilt bundle).
# `npm ci --omit=dev` alone fails here: it runs tcrawl's own `prepare`
# (`npm run build`), whose `tsc` is a dev dependency. dist/ comes built from
# the first stage, so the runtime package has no `prepare`.
set -eu
npm pkg delete scripts.prepare
npm ci --omit=dev --no-audit --no-fund
npm cache clean --force
