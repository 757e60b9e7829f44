import type { Pool, PoolClient } from 'pg';
import { jsonForPg } from '../src/pg-text';
import type { FrontierCounts, RequeueFilter, ShardQueuesResult, ShardRef } from '../src/crawl-types';
import { isPlainGet, requestKey, type CrawlRequest } from '../src/rules/request';
import { hostOf } from '../src/url';

/**
 * Postgres side of the frontier. Every function here may run twice for the
 * same input (an activity retried after its worker died) and must leave the
 * same rows behind: inserts are ON CONFLICT DO NOTHING, leases are keyed by
 * batch id, state changes are guarded by the state they expect.
 */

export interface LeasedUrl {
  /** The request key: the URL itself for a plain GET. */
  url: string;
  depth: number;
  attempts: number;
  /** Redirect hops that led to this URL. */
  redirects: number;
  /** How to make it, when it is more than a plain unlabelled GET of `url`. */
  request: CrawlRequest | null;
}

/** What to send for a leased URL. */
export function requestOf(leased: Pick<LeasedUrl, 'url' | 'request'>): CrawlRequest {
  return leased.request ?? { method: 'GET', url: leased.url };
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

export interface NewUrl {
  /** A plain GET's URL; with `request`, the request's key (see {@link newRequest}). */
  url: string;
  depth: number;
  foundOn: string | null;
  /** Redirect hops that led here. @default 0 */
  redirects?: number;
  request?: CrawlRequest;
}

/** A request for the frontier, keyed by its request key. */
export function newRequest(request: CrawlRequest, depth: number, foundOn: string | null, redirects?: number): NewUrl {
  const entry: NewUrl = { url: requestKey(request), depth, foundOn };
  if (redirects !== undefined) entry.redirects = redirects;
  if (!isPlainGet(request)) entry.request = request;
  return entry;
}

/** Adds URLs never seen in this crawl; returns host -> how many were new. */
export async function insertUrls(client: Pool | PoolClient, crawlId: string, urls: NewUrl[]): Promise<Record<string, number>> {
  if (urls.length === 0) return {};
  // Sorted so concurrent batches take index locks in the same order (no deadlocks).
  const unique = [...new Map(urls.map((entry) => [entry.url, entry])).values()].sort((a, b) => (a.url < b.url ? -1 : 1));
  const { rows } = await client.query<{ host: string }>(
    `INSERT INTO frontier (crawl_id, url, host, depth, found_on, redirects, request)
     SELECT $1, u.url, u.host, u.depth, u.found_on, u.redirects, u.request::jsonb
       FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::int[], $7::text[]) AS u(url, host, depth, found_on, redirects, request)
     ON CONFLICT DO NOTHING
     RETURNING host`,
    [
      crawlId,
      unique.map((u) => u.url),
      unique.map((u) => hostOf(u.request?.url ?? u.url)),
      unique.map((u) => u.depth),
      unique.map((u) => u.foundOn),
      unique.map((u) => u.redirects ?? 0),
      unique.map((u) => (u.request ? jsonForPg(u.request) : null)),
    ],
  );
  const byHost: Record<string, number> = {};
  for (const { host } of rows) byHost[host] = (byHost[host] ?? 0) + 1;
  return byHost;
}

/** What a windowed batch asks the frontier for one host: up to `limit` more URLs due by `dueByMs`. */
export interface HostWant {
  host: string;
  limit: number;
  dueByMs: number;
}

/**
 * Leases more URLs to `batchId`, for several hosts in one statement (a
 * windowed batch, at its start and each time a paced host runs out): host ->
 * the URLs leased now, those due by then, in the order they were queued.
 * It adds to what the batch holds: a retry reads that with
 * {@link batchRowsByHost} first and leases only what it still may.
 */
export async function leaseMore(pool: Pool, crawlId: string, batchId: string, wants: HostWant[]): Promise<Record<string, LeasedUrl[]>> {
  const leased: Record<string, LeasedUrl[]> = {};
  const asked = wants.filter((want) => want.limit > 0);
  if (asked.length === 0) return leased;
  const { rows } = await pool.query<LeasedUrl & { host: string; seq: string }>(
    `WITH wanted AS (
       SELECT * FROM unnest($3::text[], $4::int[], $5::double precision[]) AS w(host, n, due_by_ms)),
     picked AS (
       SELECT p.url FROM wanted w CROSS JOIN LATERAL (
         SELECT url FROM frontier
          WHERE crawl_id = $1 AND host = w.host AND state = 'queued'
            AND (not_before IS NULL OR not_before <= greatest(now(), to_timestamp(w.due_by_ms / 1000)))
          ORDER BY seq LIMIT w.n
          FOR UPDATE SKIP LOCKED) p)
     UPDATE frontier f SET state = 'leased', batch_id = $2, leased_at = now(), updated_at = now()
       FROM picked WHERE f.crawl_id = $1 AND f.url = picked.url
     RETURNING f.host, f.url, f.depth, f.attempts, f.redirects, f.request, f.seq`,
    [crawlId, batchId, asked.map((w) => w.host), asked.map((w) => w.limit), asked.map((w) => w.dueByMs)],
  );
  rows.sort((a, b) => Number(a.seq) - Number(b.seq));
  for (const { host, url, depth, attempts, redirects, request } of rows) (leased[host] ??= []).push({ url, depth, attempts, redirects, request });
  return leased;
}

/**
 * Puts URLs a batch leased but never started back in the queue, as if never
 * leased (no attempt counted): a windowed batch that ran out of window or was
 * stopped early. Only rows still leased to this batch move.
 */
export async function releaseUnstarted(pool: Pool, crawlId: string, batchId: string, urls: string[]): Promise<number> {
  if (urls.length === 0) return 0;
  const { rowCount } = await pool.query(
    `UPDATE frontier SET state = 'queued', batch_id = NULL, leased_at = NULL, updated_at = now()
      WHERE crawl_id = $1 AND batch_id = $2 AND state = 'leased' AND url = ANY($3::text[])`,
    [crawlId, batchId, urls],
  );
  return rowCount ?? 0;
}

/** The rows a batch holds: still leased to it, and finished by it. */
export async function batchRows(pool: Pool, crawlId: string, batchId: string): Promise<Lease> {
  const pending: LeasedUrl[] = [];
  const finished: FinishedUrl[] = [];
  for (const lease of Object.values(await batchRowsByHost(pool, crawlId, batchId))) {
    pending.push(...lease.pending);
    finished.push(...lease.finished);
  }
  return { pending, finished };
}

/** {@link batchRows} by host, in the order they were queued. */
export async function batchRowsByHost(pool: Pool, crawlId: string, batchId: string): Promise<Record<string, Lease>> {
  const { rows } = await pool.query<LeasedUrl & { host: string; state: string; status: number | null; reason: string | null }>(
    `SELECT host, url, depth, attempts, redirects, request, state, status, reason FROM frontier
      WHERE crawl_id = $1 AND batch_id = $2 ORDER BY seq`,
    [crawlId, batchId],
  );
  const byHost: Record<string, Lease> = {};
  for (const { host, url, depth, attempts, redirects, request, state, status, reason } of rows) {
    const lease = (byHost[host] ??= { pending: [], finished: [] });
    if (state === 'leased') lease.pending.push({ url, depth, attempts, redirects, request });
    else if (state !== 'queued') lease.finished.push({ url, state: state as FinishedUrl['state'], status, reason });
  }
  return byHost;
}

export interface HostQueue {
  queued: number;
  /** When no queued URL is due yet: when the first one is. */
  nextDueAtMs: number | null;
}

/**
 * Queued URLs per host: at most `maxHosts` hosts, those with most queued
 * first, and how many hosts were left out.
 */
export async function hostQueues(
  client: Pool | PoolClient,
  crawlId: string,
  { maxHosts = null, shard }: { maxHosts?: number | null; shard?: ShardRef } = {},
): Promise<{ queues: Record<string, HostQueue>; omitted: number }> {
  const { rows } = await client.query<{ host: string; queued: string; due: string; next_due: Date | null; hosts: string }>(
    `SELECT host, count(*) AS queued,
            count(*) FILTER (WHERE not_before IS NULL OR not_before <= now()) AS due,
            min(not_before) FILTER (WHERE not_before > now()) AS next_due,
            count(*) OVER () AS hosts
       FROM frontier
      WHERE crawl_id = $1 AND state = 'queued' AND ${inShard(3)}
      GROUP BY host
      ORDER BY count(*) DESC, host
      LIMIT $2`,
    [crawlId, maxHosts, ...shardParams(shard)],
  );
  const queues: Record<string, HostQueue> = {};
  for (const row of rows) queues[row.host] = hostQueueOf(Number(row.queued), Number(row.due) > 0, row.next_due);
  return { queues, omitted: rows.length === 0 ? 0 : Number(rows[0].hosts) - rows.length };
}

function hostQueueOf(queued: number, anyDue: boolean, nextDue: Date | null): HostQueue {
  return { queued, nextDueAtMs: anyDue || !nextDue ? null : nextDue.getTime() };
}

/**
 * The queues of a batch's hosts, as it ends, counted up to `countUpTo` URLs
 * each: a count of every queued URL grows with the host's queue, and one per
 * batch of a host with a million queued took the crawl from 1,000 to 350
 * pages/s. `capped` names the hosts that have at least that many.
 */
export async function boundedHostQueues(
  client: Pool | PoolClient,
  crawlId: string,
  hosts: string[],
  countUpTo: number,
): Promise<{ queues: Record<string, HostQueue>; capped: string[] }> {
  const { rows } = await client.query<{ host: string; queued: string; any_due: boolean; next_due: Date | null }>(
    `SELECT h.host, counted.queued, due.any_due,
            CASE WHEN counted.queued > 0 AND NOT due.any_due THEN
              (SELECT min(f.not_before) FROM frontier f WHERE f.crawl_id = $1 AND f.host = h.host AND f.state = 'queued' AND f.not_before > now())
            END AS next_due
       FROM unnest($2::text[]) AS h(host)
      CROSS JOIN LATERAL (
            SELECT count(*) AS queued FROM (SELECT 1 FROM frontier f WHERE f.crawl_id = $1 AND f.host = h.host AND f.state = 'queued' LIMIT $3) upto
      ) counted
      CROSS JOIN LATERAL (
            SELECT EXISTS (SELECT 1 FROM frontier f WHERE f.crawl_id = $1 AND f.host = h.host AND f.state = 'queued' AND (f.not_before IS NULL OR f.not_before <= now())) AS any_due
      ) due`,
    [crawlId, hosts, countUpTo],
  );
  const queues: Record<string, HostQueue> = {};
  const capped: string[] = [];
  for (const row of rows) {
    const queued = Number(row.queued);
    if (queued === 0) continue;
    queues[row.host] = hostQueueOf(queued, row.any_due, row.next_due);
    if (queued >= countUpTo) capped.push(row.host);
  }
  return { queues, capped };
}

/** Queued URLs of a host, every one counted. */
export async function queuedCount(client: Pool | PoolClient, crawlId: string, host: string): Promise<number> {
  const { rows } = await client.query<{ queued: string }>(`SELECT count(*) AS queued FROM frontier WHERE crawl_id = $1 AND host = $2 AND state = 'queued'`, [crawlId, host]);
  return Number(rows[0].queued);
}

/** The crawl's final outcomes as the frontier records them (done = saved). */
export async function frontierCounts(client: Pool | PoolClient, crawlId: string, shard?: ShardRef): Promise<FrontierCounts> {
  const { rows } = await client.query<{ state: 'done' | 'failed' | 'skipped'; status: number | null; reason: string | null; n: string }>(
    `SELECT state, status, reason, count(*) AS n FROM frontier
      WHERE crawl_id = $1 AND state IN ('done', 'failed', 'skipped') AND ${inShard(2)}
      GROUP BY state, status, reason`,
    [crawlId, ...shardParams(shard)],
  );
  const counts: FrontierCounts = { saved: 0, failed: 0, skipped: 0, byStatus: {}, byReason: {} };
  for (const row of rows) {
    const n = Number(row.n);
    counts[row.state === 'done' ? 'saved' : row.state] += n;
    const status = row.status === null ? 'none' : String(row.status);
    counts.byStatus[status] = (counts.byStatus[status] ?? 0) + n;
    if (row.reason !== null && row.state !== 'done') counts.byReason[row.reason] = (counts.byReason[row.reason] ?? 0) + n;
  }
  return counts;
}

/**
 * Puts every lease of the crawl (or of one shard's hosts) back in the queue.
 * Only the workflow may ask for it, at a moment it knows no batch of the
 * crawl (of the shard) is running.
 */
export async function releaseLeases(pool: Pool, crawlId: string, shard?: ShardRef): Promise<number> {
  const { rowCount } = await pool.query(
    `UPDATE frontier SET state = 'queued', batch_id = NULL, leased_at = NULL, updated_at = now()
      WHERE crawl_id = $1 AND state = 'leased' AND ${inShard(2)}`,
    [crawlId, ...shardParams(shard)],
  );
  return rowCount ?? 0;
}

/**
 * The frontier of a sharded crawl per shard. Grouped by host first, so the
 * shard's hash is computed once per host, not once per row.
 */
export async function shardQueues(pool: Pool, crawlId: string, shards: number): Promise<Pick<ShardQueuesResult, 'shards' | 'hostsQueued'>> {
  const { rows } = await pool.query<{ shard: number; state: string; n: string; hosts: string }>(
    `SELECT tcrawl_host_shard(host, $2) AS shard, state, sum(n) AS n, count(*) AS hosts
       FROM (SELECT host, state, count(*) AS n FROM frontier WHERE crawl_id = $1 GROUP BY host, state) per_host
      GROUP BY 1, 2`,
    [crawlId, shards],
  );
  const result: Pick<ShardQueuesResult, 'shards' | 'hostsQueued'> = {
    shards: Array.from({ length: shards }, () => ({ queued: 0, leased: 0, saved: 0, failed: 0, skipped: 0 })),
    hostsQueued: 0,
  };
  for (const row of rows) {
    const shard = result.shards[row.shard];
    const n = Number(row.n);
    if (row.state === 'queued') {
      shard.queued += n;
      result.hostsQueued += Number(row.hosts);
    } else if (row.state === 'leased') shard.leased += n;
    else if (row.state === 'done') shard.saved += n;
    else if (row.state === 'failed' || row.state === 'skipped') shard[row.state] += n;
  }
  return result;
}

/** A condition on `host` that holds for the shard's hosts (always, unsharded): its parameters are $n and $n+1, {@link shardParams}. */
function inShard(n: number): string {
  return `($${n}::int IS NULL OR tcrawl_host_shard(host, $${n + 1}::int) = $${n})`;
}

function shardParams(shard: ShardRef | undefined): [number | null, number | null] {
  return shard ? [shard.index, shard.count] : [null, null];
}

/**
 * Gives back the leases of a batch that failed for good, each counted as an
 * attempt: queued again after a back-off, or failed with reason `internal`
 * once `maxRetries` is used up — so a URL that breaks every batch it is in
 * cannot stall its host. Returns how many went each way.
 */
export async function releaseFailedBatch(
  pool: Pool,
  crawlId: string,
  batchId: string,
  failure: { detail: string; maxRetries: number; retryBaseMs: number; retryMaxMs: number },
): Promise<{ requeued: number; failed: number }> {
  const { rows } = await pool.query<{ state: string; n: string }>(
    `WITH released AS (
       UPDATE frontier SET
         state = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'queued' END,
         reason = 'internal',
         detail = $4,
         attempts = attempts + 1,
         batch_id = CASE WHEN attempts >= $3 THEN batch_id ELSE NULL END,
         not_before = CASE WHEN attempts >= $3 THEN NULL
                           ELSE now() + make_interval(secs => least($6::double precision, $5 * power(2, attempts)) / 1000) END,
         updated_at = now()
        WHERE crawl_id = $1 AND batch_id = $2 AND state = 'leased'
        RETURNING state)
     SELECT state, count(*) AS n FROM released GROUP BY state`,
    [crawlId, batchId, failure.maxRetries, failure.detail, failure.retryBaseMs, failure.retryMaxMs],
  );
  const count = (state: string) => Number(rows.find((row) => row.state === state)?.n ?? 0);
  return { requeued: count('queued'), failed: count('failed') };
}

/** The crawl's failed URLs with one of the filter's reasons and statuses ($1 crawl, $2 reasons, $3 statuses; none = any). */
const failedMatching = `crawl_id = $1 AND state = 'failed' AND ($2::text[] IS NULL OR reason = ANY($2)) AND ($3::int[] IS NULL OR status = ANY($3))`;

function failedMatchingParams(crawlId: string, { reasons, statuses }: RequeueFilter): unknown[] {
  return [crawlId, reasons?.length ? reasons : null, statuses?.length ? statuses : null];
}

/** How many of the crawl's failed URLs {@link requeueFailedUrls} would put back in the queue now. */
export async function countFailedUrls(pool: Pool, crawlId: string, filter: RequeueFilter): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM frontier WHERE ${failedMatching}`, failedMatchingParams(crawlId, filter));
  return Number(rows[0].n);
}

export interface RequeuedUrls {
  /** URLs moved back to the queue. */
  requeued: number;
  /** host -> of them. */
  byHost: Record<string, number>;
  /** Their former status ('none' for none) and reason -> count: what the crawl's counters no longer count as failed. */
  byStatus: Record<string, number>;
  byReason: Record<string, number>;
}

/**
 * Puts the crawl's failed URLs back in the queue — all, or those with one of
 * `reasons` / `statuses` — with their attempts reset, to be fetched again as
 * if new. A retry of the same request finds them queued already and moves
 * nothing: what one call reports is what it moved.
 */
export async function requeueFailedUrls(pool: Pool, crawlId: string, filter: RequeueFilter): Promise<RequeuedUrls> {
  const { rows } = await pool.query<{ host: string; status: number | null; reason: string | null; n: string }>(
    `WITH picked AS (
       SELECT url, status, reason FROM frontier WHERE ${failedMatching} FOR UPDATE),
     moved AS (
       UPDATE frontier f SET state = 'queued', batch_id = NULL, leased_at = NULL, attempts = 0, not_before = NULL,
                             status = NULL, reason = NULL, detail = NULL, updated_at = now()
         FROM picked WHERE f.crawl_id = $1 AND f.url = picked.url
       RETURNING f.host, picked.status, picked.reason)
     SELECT host, status, reason, count(*) AS n FROM moved GROUP BY host, status, reason`,
    failedMatchingParams(crawlId, filter),
  );
  const result: RequeuedUrls = { requeued: 0, byHost: {}, byStatus: {}, byReason: {} };
  for (const row of rows) {
    const n = Number(row.n);
    result.requeued += n;
    const status = row.status === null ? 'none' : String(row.status);
    result.byHost[row.host] = (result.byHost[row.host] ?? 0) + n;
    result.byStatus[status] = (result.byStatus[status] ?? 0) + n;
    if (row.reason !== null) result.byReason[row.reason] = (result.byReason[row.reason] ?? 0) + n;
  }
  return result;
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
