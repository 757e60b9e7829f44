import { Pool } from 'pg';
import { DependencyError } from '../errors';

/**
 * The schema, as an ordered list of migrations. A migration is never edited
 * once released: add a new one. Each runs in the same transaction as the
 * bookkeeping row that records it.
 */
const migrations: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
      CREATE TABLE crawls (
        crawl_id   text PRIMARY KEY,
        spec       jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      -- The frontier and the seen set in one: a URL is seen once it has a row.
      -- state: queued -> leased (batch_id = lease owner) -> done | failed | skipped;
      -- a transient failure goes back to queued with not_before set.
      CREATE TABLE frontier (
        crawl_id   text NOT NULL,
        url        text NOT NULL,
        host       text NOT NULL,
        depth      integer NOT NULL,
        state      text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'leased', 'done', 'failed', 'skipped')),
        batch_id   text,
        leased_at  timestamptz,
        attempts   integer NOT NULL DEFAULT 0,
        not_before timestamptz,
        status     integer,
        reason     text,
        found_on   text,
        seq        bigserial,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (crawl_id, url)
      );
      CREATE INDEX frontier_queued ON frontier (crawl_id, host, seq) WHERE state = 'queued';
      CREATE INDEX frontier_batch ON frontier (crawl_id, batch_id) WHERE batch_id IS NOT NULL;

      CREATE TABLE pages (
        crawl_id     text NOT NULL,
        url          text NOT NULL,
        final_url    text NOT NULL,
        status       integer NOT NULL,
        content_type text,
        title        text,
        depth        integer NOT NULL,
        bytes        integer NOT NULL,
        links        integer NOT NULL,
        html         text,
        fetched_at   timestamptz NOT NULL,
        PRIMARY KEY (crawl_id, url)
      );

      CREATE TABLE items (
        crawl_id text NOT NULL,
        url      text NOT NULL,
        position integer NOT NULL,
        data     jsonb NOT NULL,
        PRIMARY KEY (crawl_id, url, position)
      );

      -- robots.txt as fetched once per origin per crawl (RFC 9309 §2.4 allows caching).
      CREATE TABLE robots (
        crawl_id   text NOT NULL,
        origin     text NOT NULL,
        status     integer NOT NULL,
        body       text NOT NULL,
        fetched_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (crawl_id, origin)
      );
    `,
  },
  {
    // Additions only: a worker of the previous release keeps working on this schema during a rolling deploy.
    version: 2,
    sql: `
      -- token: written by the crawl's first activity and carried in its workflow input, so a worker
      -- pointed at another database notices instead of working on the wrong data.
      ALTER TABLE crawls ADD COLUMN token text;
      ALTER TABLE crawls ADD COLUMN spec_version integer NOT NULL DEFAULT 1;
      -- detail: what a user needs beyond the reason (an internal error's code and message, a redirect's target).
      ALTER TABLE frontier ADD COLUMN detail text;
      -- redirects: hops that led to this URL (a redirect target is queued as a URL of its own).
      ALTER TABLE frontier ADD COLUMN redirects integer NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 3,
    sql: `
      -- request: how to make a request that is not a plain unlabelled GET (method, body, label, page);
      -- url is then its key, "METHOD URL sha256:<body digest>" (see src/rules/request.ts).
      ALTER TABLE frontier ADD COLUMN request jsonb;
      -- Every link followed, when the spec asks for the whole graph (links: all); from_url and to_url are request keys.
      CREATE TABLE links (
        crawl_id text NOT NULL,
        from_url text NOT NULL,
        to_url   text NOT NULL,
        PRIMARY KEY (crawl_id, from_url, to_url)
      );
    `,
  },
  {
    version: 4,
    sql: `
      -- Bumped by the workflow when a change must reach batches in flight (set-rate, pause, cancel, a
      -- continue-as-new): a batch granted at a lower count stops starting requests (since workflow v3).
      ALTER TABLE crawls ADD COLUMN steered_seq integer NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 5,
    sql: `
      -- The fleet-wide pacer of request starts per host, across crawls (activities/host-pacer.ts).
      -- last_start_at: the latest start handed out; wants: crawl_id -> {"ms": interval wanted, margin
      -- included, "until": when that want lapses}, lapsed ones dropped by every reservation.
      -- UNLOGGED: a reservation's commit waits for no WAL flush; after a Postgres crash the table comes
      -- back empty, which can shorten one gap per host.
      CREATE UNLOGGED TABLE host_pacer (
        host          text PRIMARY KEY,
        last_start_at timestamptz NOT NULL,
        wants         jsonb NOT NULL
      );
    `,
  },
  {
    version: 6,
    sql: `
      -- Response bodies kept for a crawl's outputs (src/output-spec.ts), once per crawl by SHA-256;
      -- pages.body_sha256 names a saved page's. A body no page names any more (the page fetched
      -- again with another body) is left until the crawl is deleted.
      CREATE TABLE bodies (
        crawl_id text NOT NULL,
        sha256   bytea NOT NULL,
        body     bytea NOT NULL,
        PRIMARY KEY (crawl_id, sha256)
      );
      ALTER TABLE pages ADD COLUMN body_sha256 bytea;
    `,
  },
  {
    version: 7,
    sql: `
      -- The health of each egress route (a proxy, a local source address: src/egress.ts), shared by every
      -- worker and crawl (activities/egress-health.ts). egress: the route's name, never with credentials.
      -- strikes: rests in a row without a good answer between them (the back-off's exponent);
      -- resting_until: no request goes through the route before it. requests, bans, failures: counted
      -- since the route was first used, by every crawl.
      CREATE TABLE egress_health (
        egress        text PRIMARY KEY,
        requests      bigint NOT NULL DEFAULT 0,
        bans          bigint NOT NULL DEFAULT 0,
        failures      bigint NOT NULL DEFAULT 0,
        strikes       integer NOT NULL DEFAULT 0,
        resting_until timestamptz,
        last_problem  text,
        updated_at    timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
  {
    version: 8,
    sql: `
      -- The shard of a host in a crawl split over child workflows (spec shards, src/shard.ts):
      -- md5's first 31 bits modulo the shard count, the same as shardOfHost.
      CREATE FUNCTION tcrawl_host_shard(host text, shards integer) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT (((('x' || substr(md5(host), 1, 8))::bit(32)::bigint) >> 1) % shards)::integer $$;
      -- Each shard's steering count, shard index -> count (as steered_seq for an unsharded crawl): each
      -- shard's workflow steers its own batches, which must not stop another shard's.
      ALTER TABLE crawls ADD COLUMN shard_steered_seq jsonb NOT NULL DEFAULT '{}';
    `,
  },
];

export function createPool(databaseUrl: string, max = 20): Pool {
  // A connection that cannot be had within 10 s is an unavailable database (retried), not a batch hung forever.
  const pool = new Pool({ connectionString: databaseUrl, max, connectionTimeoutMillis: 10_000 });
  // An idle client's error (the server restarted) must not crash the worker;
  // the next query fails and the activity is retried.
  pool.on('error', () => undefined);
  // Nor may a checked-out one's: pg emits 'error' on a client whose connection dies mid-transaction (the pool
  // listens on idle clients only), and unheard it is an uncaught exception. The query in flight rejects anyway.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Applies missing migrations. Safe to call from many processes at once. */
export async function migrate(pool: Pool): Promise<void> {
  const client = await pool.connect().catch((cause: unknown) => {
    throw new DependencyError('TCRAWL_POSTGRES_UNREACHABLE', `Cannot connect to Postgres: ${(cause as Error).message}. Check DATABASE_URL, or unset it to use the embedded Postgres.`, { cause });
  });
  try {
    await client.query('BEGIN');
    // Serialises concurrent starters; released at COMMIT.
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('tcrawl:migrations'))`);
    await client.query(`CREATE TABLE IF NOT EXISTS tcrawl_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM tcrawl_migrations');
    const applied = new Set(rows.map((row) => row.version));
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO tcrawl_migrations (version) VALUES ($1)', [migration.version]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
