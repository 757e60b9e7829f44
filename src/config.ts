import * as path from 'node:path';
import * as os from 'node:os';

/**
 * Where tcrawl finds its services, resolved once from the environment.
 * Unset `TEMPORAL_ADDRESS` / `DATABASE_URL` mean "use the local ones under the
 * data folder, starting them on demand".
 */
export interface RuntimeConfig {
  /** `host:port` of a Temporal frontend, or undefined for the local dev server. */
  temporalAddress: string | undefined;
  /** @default 'default' */
  temporalNamespace: string;
  /** A postgres:// URL, or undefined for the embedded Postgres. */
  databaseUrl: string | undefined;
  /** @default 'tcrawl' */
  taskQueue: string;
  /** Local state: Temporal's SQLite file, the embedded Postgres cluster, logs. @default './.tcrawl' */
  dataDir: string;
  /** Built tools that outlive a checkout (the Temporal CLI). @default '$XDG_CACHE_HOME/tcrawl' or '~/.cache/tcrawl' */
  cacheDir: string;
}

export function runtimeConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  return {
    temporalAddress: env.TEMPORAL_ADDRESS || undefined,
    temporalNamespace: env.TEMPORAL_NAMESPACE || 'default',
    databaseUrl: env.DATABASE_URL || undefined,
    taskQueue: env.TCRAWL_TASK_QUEUE || 'tcrawl',
    dataDir: path.resolve(env.TCRAWL_DATA_DIR || '.tcrawl'),
    cacheDir: path.resolve(env.TCRAWL_CACHE_DIR || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'tcrawl')),
  };
}
