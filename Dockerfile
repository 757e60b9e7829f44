# tcrawl's image: the CLI and worker as compiled JavaScript (dist/, with the
# prebuilt workflow bundle dist/workflow-bundle.js its workers load) on Node.js 20,
# production dependencies only, run as a non-root user. docker-compose.yml runs
# its workers from it. The steps are deploy/image/build.sh and install.sh, which
# CI also runs outside a container (deploy/image/check.sh; no Docker engine there).
#
#   docker build -t tcrawl .
#   docker run --rm -e TEMPORAL_ADDRESS=… -e DATABASE_URL=… tcrawl worker

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src src
COPY workflows workflows
COPY activities activities
COPY scripts/bundle-workflows.js scripts/
COPY deploy/image deploy/image
RUN sh deploy/image/build.sh

FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
COPY deploy/image/install.sh /tmp/install.sh
RUN sh /tmp/install.sh && rm /tmp/install.sh
COPY bin bin
COPY schema schema
COPY --from=build /src/dist dist
# The image's own user (uid 1000); no source files, so bin/tcrawl.js runs dist/ as it is.
USER node
# A worker's memory, set where Node and glibc read it, at the process's start (npm run bench:scale, in the README's
# Benchmark: the most RSS went from 345 to 245 MB side by side, at the same pages/s). V8 lets its old generation grow
# to about four times the live heap (40 MB) before collecting when its limit is the 4 GB a large machine gives it, and
# far less under a 512 MB limit; two malloc arenas instead of eight per core keep the SDK's native threads from
# holding memory they freed.
ENV NODE_ENV=production TCRAWL_DATA_DIR=/tmp/tcrawl NODE_OPTIONS=--max-old-space-size=512 MALLOC_ARENA_MAX=2
# `tcrawl worker --metrics-port 9464` serves Prometheus metrics there (docker-compose.yml does).
EXPOSE 9464
ENTRYPOINT ["node", "bin/tcrawl.js"]
CMD ["worker"]
