import { ApplicationFailure } from '@temporalio/activity';
import type { Pool, PoolClient } from 'pg';
import type { CrawlRef, CrawlSettings, ShardRef } from '../src/crawl-types';
import { activityFailureCodes } from '../workflows/failure-codes';
import { compileRules, type CompiledRules } from '../src/rules/compile';
import { scopeRulesFor, type ScopeRules } from '../src/scope';
import { crawlSpecSchema, type CrawlSpec } from '../src/spec';

/**
 * The `crawls` table: one row per crawl, its spec (the one source of truth
 * for its settings) and its token. Every activity checks the token before it
 * touches the crawl's rows, so a worker pointed at another database fails
 * loudly instead of working on data that is not the crawl's.
 */

export interface LoadedCrawl {
  settings: CrawlSettings;
  scope: ScopeRules;
  /** The spec's rules, compiled once per process. */
  rules: CompiledRules;
}

/**
 * A spec (or its settings) as an earlier or a neighbouring release stored or
 * sent it: validated at the edge then, parsed again here for the defaults of
 * keys added since; keys this release does not know (from a newer one,
 * mid-deploy) are dropped rather than refused.
 */
const storedSpecSchema = crawlSpecSchema.strip();
const settingsSchema = storedSpecSchema.omit({ seeds: true });

/**
 * A crawl as its row holds it, for a client starting a new execution of it
 * (resume after a cancel, retry-failed after it finished); null if none.
 */
export async function storedCrawl(pool: Pool, crawlId: string): Promise<{ crawlId: string; token: string | undefined; spec: CrawlSpec } | null> {
  const { rows } = await pool.query<{ spec: unknown; token: string | null }>('SELECT spec, token FROM crawls WHERE crawl_id = $1', [crawlId]);
  if (!rows[0]) return null;
  return { crawlId, token: rows[0].token ?? undefined, spec: storedSpecSchema.parse(rows[0].spec) };
}

/** Loaded specs per process: a spec never changes under one (crawl, token, specVersion). */
const maxCachedSpecs = 1000;

export class CrawlStore {
  private readonly specs = new Map<string, Promise<LoadedCrawl>>();
  private database: Promise<string> | undefined;

  constructor(private readonly pool: Pool) {}

  /**
   * Records the crawl with its spec and token; a retry (or a reset of the
   * workflow) with the same token is a no-op. Another crawl of the same id
   * in this database is refused: a crawl id names one crawl.
   */
  async register(client: PoolClient, ref: CrawlRef, spec: unknown): Promise<void> {
    const { rows } = await client.query<{ token: string | null; created_at: Date }>(
      `INSERT INTO crawls (crawl_id, spec, token) VALUES ($1, $2, $3)
       ON CONFLICT (crawl_id) DO UPDATE SET token = EXCLUDED.token WHERE crawls.token IS NULL
       RETURNING token, created_at`,
      [ref.crawlId, JSON.stringify(spec), ref.token ?? null],
    );
    if (rows.length > 0 || ref.token === undefined) return;
    const existing = await client.query<{ token: string | null; created_at: Date }>('SELECT token, created_at FROM crawls WHERE crawl_id = $1', [ref.crawlId]);
    const row = existing.rows[0];
    if (row && row.token !== ref.token) {
      throw ApplicationFailure.nonRetryable(
        `Crawl id "${ref.crawlId}" already names another crawl in database ${await this.describeDatabase()} (created ${row.created_at.toISOString()}). ` +
          `Start this one with a new --id, or re-run that crawl's failed URLs with \`tcrawl retry-failed ${ref.crawlId}\`.`,
        activityFailureCodes.crawlExists,
      );
    }
  }

  /**
   * The crawl's settings and scope, after checking that this database holds
   * this crawl. Crawls started before tokens existed (no `token`) use the
   * settings their request carries, with the defaults of keys added since.
   */
  async load(ref: CrawlRef, carried?: { settings?: CrawlSettings; scope?: ScopeRules }): Promise<LoadedCrawl> {
    if (ref.token === undefined) {
      if (!carried?.settings || !carried.scope) throw new Error(`Crawl ${ref.crawlId}: the request has neither a token nor settings`);
      const settings = settingsSchema.parse(carried.settings);
      return { settings, scope: carried.scope, rules: compileRules(settings) };
    }
    const key = `${ref.crawlId}\n${ref.token}\n${ref.specVersion ?? 1}`;
    let loaded = this.specs.get(key);
    if (!loaded) {
      if (this.specs.size >= maxCachedSpecs) this.specs.delete(this.specs.keys().next().value as string);
      loaded = this.fetch(ref);
      this.specs.set(key, loaded);
      loaded.catch(() => this.specs.delete(key));
    }
    return loaded;
  }

  private async fetch(ref: CrawlRef): Promise<LoadedCrawl> {
    // A crawl seeded by a release before tokens has none: the first request that carries one (the same
    // crawl, its workflow now replayed by this release) adopts it, as registering would have.
    const { rows } = await this.pool.query<{ spec: unknown; token: string | null }>(
      `WITH adopted AS (UPDATE crawls SET token = $2 WHERE crawl_id = $1 AND token IS NULL RETURNING spec, token)
       SELECT spec, token FROM adopted UNION ALL SELECT spec, token FROM crawls WHERE crawl_id = $1 AND token IS NOT NULL`,
      [ref.crawlId, ref.token],
    );
    const row = rows[0];
    if (!row) {
      throw ApplicationFailure.nonRetryable(
        `Crawl "${ref.crawlId}" is not in this worker's database ${await this.describeDatabase()}; it was started in ${ref.database ?? 'another database'}. ` +
          'Every worker of a task queue must use the same DATABASE_URL.',
        activityFailureCodes.wrongDatabase,
      );
    }
    if (row.token !== ref.token) {
      throw ApplicationFailure.nonRetryable(
        `Database ${await this.describeDatabase()} holds another crawl named "${ref.crawlId}" (its token differs); this crawl was started in ${ref.database ?? 'another database'}. ` +
          'Every worker of a task queue must use the same DATABASE_URL.',
        activityFailureCodes.wrongDatabase,
      );
    }
    const { seeds, ...settings } = storedSpecSchema.parse(row.spec);
    return { settings, scope: scopeRulesFor({ ...settings, seeds }), rules: compileRules(settings) };
  }

  /** The crawl's (or its shard's) steering count: a windowed batch granted at a lower one stops starting requests. */
  async steeredSeq(crawlId: string, shard?: ShardRef): Promise<number> {
    const { rows } = shard
      ? await this.pool.query<{ steered_seq: number | null }>(`SELECT (shard_steered_seq->>$2::text)::int AS steered_seq FROM crawls WHERE crawl_id = $1`, [crawlId, shard.index])
      : await this.pool.query<{ steered_seq: number }>('SELECT steered_seq FROM crawls WHERE crawl_id = $1', [crawlId]);
    return rows[0]?.steered_seq ?? 0;
  }

  /** Raises the steering count; never lowers it (a retried, older write changes nothing). Returns the count now stored. */
  async markSteered(crawlId: string, seq: number, shard?: ShardRef): Promise<number> {
    const { rows } = shard
      ? await this.pool.query<{ steered_seq: number }>(
          `UPDATE crawls SET shard_steered_seq = shard_steered_seq || jsonb_build_object($2::text, greatest((shard_steered_seq->>$2::text)::int, $3::int))
            WHERE crawl_id = $1
           RETURNING (shard_steered_seq->>$2::text)::int AS steered_seq`,
          [crawlId, shard.index, seq],
        )
      : await this.pool.query<{ steered_seq: number }>('UPDATE crawls SET steered_seq = greatest(steered_seq, $2) WHERE crawl_id = $1 RETURNING steered_seq', [crawlId, seq]);
    return rows[0]?.steered_seq ?? seq;
  }

  /** `database@address:port` as the server sees itself: what a user compares with their DATABASE_URLs. */
  describeDatabase(): Promise<string> {
    this.database ??= this.pool
      .query<{ db: string; addr: string | null; port: number | null }>('SELECT current_database() AS db, inet_server_addr()::text AS addr, inet_server_port() AS port')
      .then(({ rows: [row] }) => `${row.db}@${row.addr === null ? 'local socket' : `${row.addr.replace(/\/\d+$/, '')}:${row.port}`}`);
    this.database.catch(() => (this.database = undefined));
    return this.database;
  }
}
