/**
 * `tsx src/infra/ensure-temporal-cli.ts`: makes sure the Temporal CLI exists
 * (building it into the cache if needed, exactly as the app would) and prints
 * its path on stdout. CI runs this first so the long build is a visible step.
 */
import { runtimeConfig } from '../config';
import { TcrawlError } from '../errors';
import { findTemporalCli } from './temporal-cli';

findTemporalCli(runtimeConfig(), (line) => process.stderr.write(`${line}\n`)).then(
  (cli) => process.stdout.write(`${cli}\n`),
  (err: unknown) => {
    const code = err instanceof TcrawlError ? ` [${err.code}]` : '';
    process.stderr.write(`error${code}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
