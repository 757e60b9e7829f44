/**
 * `npm run bench`: one run, two crawlers, the same 20,000-page local site and
 * the same Postgres — the bare undici + cheerio loop (no durability) and tcrawl
 * (Temporal + Postgres, every page saved) — and their ratio. Side by side in
 * one run because this machine's speed varies from minute to minute.
 *
 *   npm run bench -- [--pages 20000] [--workers 1] [--concurrency 64] [--batch-size 100]
 *
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
import { spawnBenchSite } from './site';
import { runMain } from './run-main';

const log = (line: string) => process.stderr.write(`${line}\n`);

interface TcrawlRunOptions {
  seed: string;
  pages: number;
  workers: number;
  concurrency: number;
  batchSize: number;
}

async function runTcrawl(services: Services, opts: TcrawlRunOptions): Promise<{ pages: number; seconds: number; pagesPerSecond: number }> {
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
    const seconds = (performance.now() - started) / 1000;
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId]);
    return { pages: rows[0].n, seconds, pagesPerSecond: rows[0].n / seconds };
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

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      pages: { type: 'string', default: '20000' },
      workers: { type: 'string', default: '0' },
      concurrency: { type: 'string', default: '64' },
      'batch-size': { type: 'string', default: '100' },
    },
  });
  const pages = Number(values.pages);
  const concurrency = Number(values.concurrency);
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const services = await ensureServices(runtimeConfig(), { detached: false, log });
  const site = await spawnBenchSite(pages);
  try {
    const seed = `${site.origin}/p/0`;
    log(`Bench site: ${pages} pages at ${site.origin}`);
    log('Running the bare undici + cheerio loop…');
    const bare = await runBareLoop({ seed, databaseUrl: services.databaseUrl, concurrency, maxPages: pages });
    log('Running tcrawl…');
    const tcrawl = await runTcrawl(services, { seed, pages, workers: Number(values.workers), concurrency, batchSize: Number(values['batch-size']) });
    const ratio = tcrawl.pagesPerSecond / bare.pagesPerSecond;
    const row = (name: string, r: { pages: number; seconds: number; pagesPerSecond: number }) =>
      `${name.padEnd(28)} ${String(r.pages).padStart(7)} pages ${r.seconds.toFixed(1).padStart(7)} s ${r.pagesPerSecond.toFixed(0).padStart(7)} pages/s`;
    process.stdout.write(
      [
        row('bare loop (no durability)', bare),
        row(`tcrawl (${values.workers === '0' ? 'in-process worker' : `${values.workers} worker processes`})`, tcrawl),
        `ratio tcrawl / bare: ${(ratio * 100).toFixed(1)}%`,
        JSON.stringify({ bare, tcrawl, ratio, concurrency, batchSize: Number(values['batch-size']), workers: Number(values.workers) }),
        '',
      ].join('\n'),
    );
    if (tcrawl.pages !== pages) throw new Error(`tcrawl saved ${tcrawl.pages} pages, expected ${pages}`);
  } finally {
    site.child.kill();
    await services.stop();
  }
}

runMain(main);
