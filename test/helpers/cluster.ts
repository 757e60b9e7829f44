/**
 * What the tests of test/cluster/ share: ports for a `temporal-server`, and
 * databases of its own on the suite's Postgres, dropped at the end.
 */
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Client as PgClient } from 'pg';
import { consecutivePorts, type ClusterDatabases, type ClusterPorts } from '../../src/infra/temporal-cluster';

/**
 * TCRAWL_TEST_CLUSTER_PORT and the 9 after it, else 10 free ports in a row below 32768: the server keeps its
 * membership ports in a Postgres smallint (`cluster_membership.rpc_port`), and
 * refuses to start on an ephemeral one ("value 41651 is out of range for type
 * smallint", seen with ports from the OS).
 */
export async function clusterPorts(): Promise<ClusterPorts> {
  const given = Number(process.env.TCRAWL_TEST_CLUSTER_PORT);
  if (given) return consecutivePorts(given);
  for (;;) {
    const first = 20_000 + Math.floor(Math.random() * 12_000);
    const ports = consecutivePorts(first);
    if ((await Promise.all(Object.values(ports).map(isFree))).every(Boolean)) return ports;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Names for a server's two databases no other run uses: `temporal_<what>_<random>` and `temporal_visibility_<what>_<random>`. */
export function freshClusterDatabases(postgresUrl: string, what: string): Required<ClusterDatabases> {
  const suffix = randomBytes(4).toString('hex');
  return { postgresUrl, persistence: `temporal_${what}_${suffix}`, visibility: `temporal_visibility_${what}_${suffix}` };
}

export async function dropClusterDatabases(db: Required<ClusterDatabases>): Promise<void> {
  const client = new PgClient({ connectionString: db.postgresUrl });
  await client.connect();
  try {
    for (const name of [db.persistence, db.visibility]) await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}
