/**
 * `npm run bench:scale`: one crawl of a large synthetic site (bench/site.ts,
 * served by a process of its own) to its end, by `tcrawl worker` processes,
 * and whether it stays flat and small as it grows. Prints:
 *
 * - pages/s in each slice of `--slice` pages (by `pages.fetched_at`), and the
 *   last slice's rate against the first's;
 * - each worker's RSS, sampled every second: the most, and the most in each slice;
 * - every workflow run's history (the crawl continues as new): runs, events,
 *   and the largest run's bytes;
 * - the Postgres tables the crawl grew (table and index bytes, from
 *   `pg_table_size` / `pg_indexes_size` before and after) and bytes per page.
 *
 *   npm run bench:scale -- [--pages 1000000] [--workers 1] [--worker-concurrency 32] [--concurrency 64] [--batch-size 100] [--slice 100000] [--time-limit-min 0]
 *
 * With `--time-limit-min M` the crawl is cancelled after M minutes if it has
 * not ended (a shared machine may not get to the end in time), and the same
 * figures are printed for the pages it saved, marked as stopped.
 *
 * Services: TEMPORAL_ADDRESS / DATABASE_URL when set, else the local dev
 * server and embedded Postgres (stopped at the end if this started them).
 * The table sizes are growth, so on a database other crawls write to at the
 * same time they are not this crawl's alone. RSS is read from /proc (Linux).
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { temporal } from '@temporalio/proto';
import type { Pool } from 'pg';
import { cancelCrawl, startCrawl, workflowIdFor } from '../src/client';
import { runtimeConfig } from '../src/config';
import { ensureServices } from '../src/services';
import { parseCrawlSpec } from '../src/spec';
import { defaultMaxConcurrentBatches } from '../src/worker';
import { openStack, type TestStack } from '../test/helpers/stack';
import { kill, spawnWorkers, waitForPollers } from '../test/helpers/worker-processes';
import { runMain } from './run-main';
import { spawnBenchSite } from './site';

const log = (line: string) => process.stderr.write(`${line}\n`);
const MiB = 1024 * 1024;

interface Options {
  pages: number;
  workers: number;
  workerConcurrency: number;
  concurrency: number;
  batchSize: number;
  slice: number;
  /** 0: none. */
  timeLimitMin: number;
}

/** The tables a crawl writes to. */
const crawlTables = ['frontier', 'pages', 'items', 'links', 'bodies', 'robots', 'crawls'] as const;

interface TableSize {
  table: string;
  /** Heap, TOAST and free-space map: `pg_table_size`. */
  tableBytes: number;
  indexBytes: number;
}

async function tableSizes(pool: Pool): Promise<TableSize[]> {
  const { rows } = await pool.query<{ table: string; table_bytes: string; index_bytes: string }>(
    `SELECT t AS table, pg_table_size(t::regclass) AS table_bytes, pg_indexes_size(t::regclass) AS index_bytes FROM unnest($1::text[]) t`,
    [crawlTables],
  );
  return rows.map((r) => ({ table: r.table, tableBytes: Number(r.table_bytes), indexBytes: Number(r.index_bytes) }));
}

function growth(before: TableSize[], after: TableSize[]): TableSize[] {
  return after
    .map((a) => {
      const b = before.find((s) => s.table === a.table)!;
      return { table: a.table, tableBytes: a.tableBytes - b.tableBytes, indexBytes: a.indexBytes - b.indexBytes };
    })
    .filter((s) => s.tableBytes + s.indexBytes > 0);
}

/** Each worker process's resident set, read from /proc every second while the crawl runs. */
class RssSampler {
  /** [ms since the epoch, RSS bytes summed over the workers], one per second. */
  readonly samples: Array<[number, number]> = [];
  readonly maxBytes: number[];
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly procs: ChildProcess[]) {
    this.maxBytes = procs.map(() => 0);
    this.timer = setInterval(() => this.sample(), 1000);
    this.sample();
  }

  /** The latest sample's RSS per worker. */
  current(): number[] {
    return this.procs.map(rssOf);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The most RSS any one worker had between two times. */
  maxBetween(fromMs: number, toMs: number): number {
    return this.samples.filter(([at]) => at >= fromMs && at <= toMs).reduce((most, [, bytes]) => Math.max(most, bytes), 0);
  }

  private sample(): void {
    const rss = this.current();
    rss.forEach((bytes, i) => (this.maxBytes[i] = Math.max(this.maxBytes[i]!, bytes)));
    this.samples.push([Date.now(), Math.max(...rss)]);
  }
}

/** VmRSS of a running process, bytes (0 once it has exited). */
function rssOf(proc: ChildProcess): number {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
    return kb ? Number(kb[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Slice {
  /** Pages saved before the slice and at its end. */
  from: number;
  to: number;
  /** When the slice's first page and its last were fetched, ms since the epoch. */
  startMs: number;
  endMs: number;
  pagesPerSec: number;
  /** The most RSS any worker had while the slice was crawled. */
  maxRssBytes: number;
}

/**
 * The crawl's pages in order of fetching, cut every `slice` pages: a slice's
 * rate is its pages over the time from the previous slice's last page to its
 * own last (the first slice: from its first page).
 */
async function slices(pool: Pool, crawlId: string, slice: number, rss: RssSampler): Promise<Slice[]> {
  const { rows } = await pool.query<{ n: string; at_ms: string }>(
    `SELECT n, extract(epoch FROM fetched_at) * 1000 AS at_ms
       FROM (SELECT fetched_at, row_number() OVER (ORDER BY fetched_at) AS n, count(*) OVER () AS total FROM pages WHERE crawl_id = $1) p
      WHERE n = 1 OR n % $2 = 0 OR n = total
      ORDER BY n`,
    [crawlId, slice],
  );
  const marks = rows.map((r) => ({ n: Number(r.n), atMs: Number(r.at_ms) }));
  const out: Slice[] = [];
  for (let i = 1; i < marks.length; i++) {
    const from = i === 1 ? 0 : marks[i - 1]!.n;
    const to = marks[i]!.n;
    const startMs = marks[i - 1]!.atMs;
    const endMs = marks[i]!.atMs;
    const counted = i === 1 ? to - 1 : to - from;
    out.push({ from, to, startMs, endMs, pagesPerSec: (counted * 1000) / Math.max(1, endMs - startMs), maxRssBytes: rss.maxBetween(startMs, endMs) });
  }
  return out;
}

interface Histories {
  runs: number;
  events: number;
  largestRunBytes: number;
  /** Every run's history bytes, in the order the runs started. */
  runBytes: number[];
}

/** Every run of the crawl's workflow, as Temporal's visibility lists them (history length and bytes of each). */
async function histories(stack: TestStack, crawlId: string): Promise<Histories> {
  const runs: Array<{ startMs: number; bytes: number; events: number }> = [];
  for await (const execution of stack.client.workflow.list({ query: `WorkflowId = "${workflowIdFor(crawlId)}"` })) {
    // A history's size is recorded with each workflow task; a server too old to record it gets the history fetched.
    const bytes = execution.historySize ?? temporal.api.history.v1.History.encode(await stack.client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory()).finish().length;
    runs.push({ startMs: execution.startTime.getTime(), bytes, events: execution.historyLength });
  }
  runs.sort((a, b) => a.startMs - b.startMs);
  return {
    runs: runs.length,
    events: runs.reduce((sum, r) => sum + r.events, 0),
    largestRunBytes: Math.max(...runs.map((r) => r.bytes)),
    runBytes: runs.map((r) => r.bytes),
  };
}

interface ScaleFigures {
  pages: number;
  /** Cancelled at the time limit before its end. */
  stopped: boolean;
  seconds: number;
  pagesPerSec: number;
  slices: Slice[];
  /** The last slice of `--slice` pages (a crawl's end may leave a shorter one after it): the one compared with the first. */
  lastFullSlice: Slice;
  lastToFirst: number;
  maxRssBytes: number[];
  histories: Histories;
  sizes: TableSize[];
  bytesPerPage: number;
  load: string;
}

async function runScale(stack: TestStack, opts: Options): Promise<ScaleFigures> {
  const site = await spawnBenchSite(opts.pages);
  const taskQueue = `bench-scale-${process.pid}-${Date.now()}`;
  const crawlId = taskQueue;
  const workers = spawnWorkers(stack, taskQueue, opts.workers, { concurrency: opts.workerConcurrency });
  try {
    await waitForPollers(stack, taskQueue, workers);
    const before = await tableSizes(stack.pool);
    const spec = parseCrawlSpec({ seeds: [`${site.origin}/p/0`], maxPages: opts.pages, maxDepth: 1000, rate: 0, concurrency: opts.concurrency, batchSize: opts.batchSize, allowPrivate: true });
    log(`Bench site: ${opts.pages} pages at ${site.origin}; ${opts.workers} worker process(es), ${opts.workerConcurrency} batches each, concurrency ${opts.concurrency}, batches of ${opts.batchSize}…`);
    const rss = new RssSampler(workers);
    const started = Date.now();
    const progress = setInterval(() => void logProgress(stack.pool, crawlId, started, rss), 30_000);
    let stopped = false;
    try {
      stopped = await crawlWithin(stack, crawlId, await startCrawl(stack.client, taskQueue, crawlId, spec), opts.timeLimitMin);
    } finally {
      clearInterval(progress);
      rss.stop();
    }
    const seconds = (Date.now() - started) / 1000;
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const { rows } = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1', [crawlId]);
    const pages = rows[0]!.n;
    const cut = await slices(stack.pool, crawlId, opts.slice, rss);
    const sizes = growth(before, await tableSizes(stack.pool));
    const full = cut.filter((s) => s.to - s.from === opts.slice);
    const lastFull = full[full.length - 1] ?? cut[cut.length - 1]!;
    return {
      pages,
      stopped,
      seconds,
      pagesPerSec: pages / seconds,
      slices: cut,
      lastFullSlice: lastFull,
      lastToFirst: lastFull.pagesPerSec / cut[0]!.pagesPerSec,
      maxRssBytes: rss.maxBytes,
      histories: await histories(stack, crawlId),
      sizes,
      bytesPerPage: sizes.reduce((sum, s) => sum + s.tableBytes + s.indexBytes, 0) / Math.max(1, pages),
      load,
    };
  } finally {
    await Promise.all(workers.map(kill));
    site.child.kill();
  }
}

/** Waits for the crawl's end, or cancels it at the time limit: whether it was stopped there. */
async function crawlWithin(stack: TestStack, crawlId: string, handle: { result(): Promise<unknown> }, timeLimitMin: number): Promise<boolean> {
  const ended = handle.result().then(() => false);
  if (timeLimitMin === 0) return ended;
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<true>((resolve) => (timer = setTimeout(() => resolve(true), timeLimitMin * 60_000)));
  try {
    if (!(await Promise.race([ended, limit]))) return false;
  } finally {
    clearTimeout(timer);
  }
  log(`Time limit of ${timeLimitMin} min: cancelling the crawl…`);
  ended.catch(() => undefined); // A cancelled crawl's result rejects.
  await cancelCrawl(stack.client, crawlId);
  return true;
}

async function logProgress(pool: Pool, crawlId: string, startedMs: number, rss: RssSampler): Promise<void> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1', [crawlId]).catch(() => ({ rows: [{ n: NaN }] }));
  const seconds = (Date.now() - startedMs) / 1000;
  log(`  ${seconds.toFixed(0)} s: ${rows[0]!.n} pages (${(rows[0]!.n / seconds).toFixed(0)}/s); worker RSS ${rss.current().map((b) => (b / MiB).toFixed(0)).join(', ')} MiB`);
}

function report(r: ScaleFigures, opts: Options): string {
  const mb = (bytes: number) => (bytes / MiB).toFixed(1);
  const first = r.slices[0]!;
  const last = r.lastFullSlice;
  const h = r.histories;
  return [
    `${r.pages} pages${r.stopped ? ` (stopped at the time limit, of ${opts.pages})` : ''} in ${r.seconds.toFixed(0)} s: ${r.pagesPerSec.toFixed(0)} pages/s (${opts.workers} worker process(es), concurrency ${opts.concurrency}; load ${r.load} at the end)`,
    ...r.slices.map((s) => `  pages ${String(s.from).padStart(8)}–${String(s.to).padEnd(8)} ${s.pagesPerSec.toFixed(0).padStart(6)} pages/s   worker RSS ≤ ${mb(s.maxRssBytes)} MiB`),
    `last full slice / first: ${(100 * r.lastToFirst).toFixed(1)}% (${last.pagesPerSec.toFixed(0)} / ${first.pagesPerSec.toFixed(0)} pages/s)`,
    `worker RSS, most: ${r.maxRssBytes.map(mb).join(', ')} MiB`,
    `workflow histories: ${h.runs} runs, ${h.events} events (${(h.events / Math.max(1, r.pages)).toFixed(3)} per page); largest run ${mb(h.largestRunBytes)} MiB`,
    ...r.sizes.map((s) => `  ${s.table.padEnd(9)} table ${mb(s.tableBytes).padStart(8)} MiB  indexes ${mb(s.indexBytes).padStart(8)} MiB`),
    `Postgres: ${(r.bytesPerPage).toFixed(0)} bytes per page (tables + indexes grown over ${r.pages} pages)`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pages: { type: 'string', default: '1000000' },
      workers: { type: 'string', default: '1' },
      'worker-concurrency': { type: 'string', default: String(defaultMaxConcurrentBatches) },
      concurrency: { type: 'string', default: '64' },
      'batch-size': { type: 'string', default: '100' },
      slice: { type: 'string', default: '100000' },
      'time-limit-min': { type: 'string', default: '0' },
    },
  });
  const opts: Options = {
    pages: Number(values.pages),
    workers: Number(values.workers),
    workerConcurrency: Number(values['worker-concurrency']),
    concurrency: Number(values.concurrency),
    batchSize: Number(values['batch-size']),
    slice: Number(values.slice),
    timeLimitMin: Number(values['time-limit-min']),
  };
  for (const [name, value] of Object.entries(opts)) {
    if (!Number.isInteger(value) || value < (name === 'timeLimitMin' ? 0 : 1)) throw new Error(`--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${value} is not a whole number ≥ ${name === 'timeLimitMin' ? 0 : 1}`);
  }
  const services = await ensureServices(runtimeConfig(), { detached: false, log });
  process.env.TEMPORAL_ADDRESS = services.temporalAddress;
  process.env.DATABASE_URL = services.databaseUrl;
  const stack = await openStack();
  try {
    const figures = await runScale(stack, opts);
    process.stdout.write(`${report(figures, opts)}\n${JSON.stringify({ ...opts, ...figures, slices: figures.slices.map(({ from, to, pagesPerSec, maxRssBytes }) => ({ from, to, pagesPerSec, maxRssBytes })), lastFullSlice: undefined })}\n`);
  } finally {
    await stack.close();
    await services.stop();
  }
}

runMain(main);
