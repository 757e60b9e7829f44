import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * The custom search attributes each crawl's workflow carries, so the Web UI's
 * list and filter box (and `tcrawl list`) show what a crawl is doing:
 * `TcrawlPhase = "crawling"`, `TcrawlSaved > 1000`, `TcrawlSeedHost = "example.com"`.
 *
 * Chosen within SQL visibility's limits (SQLite on the dev server, Postgres
 * or MySQL elsewhere), which cap custom attributes per type per namespace:
 * the dev server of Temporal CLI 1.5.1 refuses a fourth Int ("cannot have
 * more than 3 search attribute of type Int"). tcrawl uses 3 Int and 3 Keyword;
 * Keyword has room for a user's own. Registered on the local dev server when tcrawl starts it, and
 * by `tcrawl setup` on any other server.
 */
export const crawlSearchAttributes = {
  /** The crawl id (the workflow id is `crawl-<id>`). */
  crawlId: defineSearchAttributeKey('TcrawlCrawlId', SearchAttributeType.KEYWORD),
  /** `seeding`, `crawling`, `paused`, `draining`, `cancelling`, `cancelled`, `finished`. */
  phase: defineSearchAttributeKey('TcrawlPhase', SearchAttributeType.KEYWORD),
  /** The first seed's host[:port]. */
  seedHost: defineSearchAttributeKey('TcrawlSeedHost', SearchAttributeType.KEYWORD),
  /** URLs saved so far. */
  saved: defineSearchAttributeKey('TcrawlSaved', SearchAttributeType.INT),
  /** URLs queued and not yet leased. */
  queued: defineSearchAttributeKey('TcrawlQueued', SearchAttributeType.INT),
  /** URLs failed for good. */
  failed: defineSearchAttributeKey('TcrawlFailed', SearchAttributeType.INT),
} as const;

/** Name -> type, as `temporal operator search-attribute create` and the operator API take them. */
export const searchAttributeTypes: Record<string, SearchAttributeType> = Object.fromEntries(
  Object.values(crawlSearchAttributes).map((key) => [key.name, key.type]),
);
