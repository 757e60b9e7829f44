/**
 * The non-durable baseline from DESIGN.md ("What peers get wrong"): an
 * in-memory breadth-first queue and seen set, undici over a keep-alive pool,
 * cheerio for links, pages saved to Postgres in batches. No leases, no retries,
 * no politeness: the fastest honest loop, to measure tcrawl against.
 *
 * As a script:
 *   tsx bench/bare-loop.ts --seed http://127.0.0.1:PORT/p/0 --pages 20000 [--concurrency 64]
 * Without `--seed` it starts bench/site.ts in a child process (its own core) and
 * crawls that. Uses DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres.
 */
import { parseArgs } from 'node:util';
import * as cheerio from 'cheerio';
import { Pool } from 'pg';
import { Agent, request } from 'undici';
import { spawnBenchSite } from './site';

export interface BareLoopOptions {
  /** Absolute URL to start from; only links on its origin are followed. */
  seed: string;
  /** A postgres:// URL; the loop (re)creates and truncates table `bare_pages` there. */
  databaseUrl: string;
  /** Requests in flight. @default 64 */
  concurrency?: number;
  /** Stop discovering URLs once this many are known; the loop ends when they are all fetched. */
  maxPages: number;
  /** Rows per INSERT. @default 500 */
  batchSize?: number;
}

export interface BareLoopResult {
  /** Pages saved (fetched with any HTTP status; network errors are not counted). */
  pages: number;
  /** Wall time from the first request until the last batch was committed. */
  seconds: number;
  pagesPerSecond: number;
}

export interface Row {
  url: string;
  status: number;
  title: string | null;
  fetchedAt: Date;
}

/**
 * A table of pages as a baseline saves them (the bare loop, Crawlee): url, status, title, fetch time,
 * (re)created empty. One statement, one plan per table: arrays unnest into rows, so the SQL text never
 * depends on the batch size.
 */
export async function createPageTable(db: Pool, table: string): Promise<{ name: string; text: string }> {
  await db.query(`CREATE TABLE IF NOT EXISTS ${table} (url text PRIMARY KEY, status int, title text, fetched_at timestamptz)`);
  await db.query(`TRUNCATE ${table}`);
  return {
    name: `${table}_insert`,
    text: `INSERT INTO ${table} (url, status, title, fetched_at)
           SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::timestamptz[])
           ON CONFLICT DO NOTHING`,
  };
}

export async function runBareLoop(opts: BareLoopOptions): Promise<BareLoopResult> {
  const db = new Pool({ connectionString: opts.databaseUrl, max: 4 });
  const agent = new Agent({ connections: opts.concurrency ?? 64, keepAliveTimeout: 30_000 });
  try {
    const writer = new BatchWriter(db, await createPageTable(db, 'bare_pages'), opts.batchSize ?? 500);
    const started = performance.now();
    await crawl(opts, agent, writer);
    await writer.close();
    const seconds = (performance.now() - started) / 1000;
    return { pages: writer.written, seconds, pagesPerSecond: writer.written / seconds };
  } finally {
    await agent.close();
    await db.end();
  }
}

/** Breadth-first over the seed's origin with `concurrency` fetches in flight. */
function crawl(opts: BareLoopOptions, agent: Agent, writer: BatchWriter): Promise<void> {
  const seed = new URL(opts.seed);
  seed.hash = '';
  const queue = [seed.href];
  const seen = new Set(queue);
  const limit = opts.concurrency ?? 64;
  let head = 0;
  let active = 0;

  const discover = (links: string[]) => {
    for (const url of links) {
      if (seen.size >= opts.maxPages || seen.has(url)) continue;
      seen.add(url);
      queue.push(url);
    }
  };
  return new Promise((resolve, reject) => {
    const pump = () => {
      while (active < limit && head < queue.length) {
        const url = queue[head++]!;
        active++;
        fetchPage(url, seed.origin, agent)
          .then((page) => {
            if (page) {
              writer.add(page.row);
              discover(page.links);
            }
            active--;
            pump();
          })
          .catch(reject);
      }
      if (active === 0) resolve();
    };
    pump();
  });
}

/** Fetches one URL; undefined on a network error (the baseline does not retry). */
async function fetchPage(url: string, origin: string, agent: Agent): Promise<{ row: Row; links: string[] } | undefined> {
  let res;
  try {
    res = await request(url, { dispatcher: agent, headers: { 'user-agent': 'tcrawl-bare-loop' } });
  } catch {
    return undefined;
  }
  const fetchedAt = new Date();
  const isHtml = /^text\/html\b/.test(String(res.headers['content-type'] ?? ''));
  if (!isHtml) {
    await res.body.dump();
    return { row: { url, status: res.statusCode, title: null, fetchedAt }, links: [] };
  }
  const $ = cheerio.load(await res.body.text());
  const title = $('title').first().text().trim() || null;
  return { row: { url, status: res.statusCode, title, fetchedAt }, links: sameOriginLinks($, url, origin) };
}

/** Absolute, fragment-free http(s) links on `origin`. */
function sameOriginLinks($: cheerio.CheerioAPI, base: string, origin: string): string[] {
  const out: string[] = [];
  $('a[href]').each((_, el) => {
    const href = $(el).attr('href');
    if (!href) return;
    const url = URL.parse(href, base);
    if (!url || url.origin !== origin) return;
    url.hash = '';
    out.push(url.href);
  });
  return out;
}

/**
 * Buffers rows and writes them `batchSize` at a time, at most two INSERTs in
 * flight, so fetching never waits on the database unless it falls behind.
 */
export class BatchWriter {
  written = 0;
  private rows: Row[] = [];
  private inFlight = new Set<Promise<void>>();
  private failure: unknown;

  constructor(
    private readonly db: Pool,
    private readonly insertStatement: { name: string; text: string },
    private readonly batchSize: number,
  ) {}

  add(row: Row): void {
    this.rows.push(row);
    if (this.rows.length >= this.batchSize && this.inFlight.size < 2) this.flush();
  }

  async close(): Promise<void> {
    while (this.rows.length > 0 || this.inFlight.size > 0) {
      if (this.rows.length > 0) this.flush();
      await Promise.race(this.inFlight);
    }
    if (this.failure) throw this.failure;
  }

  private flush(): void {
    const batch = this.rows.splice(0, this.rows.length);
    const p = this.insert(batch)
      .catch((err: unknown) => void (this.failure ??= err))
      .finally(() => {
        this.inFlight.delete(p);
        if (this.rows.length >= this.batchSize) this.flush();
      });
    this.inFlight.add(p);
  }

  private async insert(batch: Row[]): Promise<void> {
    await this.db.query({
      ...this.insertStatement,
      values: [batch.map((r) => r.url), batch.map((r) => r.status), batch.map((r) => r.title), batch.map((r) => r.fetchedAt)],
    });
    this.written += batch.length;
  }
}

// --- script ------------------------------------------------------------------

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      pages: { type: 'string', default: '20000' },
      concurrency: { type: 'string', default: '64' },
      'batch-size': { type: 'string', default: '500' },
    },
  });
  const maxPages = Number(values.pages);
  const site = values.seed ? undefined : await spawnBenchSite(maxPages);
  try {
    const result = await runBareLoop({
      seed: values.seed ?? `${site!.origin}/p/0`,
      databaseUrl: process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres',
      concurrency: Number(values.concurrency),
      maxPages,
      batchSize: Number(values['batch-size']),
    });
    console.log(JSON.stringify({ ...result, concurrency: Number(values.concurrency) }));
  } finally {
    site?.child.kill();
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
