import { randomBytes } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { assertPublicHost } from '../../activities/http-agent';
import { awaitCrawlResult, crawlExistsError, crawlStatus, setCrawlRate, startCrawl } from '../client';
import { runtimeConfig, type RuntimeConfig } from '../config';
import type { CrawlProgress, SetRateRequest } from '../crawl-types';
import { InvalidInputError, TcrawlError } from '../errors';
import { createPool, migrate } from '../infra/database';
import { stopDetachedPostgres } from '../infra/embedded-postgres';
import { ensureTemporalServer, stopDetachedTemporalServer } from '../infra/temporal-server';
import { ensureServices, type Services } from '../services';
import type { CrawlSpec } from '../spec';
import { createCrawlWorker } from '../worker';
import { crawlSpecFrom, type CrawlFlags } from './crawl-options';
import { formatHostTable, formatProgressLine, formatSummary, workflowUrl } from './summary';

const log = (line: string) => process.stderr.write(`${line}\n`);

export interface CrawlCommandFlags extends CrawlFlags {
  id?: string;
  wait?: boolean;
  json?: boolean;
}

export async function crawlCommand(seedArgs: string[], flags: CrawlCommandFlags): Promise<number> {
  const spec = crawlSpecFrom(seedArgs, flags);
  if (!spec.allowPrivate) await refusePrivateSeeds(spec);
  const crawlId = flags.id ?? newCrawlId(spec.seeds[0]);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(crawlId)) {
    throw new InvalidInputError(`--id "${crawlId}" may only use letters, digits, '.', '_' and '-' (at most 128)`, 'TCRAWL_INVALID_ID');
  }
  const config = runtimeConfig();
  const services = await ensureServices(config, { detached: true, log });
  const pool = createPool(services.databaseUrl, 30);
  const connection = await Connection.connect({ address: services.temporalAddress });
  try {
    await migrate(pool);
    // Temporal refuses a used workflow id; this catches an id whose rows outlived their Temporal history.
    if ((await pool.query('SELECT 1 FROM crawls WHERE crawl_id = $1', [crawlId])).rowCount) throw crawlExistsError(crawlId);
    const client = new Client({ connection, namespace: config.temporalNamespace });
    const handle = await startCrawl(client, config.taskQueue, crawlId, spec);
    log(`Started crawl ${crawlId} (workflow ${handle.workflowId}, task queue ${config.taskQueue}).`);
    if (services.webUiUrl) log(`Web UI: ${workflowUrl(services.webUiUrl, config, crawlId)}`);
    if (!flags.wait) {
      process.stdout.write(flags.json ? `${JSON.stringify({ crawlId, workflowId: handle.workflowId })}\n` : `${crawlId}\n`);
      if (!(await hasLiveWorkers(client, config))) log(`No worker is polling task queue "${config.taskQueue}" yet: the crawl starts when one does (tcrawl worker, or tcrawl dev).`);
      return 0;
    }
    let outageReported = false;
    const result = awaitCrawlResult(client, crawlId, (error) => {
      if (!outageReported) log(`Temporal is unreachable (${error.message}); the crawl is safe in its database, waiting for the server…`);
      outageReported = true;
    });
    const summary = await waitForCrawl(client, config, services, pool, result, crawlId);
    process.stdout.write(flags.json ? `${JSON.stringify(summary)}\n` : formatSummary(summary, services, config));
    return 0;
  } finally {
    await connection.close();
    await pool.end();
  }
}

/** Waits for the result, running a worker in this process unless a fleet is already serving the queue. */
async function waitForCrawl<T extends CrawlProgress>(
  client: Client,
  config: RuntimeConfig,
  services: Services,
  pool: ReturnType<typeof createPool>,
  result: Promise<T>,
  crawlId: string,
): Promise<T> {
  const reporter = reportProgress(client, crawlId);
  try {
    // A local dev server's pollers may be a process just killed: always bring our own worker there.
    if (config.temporalAddress && (await hasLiveWorkers(client, config))) return await result;
    const connection = await NativeConnection.connect({ address: services.temporalAddress });
    try {
      const worker = await createCrawlWorker({ connection, namespace: config.temporalNamespace, taskQueue: config.taskQueue, pool });
      return await worker.runUntil(result);
    } finally {
      await connection.close();
    }
  } finally {
    reporter.stop();
  }
}

function reportProgress(client: Client, crawlId: string): { stop(): void } {
  const tty = process.stderr.isTTY;
  const everyMs = tty ? 1000 : 5000;
  let last: { saved: number; atMs: number } | undefined;
  const timer = setInterval(async () => {
    const { progress } = await crawlStatus(client, crawlId, everyMs).catch(() => ({ progress: null }));
    if (!progress) return;
    const done = progress.saved + progress.failed + progress.skipped;
    const rate = last ? ((done - last.saved) * 1000) / (Date.now() - last.atMs) : undefined;
    last = { saved: done, atMs: Date.now() };
    const line = formatProgressLine(progress, rate);
    process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      if (tty) process.stderr.write('\r\x1b[2K');
    },
  };
}

export async function workerCommand(flags: { concurrency?: number }): Promise<number> {
  const config = runtimeConfig();
  const services = await ensureServices(config, { detached: true, log });
  await runWorker(config, services, flags.concurrency);
  return 0;
}

export async function devCommand(flags: { concurrency?: number }): Promise<number> {
  const config = runtimeConfig();
  const services = await ensureServices(config, { detached: false, log });
  try {
    process.stdout.write(
      [
        `TEMPORAL_ADDRESS=${services.temporalAddress}`,
        `TEMPORAL_NAMESPACE=${config.temporalNamespace}`,
        `TCRAWL_TASK_QUEUE=${config.taskQueue}`,
        `DATABASE_URL=${services.databaseUrl}`,
        ...(services.webUiUrl ? [`Web UI: ${services.webUiUrl}`] : []),
        '',
      ].join('\n'),
    );
    log('Worker running; Ctrl-C stops it and the services this command started.');
    await runWorker(config, services, flags.concurrency);
  } finally {
    await services.stop();
  }
  return 0;
}

/** Runs a worker until SIGINT/SIGTERM (the Temporal runtime turns them into a graceful shutdown). */
async function runWorker(config: RuntimeConfig, services: Services, maxConcurrentBatches?: number): Promise<void> {
  const pool = createPool(services.databaseUrl, 30);
  const connection = await NativeConnection.connect({ address: services.temporalAddress });
  try {
    await migrate(pool);
    const worker = await createCrawlWorker({ connection, namespace: config.temporalNamespace, taskQueue: config.taskQueue, pool, maxConcurrentBatches });
    log(`Worker polling task queue "${config.taskQueue}" on ${services.temporalAddress} (namespace ${config.temporalNamespace}).`);
    await worker.run();
  } finally {
    await connection.close();
    await pool.end();
  }
}

export async function statusCommand(crawlId: string, flags: { json?: boolean }): Promise<number> {
  const status = await withClient((client) => crawlStatus(client, crawlId));
  if (flags.json) process.stdout.write(`${JSON.stringify(status)}\n`);
  else if (status.progress) process.stdout.write(`${status.status}\n${formatProgressLine(status.progress)}\n${formatHostTable(status.progress)}`);
  else process.stdout.write(`${status.status}${status.status === 'RUNNING' ? ' (no worker answered the progress query)' : ''}\n`);
  return status.status === 'FAILED' || status.status === 'TERMINATED' || status.status === 'TIMED_OUT' ? 1 : 0;
}

export async function setRateCommand(crawlId: string, rate: number, flags: { host?: string; group?: string; total?: boolean; json?: boolean }): Promise<number> {
  const targets = [flags.host !== undefined, flags.group !== undefined, flags.total === true].filter(Boolean).length;
  if (targets > 1) throw new InvalidInputError('set-rate takes at most one of --host, --group and --total', 'TCRAWL_INVALID_RATE');
  const target: SetRateRequest['target'] =
    flags.host !== undefined ? { host: flags.host } : flags.group !== undefined ? { group: flags.group } : flags.total ? { total: true } : { default: true };
  const limits = await withClient((client) => setCrawlRate(client, crawlId, { target, rate }));
  process.stdout.write(flags.json ? `${JSON.stringify(limits)}\n` : `${describeLimits(limits)}\n`);
  return 0;
}

function describeLimits(limits: CrawlProgress['limits']): string {
  const perSecond = (rate: number) => (rate > 0 ? `${rate}/s` : 'unlimited');
  const parts = [`per host ${perSecond(limits.rate)}`, `total ${perSecond(limits.totalRate)}`];
  for (const [host, rate] of Object.entries(limits.hostRates)) parts.push(`${host} ${perSecond(rate)}`);
  for (const group of limits.groups) parts.push(`group ${group.name} ${perSecond(group.rate)}`);
  return `Limits now: ${parts.join(', ')}`;
}

/** Runs `work` with a client of the configured (or local) Temporal server. */
async function withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const config = runtimeConfig();
  const address = config.temporalAddress ?? (await ensureTemporalServer({ config, detached: true, log })).address;
  const connection = await Connection.connect({ address });
  try {
    return await work(new Client({ connection, namespace: config.temporalNamespace }));
  } finally {
    await connection.close();
  }
}

export async function downCommand(): Promise<number> {
  const config = runtimeConfig();
  const [temporal, postgres] = await Promise.all([stopDetachedTemporalServer(config), stopDetachedPostgres(config)]);
  log(`Temporal dev server: ${temporal ? 'stopped' : 'not running'}; embedded Postgres: ${postgres ? 'stopped' : 'not running'}.`);
  return 0;
}

async function refusePrivateSeeds(spec: CrawlSpec): Promise<void> {
  for (const seed of spec.seeds) {
    try {
      await assertPublicHost(new URL(seed).hostname);
    } catch (error) {
      if (error instanceof TcrawlError && error.code === 'TCRAWL_PRIVATE_ADDRESS') {
        throw new InvalidInputError(`Seed ${seed}: ${error.message}`, error.code);
      }
      // Not bad input: the host may come back. The crawl records the failure (reason dns).
      log(`Warning: seed ${seed} does not resolve now (${(error as Error).message}).`);
    }
  }
}

async function hasLiveWorkers(client: Client, config: RuntimeConfig): Promise<boolean> {
  const response = await client.workflowService.describeTaskQueue({
    namespace: config.temporalNamespace,
    taskQueue: { name: config.taskQueue },
    taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
  });
  // Workers long-poll for up to a minute, so a live one has polled within about that.
  const liveSinceMs = Date.now() - 90_000;
  return (response.pollers ?? []).some((poller) => Number(poller.lastAccessTime?.seconds ?? 0) * 1000 > liveSinceMs);
}

function newCrawlId(seed: string): string {
  const host = new URL(seed).hostname.replace(/[^A-Za-z0-9.-]/g, '-');
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${host}-${stamp}-${randomBytes(2).toString('hex')}`;
}
