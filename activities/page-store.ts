import { createHash } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { jsonForPg, withoutNul } from '../src/pg-text';
import type { Item } from '../src/rules/apply';
import { insertUrls, withTransaction, type NewUrl } from './frontier-store';

/** What fetching one leased URL came to, ready to be written. */
export type UrlResult =
  | {
      url: string;
      outcome: 'saved';
      status: number;
      finalUrl: string;
      contentType: string;
      title: string | null;
      depth: number;
      bytes: number;
      html: string | null;
      /** The body as received, kept (table `bodies`) when the crawl's outputs need it. */
      rawBody: Buffer | null;
      linkCount: number;
      /** In-scope links to add to the frontier. */
      newUrls: NewUrl[];
      /** With `links: all`: the keys of every request followed from here, seen before or not (table `links`). */
      edges?: string[];
      items: Item[];
      /** False when the rule says not to keep the response (`save: false`): its items and links are still kept. */
      savePage: boolean;
      fetchedAt: Date;
    }
  /** `detail`: what a user needs beyond the reason (an error's message, a redirect's target), stored in `frontier.detail`. */
  | { url: string; outcome: 'failed'; status: number | null; reason: string; detail?: string }
  /** `newUrls`: where a redirect pointed, queued as a URL of its own. */
  | { url: string; outcome: 'skipped'; status: number | null; reason: string; detail?: string; newUrls?: NewUrl[] }
  | { url: string; outcome: 'retried'; status: number | null; reason: string; detail?: string; notBefore: Date; retryAfterMs?: number };

/** `frontier.detail` is for people: an error message or a redirect target, not a dump. */
const maxDetailChars = 2000;

const frontierState = { saved: 'done', failed: 'failed', skipped: 'skipped', retried: 'queued' } as const;

/**
 * Writes a group of results of one batch in one transaction: pages and items
 * upserted, new links inserted, and the leased frontier rows moved on. Running
 * it twice leaves the same rows: the frontier update only touches rows still
 * leased to this batch. Returns host -> newly queued URLs.
 */
export async function saveResults(pool: Pool, crawlId: string, batchId: string, results: UrlResult[]): Promise<Record<string, number>> {
  if (results.length === 0) return {};
  return withTransaction(pool, async (client) => {
    const saved = results.filter((r): r is Extract<UrlResult, { outcome: 'saved' }> => r.outcome === 'saved');
    const pages = saved.filter((r) => r.savePage);
    const digests = pages.map((p) => (p.rawBody === null ? null : digestOf(p.rawBody)));
    await insertBodies(client, crawlId, pages, digests);
    await upsertPages(client, crawlId, pages, digests);
    await replaceItems(client, crawlId, saved);
    await insertEdges(client, crawlId, saved);
    const discovered = await insertUrls(client, crawlId, results.flatMap((r) => ('newUrls' in r ? (r.newUrls ?? []) : [])));
    await advanceFrontier(client, crawlId, batchId, results);
    return discovered;
  });
}

/** The SHA-256 of a kept body: its key in `bodies`, and `pages.body_sha256`. */
function digestOf(body: Buffer): Buffer {
  return createHash('sha256').update(body).digest();
}

/**
 * Keeps each body once per crawl, by digest (`digests[i]` is `pages[i]`'s): a batch run twice, or two pages
 * with one body, add no second copy. Sorted, like frontier inserts, so
 * concurrent batches take index locks in one order.
 */
async function insertBodies(client: PoolClient, crawlId: string, pages: Array<Extract<UrlResult, { outcome: 'saved' }>>, digests: Array<Buffer | null>): Promise<void> {
  const bodies = new Map<string, Buffer>();
  pages.forEach((page, i) => {
    if (page.rawBody !== null) bodies.set(digests[i]!.toString('hex'), page.rawBody);
  });
  if (bodies.size === 0) return;
  const sorted = [...bodies.keys()].sort();
  await client.query(
    `INSERT INTO bodies (crawl_id, sha256, body)
     SELECT $1, b.sha256, b.body FROM unnest($2::bytea[], $3::bytea[]) AS b(sha256, body)
     ON CONFLICT DO NOTHING`,
    [crawlId, sorted.map((hex) => Buffer.from(hex, 'hex')), sorted.map((hex) => bodies.get(hex)!)],
  );
}

/** `digests[i]`: the SHA-256 of `pages[i]`'s kept body, or null. */
async function upsertPages(client: PoolClient, crawlId: string, pages: Array<Extract<UrlResult, { outcome: 'saved' }>>, digests: Array<Buffer | null>): Promise<void> {
  if (pages.length === 0) return;
  await client.query(
    `INSERT INTO pages (crawl_id, url, final_url, status, content_type, title, depth, bytes, links, html, fetched_at, body_sha256)
     SELECT $1, p.* FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::int[], $8::int[], $9::int[], $10::text[], $11::timestamptz[], $12::bytea[])
       AS p(url, final_url, status, content_type, title, depth, bytes, links, html, fetched_at, body_sha256)
     ON CONFLICT (crawl_id, url) DO UPDATE SET
       final_url = EXCLUDED.final_url, status = EXCLUDED.status, content_type = EXCLUDED.content_type,
       title = EXCLUDED.title, depth = EXCLUDED.depth, bytes = EXCLUDED.bytes, links = EXCLUDED.links,
       html = EXCLUDED.html, fetched_at = EXCLUDED.fetched_at, body_sha256 = EXCLUDED.body_sha256`,
    [
      crawlId,
      pages.map((p) => p.url),
      pages.map((p) => p.finalUrl),
      pages.map((p) => p.status),
      pages.map((p) => withoutNul(p.contentType)),
      pages.map((p) => (p.title === null ? null : withoutNul(p.title))),
      pages.map((p) => p.depth),
      pages.map((p) => p.bytes),
      pages.map((p) => p.linkCount),
      pages.map((p) => (p.html === null ? null : withoutNul(p.html))),
      pages.map((p) => p.fetchedAt),
      digests,
    ],
  );
}

async function replaceItems(client: PoolClient, crawlId: string, pages: Array<Extract<UrlResult, { outcome: 'saved' }>>): Promise<void> {
  const withItems = pages.filter((p) => p.items.length > 0);
  if (withItems.length === 0) return;
  // A page fetched again may yield fewer items: replace its set, don't merge.
  await client.query(`DELETE FROM items WHERE crawl_id = $1 AND url = ANY($2::text[])`, [crawlId, withItems.map((p) => p.url)]);
  const rows = withItems.flatMap((p) => p.items.map((data, position) => ({ url: p.url, position, data: jsonForPg(data) })));
  await client.query(
    `INSERT INTO items (crawl_id, url, position, data)
     SELECT $1, i.url, i.position, i.data::jsonb FROM unnest($2::text[], $3::int[], $4::text[]) AS i(url, position, data)`,
    [crawlId, rows.map((r) => r.url), rows.map((r) => r.position), rows.map((r) => r.data)],
  );
}

async function insertEdges(client: PoolClient, crawlId: string, pages: Array<Extract<UrlResult, { outcome: 'saved' }>>): Promise<void> {
  const edges = pages.flatMap((p) => (p.edges ?? []).map((to) => [p.url, to] as const));
  if (edges.length === 0) return;
  // Sorted, like frontier inserts, so concurrent batches take index locks in one order.
  edges.sort(([fromA, toA], [fromB, toB]) => (fromA === fromB ? (toA < toB ? -1 : 1) : fromA < fromB ? -1 : 1));
  await client.query(
    `INSERT INTO links (crawl_id, from_url, to_url)
     SELECT $1, e.from_url, e.to_url FROM unnest($2::text[], $3::text[]) AS e(from_url, to_url)
     ON CONFLICT DO NOTHING`,
    [crawlId, edges.map(([from]) => from), edges.map(([, to]) => to)],
  );
}

async function advanceFrontier(client: PoolClient, crawlId: string, batchId: string, results: UrlResult[]): Promise<void> {
  await client.query(
    `UPDATE frontier f SET
        state = u.state,
        status = u.status,
        reason = u.reason,
        not_before = u.not_before,
        detail = u.detail,
        attempts = f.attempts + CASE WHEN u.state = 'queued' THEN 1 ELSE 0 END,
        batch_id = CASE WHEN u.state = 'queued' THEN NULL ELSE f.batch_id END,
        updated_at = now()
       FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::timestamptz[], $8::text[]) AS u(url, state, status, reason, not_before, detail)
      WHERE f.crawl_id = $1 AND f.url = u.url AND f.batch_id = $2 AND f.state = 'leased'`,
    [
      crawlId,
      batchId,
      results.map((r) => r.url),
      results.map((r) => frontierState[r.outcome]),
      results.map((r) => r.status),
      results.map((r) => (r.outcome === 'saved' ? null : r.reason)),
      results.map((r) => (r.outcome === 'retried' ? r.notBefore : null)),
      results.map((r) => (r.outcome === 'saved' ? null : withoutNul((r.detail ?? '').slice(0, maxDetailChars)) || null)),
    ],
  );
}
