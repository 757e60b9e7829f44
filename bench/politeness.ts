/**
 * `npm run bench:politeness`: does a per-host rate hold, and is it used, when
 * a fleet crawls? Crawls a local counting site (one loopback address per
 * host) at `--rate R` with 3 worker processes, then with 1, and prints, per
 * run and host, what the *site* saw: the most request starts in any 1-second
 * window (robots.txt included), the mean rate while work was queued (from the
 * first start to the last), and the pages saved. Target: max ≤ R, mean ≥ 0.95·R.
 *
 *   npm run bench:politeness -- [--rate 10] [--seconds 32] [--hosts 2] [--workers 3,1] [--batch-size 100] [--concurrency 2]
 *
 * Services: TEMPORAL_ADDRESS / DATABASE_URL when set, else the local dev
 * server and embedded Postgres (stopped at the end if this started them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { startCrawl } from '../src/client';
import { runtimeConfig } from '../src/config';
import { connectClient } from '../src/temporal-connection';
import { createPool, migrate } from '../src/infra/database';
import { ensureServices, type Services } from '../src/services';
import { parseCrawlSpec } from '../src/spec';
import { startCountingSite, type CountingHost } from '../test/fixtures/counting-site';
import { maxStartsInWindow, meanRate } from '../test/helpers/rate-stats';
import { runMain } from './run-main';

const log = (line: string) => process.stderr.write(`${line}\n`);
const bin = path.join(__dirname, '../bin/tcrawl.js');

interface BenchOptions {
  rate: number;
  pagesPerHost: number;
  hosts: number;
  batchSize: number;
  concurrency: number;
}

interface HostFigures {
  host: string;
  requests: number;
  maxStartsIn1s: number;
  /** The shortest time in which rate + 1 starts happened: ≥ 1000 ms when the limit held. */
  tightestOverLimitMs: number | null;
  meanRate: number;
  pages: number;
}

interface RunFigures {
  workers: number;
  seconds: number;
  pages: number;
  /** Worst over hosts: the highest max, the lowest mean. */
  maxStartsIn1s: number;
  meanRate: number;
  hosts: HostFigures[];
}

async function runOnce(services: Services, client: Client, pool: Pool, workers: number, opts: BenchOptions): Promise<RunFigures> {
  const site = await startCountingSite({ hosts: opts.hosts, pagesPerHost: opts.pagesPerHost });
  const taskQueue = `bench-politeness-${process.pid}-${Date.now()}`;
  const crawlId = taskQueue;
  const children = Array.from({ length: workers }, () => spawnWorker(services, taskQueue));
  try {
    // Workers bundle the workflow code when they start; keep that out of the measurement.
    await waitForPollers(client, taskQueue, children);
    const spec = parseCrawlSpec({
      seeds: site.hosts.map((h) => h.pageUrl(0)),
      maxPages: opts.hosts * opts.pagesPerHost + 10,
      maxDepth: 1000,
      rate: opts.rate,
      concurrency: opts.concurrency,
      batchSize: opts.batchSize,
      allowPrivate: true,
    });
    log(`${workers} worker process${workers === 1 ? '' : 'es'}: crawling ${opts.hosts} × ${opts.pagesPerHost} pages at ${opts.rate}/s per host…`);
    const started = performance.now();
    await (await startCrawl(client, taskQueue, crawlId, spec)).result();
    const seconds = (performance.now() - started) / 1000;
    const hosts = await Promise.all(site.hosts.map((h) => figuresOf(pool, crawlId, h, opts.rate)));
    return {
      workers,
      seconds,
      pages: hosts.reduce((n, h) => n + h.pages, 0),
      maxStartsIn1s: Math.max(...hosts.map((h) => h.maxStartsIn1s)),
      meanRate: Math.min(...hosts.map((h) => h.meanRate)),
      hosts,
    };
  } finally {
    await Promise.all(children.map(stop));
    await site.close();
  }
}

async function figuresOf(pool: Pool, crawlId: string, h: CountingHost, rate: number): Promise<HostFigures> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1 AND url LIKE $2`, [crawlId, `${h.origin}/%`]);
  const over = Math.floor(rate) + 1;
  let tightest: number | null = null;
  for (let i = 0; i + over - 1 < h.starts.length; i++) tightest = Math.min(tightest ?? Infinity, h.starts[i + over - 1] - h.starts[i]);
  return {
    host: h.host,
    requests: h.starts.length,
    maxStartsIn1s: maxStartsInWindow(h.starts),
    tightestOverLimitMs: tightest === null ? null : Math.round(tightest * 10) / 10,
    meanRate: meanRate(h.starts),
    pages: rows[0].n,
  };
}

function spawnWorker(services: Services, taskQueue: string): ChildProcess {
  return spawn(process.execPath, [bin, 'worker'], {
    env: { ...process.env, TEMPORAL_ADDRESS: services.temporalAddress, DATABASE_URL: services.databaseUrl, TCRAWL_TASK_QUEUE: taskQueue },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** Until every child polls for activities (Temporal's default worker identity is `pid@hostname`). */
async function waitForPollers(client: Client, taskQueue: string, children: ChildProcess[]): Promise<void> {
  for (;;) {
    const { pollers } = await client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: taskQueue }, taskQueueType: 2 });
    const polling = new Set((pollers ?? []).map((p) => p.identity?.split('@')[0]));
    if (children.every((c) => polling.has(String(c.pid)))) return;
    const dead = children.find((c) => c.exitCode !== null);
    if (dead) throw new Error(`worker process ${dead.pid} exited with code ${dead.exitCode} before polling`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function row(r: RunFigures, opts: BenchOptions): string {
  const ok = r.maxStartsIn1s <= opts.rate && r.meanRate >= 0.95 * opts.rate && r.pages === opts.hosts * opts.pagesPerHost;
  const perHost = r.hosts.map(
    (h) =>
      `    ${h.host.padEnd(22)} ${String(h.requests).padStart(5)} requests  max ${h.maxStartsIn1s}/1s` +
      ` (${Math.floor(opts.rate) + 1} starts within ${h.tightestOverLimitMs ?? '–'} ms at the tightest)  mean ${h.meanRate.toFixed(2)}/s  ${h.pages} pages`,
  );
  return [
    `${`${r.workers} worker process${r.workers === 1 ? '' : 'es'}`.padEnd(20)} max ${r.maxStartsIn1s} starts in any 1 s, mean ${r.meanRate.toFixed(2)}/s while queued, ` +
      `${r.pages} pages in ${r.seconds.toFixed(1)} s  ${ok ? 'target met' : 'TARGET MISSED'}`,
    ...perHost,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '10' },
      seconds: { type: 'string', default: '32' },
      hosts: { type: 'string', default: '2' },
      workers: { type: 'string', default: '3,1' },
      'batch-size': { type: 'string', default: '100' },
      concurrency: { type: 'string', default: '2' },
    },
  });
  const rate = Number(values.rate);
  if (!(rate > 0)) throw new Error(`--rate must be positive, got ${values.rate}`);
  const opts: BenchOptions = {
    rate,
    pagesPerHost: Math.ceil(rate * Number(values.seconds)),
    hosts: Number(values.hosts),
    batchSize: Number(values['batch-size']),
    concurrency: Number(values.concurrency),
  };
  const fleets = values.workers.split(',').map(Number);
  const config = runtimeConfig();
  const services = await ensureServices(config, { detached: false, log });
  const connection = await connectClient(services.temporalAddress, config);
  const pool = createPool(services.databaseUrl, 10);
  try {
    await migrate(pool);
    const client = new Client({ connection, namespace: config.temporalNamespace });
    const runs: RunFigures[] = [];
    for (const workers of fleets) runs.push(await runOnce(services, client, pool, workers, opts));
    const targetMet = runs.every((r) => r.maxStartsIn1s <= rate && r.meanRate >= 0.95 * rate && r.pages === opts.hosts * opts.pagesPerHost);
    process.stdout.write(`${runs.map((r) => row(r, opts)).join('\n')}\n`);
    process.stdout.write(`${JSON.stringify({ rate, hosts: opts.hosts, pagesPerHost: opts.pagesPerHost, batchSize: opts.batchSize, concurrency: opts.concurrency, targetMet, runs })}\n`);
  } finally {
    await connection.close();
    await pool.end();
    await services.stop();
  }
}

runMain(main);
