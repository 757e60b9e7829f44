/**
 * `npm run bench`: one run, the same local site and the same Postgres for
 * every crawler — the bare undici + cheerio loop (no durability), optionally
 * Crawlee's CheerioCrawler, and tcrawl (Temporal + Postgres, every page
 * saved) — and their ratios. Side by side in one run because this machine's
 * speed varies from minute to minute. Each crawler's rate is its pages over
 * the time from its first request to its last, as the site saw them; tcrawl
 * is also timed process to process (from spawning its workers to the crawl's
 * result).
 *
 *   npm run bench -- [--site synthetic|docs] [--pages 20000] [--copies 8] [--crawlee]
 *                    [--workers 1] [--concurrency 64] [--batch-size 100]
 *
 * `--site synthetic` (the default): bench/site.ts's `--pages` pages.
 * `--site docs`: real HTML, bench/docs-site.ts's `--copies` copies of the
 * PostgreSQL docs (`--docs-dir`); Crawlee runs too.
 * --workers 0 runs the worker inside this process; N > 0 spawns N `tcrawl worker` processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startCrawl } from '../src/client';
import { runtimeConfig } from '../src/config';
import { connectClient, connectWorker } from '../src/temporal-connection';
import { createPool, migrate } from '../src/infra/database';
import { ensureServices, type Services } from '../src/services';
import { parseCrawlSpec } from '../src/spec';
import { createCrawlWorker } from '../src/worker';
import { runBareLoop } from './bare-loop';
import { runCrawlee } from './crawlee-loop';
import { spawnDocsSite } from './docs-site';
import { readSpan, spawnBenchSite, type RequestSpan } from './site';
import { runMain } from './run-main';

const log = (line: string) => process.stderr.write(`${line}\n`);

interface TcrawlRunOptions {
  seed: string;
  pages: number;
  workers: number;
  concurrency: number;
  batchSize: number;
}

async function runTcrawl(services: Services, opts: TcrawlRunOptions): Promise<{ pages: number; seconds: number; processSeconds: number }> {
  const spawnedAt = performance.now();
  const config = runtimeConfig();
  const taskQueue = `bench-${process.pid}-${Date.now()}`;
  const crawlId = taskQueue;
  const pool = createPool(services.databaseUrl, 30);
  await migrate(pool);
  const connection = await connectClient(services.temporalAddress, config);
  const client = new Client({ connection, namespace: config.temporalNamespace });
  const spec = parseCrawlSpec({
    seeds: [opts.seed],
    maxPages: opts.pages,
    maxDepth: 1000,
    rate: 0,
    concurrency: opts.concurrency,
    batchSize: opts.batchSize,
    allowPrivate: true,
  });
  const children: ChildProcess[] = [];
  try {
    let run: () => Promise<unknown>;
    if (opts.workers === 0) {
      const nativeConnection = await connectWorker(services.temporalAddress, config);
      const worker = await createCrawlWorker({ connection: nativeConnection, namespace: config.temporalNamespace, taskQueue, pool });
      run = async () => worker.runUntil(startCrawl(client, taskQueue, crawlId, spec).then((handle) => handle.result()));
    } else {
      for (let i = 0; i < opts.workers; i++) children.push(spawnWorker(services, taskQueue));
      // Workers bundle the workflow code when they start; give them that time outside the measurement.
      await waitForPollers(client, config.temporalNamespace, taskQueue, opts.workers);
      run = async () => (await startCrawl(client, taskQueue, crawlId, spec)).result();
    }
    const started = performance.now();
    await run();
    const ended = performance.now();
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId]);
    return { pages: rows[0].n, seconds: (ended - started) / 1000, processSeconds: (ended - spawnedAt) / 1000 };
  } finally {
    for (const child of children) child.kill('SIGTERM');
    await connection.close();
    await pool.end();
  }
}

function spawnWorker(services: Services, taskQueue: string): ChildProcess {
  return spawn(process.execPath, [path.join(__dirname, '../bin/tcrawl.js'), 'worker'], {
    env: { ...process.env, TEMPORAL_ADDRESS: services.temporalAddress, DATABASE_URL: services.databaseUrl, TCRAWL_TASK_QUEUE: taskQueue },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function waitForPollers(client: Client, namespace: string, taskQueue: string, count: number): Promise<void> {
  for (;;) {
    const { pollers } = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType: 2 });
    if ((pollers?.length ?? 0) >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** One crawler's figures: pages saved, over the site's span of its requests; `seconds`: its own wall time. */
interface Figures {
  pages: number;
  spanSeconds: number;
  pagesPerSecond: number;
  seconds: number;
}

function figures(pages: number, seconds: number, span: RequestSpan): Figures {
  const spanSeconds = span.firstMs === null || span.lastMs === null ? seconds : (span.lastMs - span.firstMs) / 1000;
  return { pages, spanSeconds, pagesPerSecond: pages / spanSeconds, seconds };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      site: { type: 'string', default: 'synthetic' },
      pages: { type: 'string', default: '20000' },
      copies: { type: 'string', default: '8' },
      'docs-dir': { type: 'string' },
      crawlee: { type: 'boolean' },
      workers: { type: 'string', default: '0' },
      concurrency: { type: 'string', default: '64' },
      'batch-size': { type: 'string', default: '100' },
    },
  });
  if (values.site !== 'synthetic' && values.site !== 'docs') throw new Error(`--site must be synthetic or docs (got ${values.site})`);
  const docs = values.site === 'docs';
  // The docs are crawled whole: the page limit only has to be above what they hold.
  const pages = docs ? 1_000_000 : Number(values.pages);
  const concurrency = Number(values.concurrency);
  const workers = Number(values.workers);
  const withCrawlee = values.crawlee ?? docs;
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const services = await ensureServices(runtimeConfig(), { detached: false, log });
  const site = docs ? await spawnDocsSite({ dir: values['docs-dir'], copies: Number(values.copies) }) : await spawnBenchSite(pages);
  try {
    const seed = docs ? `${site.origin}/` : `${site.origin}/p/0`;
    log(docs ? `Docs site: ${values.copies} copies at ${site.origin}` : `Bench site: ${pages} pages at ${site.origin}`);
    await readSpan(site.origin);
    log('Running the bare undici + cheerio loop…');
    const bareRun = await runBareLoop({ seed, databaseUrl: services.databaseUrl, concurrency, maxPages: pages });
    const bare = figures(bareRun.pages, bareRun.seconds, await readSpan(site.origin));
    let crawlee: Figures | undefined;
    if (withCrawlee) {
      log('Running Crawlee\'s CheerioCrawler…');
      const crawleeRun = await runCrawlee({ seed, databaseUrl: services.databaseUrl, concurrency, maxPages: pages });
      crawlee = figures(crawleeRun.pages, crawleeRun.seconds, await readSpan(site.origin));
    }
    log('Running tcrawl…');
    const tcrawlRun = await runTcrawl(services, { seed, pages, workers, concurrency, batchSize: Number(values['batch-size']) });
    const tcrawl = figures(tcrawlRun.pages, tcrawlRun.seconds, await readSpan(site.origin));
    const processRate = tcrawlRun.pages / tcrawlRun.processSeconds;
    const row = (name: string, r: Figures) =>
      `${name.padEnd(34)} ${String(r.pages).padStart(7)} pages ${r.spanSeconds.toFixed(1).padStart(7)} s ${r.pagesPerSecond.toFixed(0).padStart(7)} pages/s`;
    const percent = (a: number, b: number) => `${((a / b) * 100).toFixed(1)}%`;
    process.stdout.write(
      [
        row('bare loop (no durability)', bare),
        ...(crawlee ? [row('Crawlee CheerioCrawler (in memory)', crawlee)] : []),
        row(`tcrawl (${workers === 0 ? 'in-process worker' : `${workers} worker process${workers === 1 ? '' : 'es'}`})`, tcrawl),
        `tcrawl process to process: ${tcrawlRun.processSeconds.toFixed(1)} s, ${processRate.toFixed(0)} pages/s`,
        `tcrawl / bare: ${percent(tcrawl.pagesPerSecond, bare.pagesPerSecond)} (process to process ${percent(processRate, bare.pagesPerSecond)})`,
        ...(crawlee ? [`tcrawl / Crawlee: ${(tcrawl.pagesPerSecond / crawlee.pagesPerSecond).toFixed(2)}x`] : []),
        JSON.stringify({ site: values.site, bare, crawlee, tcrawl: { ...tcrawl, processSeconds: tcrawlRun.processSeconds }, concurrency, batchSize: Number(values['batch-size']), workers }),
        '',
      ].join('\n'),
    );
    if (tcrawl.pages !== bare.pages) throw new Error(`tcrawl saved ${tcrawl.pages} pages, the bare loop ${bare.pages}`);
  } finally {
    site.child.kill();
    await services.stop();
  }
}

runMain(main);
