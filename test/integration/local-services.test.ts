import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { runtimeConfig } from '../../src/config';
import { createPool, migrate } from '../../src/infra/database';
import { ensureEmbeddedPostgres } from '../../src/infra/embedded-postgres';
import { ensureTemporalServer } from '../../src/infra/temporal-server';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('local services (the zero-configuration defaults)', () => {
  it('starts an embedded Postgres, reuses it, and migrates it from several processes at once', async () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-pg-'));
    // As root, Postgres runs as the OS user postgres, which must reach the folder (mkdtemp makes it 0700).
    chmodSync(dataDir, 0o755);
    const config = runtimeConfig({ ...process.env, TCRAWL_DATA_DIR: dataDir });
    const port = await freePort();
    const postgres = await ensureEmbeddedPostgres({ config, port, detached: false, log: () => undefined });
    try {
      assert.equal(postgres.started, true);
      const again = await ensureEmbeddedPostgres({ config, port, detached: false, log: () => undefined });
      assert.equal(again.started, false, 'a running cluster is reused');
      const pools = [0, 1, 2].map(() => createPool(postgres.databaseUrl, 2));
      try {
        // As when several workers start together: the advisory lock serialises them.
        await Promise.all(pools.map((pool) => migrate(pool)));
        await migrate(pools[0]);
        const { rows } = await pools[0].query(`SELECT version FROM tcrawl_migrations ORDER BY version`);
        assert.deepEqual(rows.map((r) => r.version), [1, 2, 3, 4, 5, 6, 7, 8], 'each migration applied once');
        const tables = await pools[0].query(`SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`);
        assert.deepEqual(tables.rows.map((r) => r.tablename), ['bodies', 'crawls', 'egress_health', 'frontier', 'host_pacer', 'items', 'links', 'pages', 'robots', 'tcrawl_migrations']);
      } finally {
        await Promise.all(pools.map((pool) => pool.end()));
      }
    } finally {
      await postgres.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('reuses a Temporal server that already answers instead of starting another', async () => {
    const address = process.env.TEMPORAL_ADDRESS;
    assert.ok(address, 'TEMPORAL_ADDRESS is set by npm test');
    const port = Number(address.split(':').pop());
    const server = await ensureTemporalServer({ config: runtimeConfig(), port, detached: false, log: () => undefined });
    assert.equal(server.started, false);
    assert.equal(server.address, `127.0.0.1:${port}`);
  });
});
