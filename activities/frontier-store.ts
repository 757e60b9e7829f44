import type { Pool, PoolClient } from 'pg';
import { hostOf } from '../src/url';

/**
 * Postgres side of the frontier. Every function here may run twice for the
 * same input (an activity retried after its worker died) and must leave the
 * same rows behind: inserts are ON CONFLICT DO NOTHING, leases are keyed by
 * batch id, state changes are guarded by the state they expect.
 */

export interface LeasedUrl {
  url: string;
  depth: number;
  attempts: number;
}

export interface FinishedUrl {
  url: string;
  state: 'done' | 'failed' | 'skipped';
  status: number | null;
  reason: string | null;
}

export interface Lease {
  /** Leased to this batch and not finished yet: fetch these. */
  pending: LeasedUrl[];
  /** Finished by an earlier attempt of the same batch: report them, don't fetch again. */
  finished: FinishedUrl[];
}

export async function insertSeeds(pool: Pool, crawlId: string, spec: unknown, seeds: string[]): Promise<void> {
  await withTransaction(pool, async (client) => {
    await client.query(`INSERT INTO crawls (crawl_id, spec) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [crawlId, JSON.stringify(spec)]);
    await insertUrls(client, crawlId, seeds.map((url) => ({ url, depth: 0, foundOn: null })));
  });
}

export interface NewUrl {
  url: string;
  depth: number;
  foundOn: string | null;
}

/** Adds URLs never seen in this crawl; returns host -> how many were new. */
export async function insertUrls(client: Pool | PoolClient, crawlId: string, urls: NewUrl[]): Promise<Record<string, number>> {
  if (urls.length === 0) return {};
  // Sorted so concurrent batches take index locks in the same order (no deadlocks).
  const unique = [...new Map(urls.map((entry) => [entry.url, entry])).values()].sort((a, b) => (a.url < b.url ? -1 : 1));
  const { rows } = await client.query<{ host: string }>(
    `INSERT INTO frontier (crawl_id, url, host, depth, found_on)
     SELECT $1, u.url, u.host, u.depth, u.found_on
       FROM unnest($2::text[], $3::text[], $4::int[], $5::text[]) AS u(url, host, depth, found_on)
     ON CONFLICT DO NOTHING
     RETURNING host`,
    [crawlId, unique.map((u) => u.url), unique.map((u) => hostOf(u.url)), unique.map((u) => u.depth), unique.map((u) => u.foundOn)],
  );
  const byHost: Record<string, number> = {};
  for (const { host } of rows) byHost[host] = (byHost[host] ?? 0) + 1;
  return byHost;
}

/**
 * Leases up to `limit` URLs of one host to `batchId`: those due by `dueByMs`,
 * the batch's granted start (none of its requests starts earlier). If the
 * batch already holds a lease (this is a retry), returns that lease instead.
 */
export async function leaseUrls(pool: Pool, crawlId: string, batchId: string, host: string, limit: number, dueByMs: number): Promise<Lease> {
  const existing = await pool.query<LeasedUrl & { state: string; status: number | null; reason: string | null }>(
    `SELECT url, depth, attempts, state, status, reason FROM frontier
      WHERE crawl_id = $1 AND batch_id = $2 ORDER BY seq`,
    [crawlId, batchId],
  );
  if (existing.rows.length > 0) {
    const pending = existing.rows.filter((row) => row.state === 'leased').map(({ url, depth, attempts }) => ({ url, depth, attempts }));
    const finished = existing.rows
      .filter((row) => row.state !== 'leased' && row.state !== 'queued')
      .map(({ url, state, status, reason }) => ({ url, state: state as FinishedUrl['state'], status, reason }));
    return { pending, finished };
  }
  const { rows } = await pool.query<LeasedUrl>(
    `WITH picked AS (
       SELECT url FROM frontier
        WHERE crawl_id = $1 AND host = $2 AND state = 'queued'
          AND (not_before IS NULL OR not_before <= greatest(now(), to_timestamp($5::double precision / 1000)))
        ORDER BY seq LIMIT $4
        FOR UPDATE SKIP LOCKED)
     UPDATE frontier f SET state = 'leased', batch_id = $3, leased_at = now(), updated_at = now()
       FROM picked WHERE f.crawl_id = $1 AND f.url = picked.url
     RETURNING f.url, f.depth, f.attempts, f.seq`,
    [crawlId, host, batchId, limit, dueByMs],
  );
  return { pending: rows.map(({ url, depth, attempts }) => ({ url, depth, attempts })), finished: [] };
}

export interface HostQueue {
  queued: number;
  /** When no queued URL is due yet: when the first one is. */
  nextDueAtMs: number | null;
}

export async function hostQueues(client: Pool | PoolClient, crawlId: string, host?: string): Promise<Record<string, HostQueue>> {
  const { rows } = await client.query<{ host: string; queued: string; due: string; next_due: Date | null }>(
    `SELECT host, count(*) AS queued,
            count(*) FILTER (WHERE not_before IS NULL OR not_before <= now()) AS due,
            min(not_before) FILTER (WHERE not_before > now()) AS next_due
       FROM frontier
      WHERE crawl_id = $1 AND state = 'queued' AND ($2::text IS NULL OR host = $2)
      GROUP BY host`,
    [crawlId, host ?? null],
  );
  const queues: Record<string, HostQueue> = {};
  for (const row of rows) {
    queues[row.host] = { queued: Number(row.queued), nextDueAtMs: Number(row.due) > 0 || !row.next_due ? null : row.next_due.getTime() };
  }
  return queues;
}

/**
 * Puts every lease of the crawl back in the queue. Only the workflow may ask
 * for it, at a moment it knows no batch of the crawl is running.
 */
export async function releaseLeases(pool: Pool, crawlId: string): Promise<number> {
  const { rowCount } = await pool.query(
    `UPDATE frontier SET state = 'queued', batch_id = NULL, leased_at = NULL, updated_at = now()
      WHERE crawl_id = $1 AND state = 'leased'`,
    [crawlId],
  );
  return rowCount ?? 0;
}

/** Runs `work` in a transaction, retrying it when Postgres picks it as a deadlock or serialization victim. */
export async function withTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      const code = (error as { code?: string }).code;
      if ((code === '40P01' || code === '40001') && attempt < 5) continue;
      throw error;
    } finally {
      client.release();
    }
  }
}
