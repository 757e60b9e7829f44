/**
 * A private Postgres (embedded) and a private Temporal dev server (SQLite
 * file database) in a temporary folder, on free ports — never the machine's
 * shared ones — that the chaos run can kill and start again on the same data.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runtimeConfig, type RuntimeConfig } from '../src/config';
import { ensureEmbeddedPostgres, type EmbeddedPostgres } from '../src/infra/embedded-postgres';
import { ensureTemporalServer, type TemporalServer } from '../src/infra/temporal-server';
import { freePort, killAndWait, privateDir } from '../test/helpers/processes';

export interface PrivateServices {
  temporalAddress: string;
  databaseUrl: string;
  /** Postgres's server log: where it says a client vanished with a transaction open. */
  postgresLog: string;
  /** SIGKILLs the Temporal server and starts it again on its database file after `downMs`. */
  killAndRestartTemporal(downMs: number): Promise<void>;
  /** `pg_ctl stop -m immediate` (no checkpoint, every backend dropped), then a start that recovers from the WAL. */
  restartPostgresImmediately(downMs: number): Promise<void>;
  /** Stops both and removes the folder. */
  close(): Promise<void>;
}

export async function startPrivateServices(log: (line: string) => void): Promise<PrivateServices> {
  const dataDir = privateDir('tcrawl-chaos-');
  const config: RuntimeConfig = { ...runtimeConfig(), dataDir };
  const pgOptions = { config, port: await freePort(), detached: false, log };
  const temporalOptions = { config, port: await freePort(), uiPort: await freePort(), dbFile: path.join(dataDir, 'temporal.db'), detached: false, log };
  let pg: EmbeddedPostgres = await ensureEmbeddedPostgres(pgOptions);
  let temporal: TemporalServer = await ensureTemporalServer(temporalOptions);
  if (!pg.started || !temporal.started || temporal.pid === undefined) throw new Error('expected a private Postgres and Temporal server to be started, found running ones');
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  return {
    temporalAddress: temporal.address,
    databaseUrl: pg.databaseUrl,
    postgresLog: path.join(dataDir, 'postgres.log'),
    async killAndRestartTemporal(downMs) {
      const killed = temporal;
      await killAndWait(killed.pid!);
      await killed.stop(); // already gone: only unregisters its exit hook
      await sleep(downMs);
      temporal = await ensureTemporalServer(temporalOptions);
    },
    async restartPostgresImmediately(downMs) {
      pgCtlStopImmediately(path.join(dataDir, 'postgres'));
      await sleep(downMs);
      // The old handle's stop() would stop the new server: it is replaced, not stopped.
      pg = await ensureEmbeddedPostgres(pgOptions);
    },
    async close() {
      await temporal.stop();
      await pg.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * The embedded cluster's `pg_ctl stop -m immediate`, run as the cluster's
 * owner (pg_ctl refuses to run as root). The binary sits in the platform
 * package of embedded-postgres, as src/infra/embedded-postgres.ts finds it.
 */
function pgCtlStopImmediately(clusterDir: string): void {
  const platformPackage = path.resolve(path.dirname(require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`)), '..');
  const pgCtl = path.join(platformPackage, 'native', 'bin', 'pg_ctl');
  const owner = fs.statSync(clusterDir);
  execFileSync(pgCtl, ['stop', '-D', clusterDir, '-m', 'immediate', '-w', '-t', '60'], { uid: owner.uid, gid: owner.gid, cwd: clusterDir, stdio: 'ignore' });
}
