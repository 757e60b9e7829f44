import type { RuntimeConfig } from './config';
import { ensureEmbeddedPostgres } from './infra/embedded-postgres';
import { ensureTemporalServer } from './infra/temporal-server';

/** Where the services a crawl needs are, once they answer. */
export interface Services {
  temporalAddress: string;
  /** The Temporal Web UI, when tcrawl runs the dev server (else: wherever your cluster's UI is). */
  webUiUrl: string | undefined;
  databaseUrl: string;
  /** Stops what this call started (detached services keep running). */
  stop(): Promise<void>;
}

/**
 * Uses TEMPORAL_ADDRESS and DATABASE_URL when set; otherwise reuses or starts
 * the local Temporal dev server and embedded Postgres under the data folder.
 * `detached` services outlive this process, so the data stays queryable and
 * the Web UI viewable after a crawl.
 */
export async function ensureServices(config: RuntimeConfig, opts: { detached: boolean; log: (line: string) => void }): Promise<Services> {
  const [postgres, temporal] = await Promise.all([
    config.databaseUrl ? undefined : ensureEmbeddedPostgres({ config, ...opts }),
    config.temporalAddress ? undefined : ensureTemporalServer({ config, ...opts }),
  ]);
  return {
    temporalAddress: config.temporalAddress ?? temporal!.address,
    webUiUrl: temporal?.uiUrl,
    databaseUrl: config.databaseUrl ?? postgres!.databaseUrl,
    async stop() {
      await temporal?.stop();
      await postgres?.stop();
    },
  };
}
