/**
 * `tsx src/infra/ensure-temporal-cluster.ts`: makes sure the Temporal server
 * and its SQL tool are built (building them into the cache if needed, exactly
 * as `npm run test:cluster` would) and prints the folder holding
 * `temporal-server` and `temporal-sql-tool` on stdout. CI runs this first so
 * the long build is a visible step.
 */
import * as path from 'node:path';
import { runtimeConfig } from '../config';
import { TcrawlError } from '../errors';
import { findTemporalClusterBinaries } from './temporal-cluster-binaries';

findTemporalClusterBinaries(runtimeConfig(), (line) => process.stderr.write(`${line}\n`)).then(
  (binaries) => process.stdout.write(`${path.dirname(binaries.server)}\n`),
  (err: unknown) => {
    const code = err instanceof TcrawlError ? ` [${err.code}]` : '';
    process.stderr.write(`error${code}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
