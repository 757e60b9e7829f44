import { constants as osConstants } from 'node:os';
import { Client } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
import { assertPublicHost, privateLiteralError } from '../../activities/http-agent';
import { allRoutes } from '../egress';
import { writeOutputsReported } from './output-command';
import { awaitCrawlResult, crawlStatus, perSecond, queryProgress, setCrawlRate } from '../client';
import { assertCrawlId, connect, newCrawlId } from '../tcrawl-client';
import { runtimeConfig, type RuntimeConfig } from '../config';
import type { CrawlProgress, SetRateRequest } from '../crawl-types';
import { InvalidInputError, TcrawlError } from '../errors';
import { createPool, migrate } from '../infra/database';
import { stopDetachedPostgres } from '../infra/embedded-postgres';
import { ensureTemporalServer, stopDetachedTemporalServer } from '../infra/temporal-server';
import { ensureServices, type Services } from '../services';
import { connectClient, connectWorker } from '../temporal-connection';
import type { CrawlSpec } from '../spec';
import { sampleFrontier } from '../../activities/crawl-metrics';
import { createCrawlWorker, drainBoundMs, runWorkerUntil, shutdownGraceMs, type Drain } from '../worker';
import { crawlSpecFrom, type CrawlFlags } from './crawl-options';
import { formatHostTable, formatProgressLine, formatSummary, formatTrouble, workflowUrl } from './summary';
import { watchCrawl } from './watch';
import { egressStatus, formatEgressTable, type EgressStatus } from './egress-status';
import { withDatabase } from './export-command';
import { say as log } from './log-format';

export interface CrawlCommandFlags extends CrawlFlags {
  id?: string;
  wait?: boolean;
  json?: boolean;
}

export async function crawlCommand(seedArgs: string[], flags: CrawlCommandFlags): Promise<number> {
  const spec = crawlSpecFrom(seedArgs, flags);
  if (!spec.allowPrivate) await refusePrivateSeeds(spec);
  const crawlId = flags.id ?? newCrawlId(spec.seeds[0]);
  assertCrawlId(crawlId);
  // Without --wait the command is over in a moment: a signal ends it as it ends any process.
  return flags.wait ? stoppable((stop) => startCrawlCommand(spec, crawlId, flags, stop)) : startCrawlCommand(spec, crawlId, flags, neverStopped);
}

async function startCrawlCommand(spec: CrawlSpec, crawlId: string, flags: CrawlCommandFlags, stop: Stop): Promise<number> {
  const tcrawl = await connect({ log, poolSize: 30 });
  const { config, services, pool, temporal: client } = tcrawl;
  let drain: Drain = 'drained';
  try {
    if (stop.signal) {
      log(`Stopped (${stop.signal}) before crawl ${crawlId} was started.`);
      return signalExitCode(stop.signal);
    }
    const handle = await tcrawl.startParsed(spec, { id: crawlId });
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
    const outcome = await waitForCrawl(client, config, services, pool, result, crawlId, stop);
    drain = outcome.drain;
    if ('signal' in outcome) {
      reportLeftRunning(outcome.signal, crawlId, outcome.drain, services, config);
      // Not 0: the crawl has not finished, so `crawl --wait && next-step` must not go on. Not 1 either: nothing failed.
      return signalExitCode(outcome.signal);
    }
    process.stdout.write(flags.json ? `${JSON.stringify(outcome.summary)}\n` : formatSummary(outcome.summary, services, config));
    if (spec.outputs.length > 0) await writeOutputsReported(pool, crawlId);
    return 0;
  } finally {
    await client.connection.close();
    // Abandoned batches hold pool clients, which end() would wait for without end: exiting closes them.
    if (drain === 'drained') await pool.end();
  }
}

type WaitOutcome<T> = ({ summary: T } | { signal: NodeJS.Signals }) & { drain: Drain };

/**
 * Waits for the result, running a worker in this process unless a fleet is
 * already serving the queue — or until `stop`: the crawl goes on without
 * this process, and its worker drains (see {@link runWorkerUntil}).
 */
async function waitForCrawl<T extends CrawlProgress>(
  client: Client,
  config: RuntimeConfig,
  services: Services,
  pool: ReturnType<typeof createPool>,
  result: Promise<T>,
  crawlId: string,
  stop: Stop,
): Promise<WaitOutcome<T>> {
  const reporter = reportProgress(client, crawlId);
  // Once stopped, `result` is abandoned: it rejects when the connection closes, and the race has handled that.
  const outcome = Promise.race([result.then((summary) => ({ summary })), stop.requested.then((signal) => ({ signal }))]);
  try {
    // A local dev server's pollers may be a process just killed: always bring our own worker there.
    if (config.temporalAddress && (await workerServes(client, config, crawlId))) return { ...(await outcome), drain: 'drained' };
    if (stop.signal) return { ...(await outcome), drain: 'drained' };
    const connection = await connectWorker(services.temporalAddress, config);
    let drain: Drain = 'drained';
    try {
      const worker = await createCrawlWorker({ connection, namespace: config.temporalNamespace, taskQueue: config.taskQueue, pool });
      drain = await runWorkerUntil(worker, outcome);
      return { ...(await outcome), drain };
    } finally {
      // An abandoned worker still holds the connection (close() would throw): exiting closes it.
      if (drain === 'drained') await connection.close();
    }
  } finally {
    await reporter.stop();
  }
}

/** What `crawl --wait` says when a signal ends it: the crawl is not over, and how to follow it. */
function reportLeftRunning(signal: NodeJS.Signals, crawlId: string, drain: Drain, services: Services, config: RuntimeConfig): void {
  log(`Stopped waiting (${signal}): crawl ${crawlId} goes on without this process.`);
  log(`  Follow it:    tcrawl status ${crawlId}${services.webUiUrl ? ` or ${workflowUrl(services.webUiUrl, config, crawlId)}` : ''}`);
  log(`  It moves on while a worker serves task queue "${config.taskQueue}": tcrawl worker (with the same TEMPORAL_ADDRESS, DATABASE_URL and TCRAWL_TASK_QUEUE).`);
  if (drain === 'abandoned') log(`  ${abandonedBatches}`);
}

function reportProgress(client: Client, crawlId: string): { stop(): Promise<void> } {
  const tty = process.stderr.isTTY;
  const everyMs = tty ? 1000 : 5000;
  // The SDK cancels a call when the abort event fires, so a call started after abort() would run on:
  // each tick is one call, not started once stopped, and stop() waits for the tick in flight. A call
  // still running when the caller closes the connection is retried on the closed channel, which
  // throws where nothing catches it ("Channel has been shut down", exit 1).
  const stopped = new AbortController();
  let tickInFlight: Promise<void> | undefined;
  let last: { saved: number; atMs: number } | undefined;
  const tick = async (): Promise<void> => {
    // A signal per call: the SDK adds an abort listener for each call and never removes it, so one
    // signal for the whole wait gathered one per tick (MaxListenersExceededWarning after 11).
    const call = new AbortController();
    const cancel = (): void => call.abort();
    stopped.signal.addEventListener('abort', cancel, { once: true });
    let progress: CrawlProgress | null;
    try {
      progress = await client.connection.withAbortSignal(call.signal, () => queryProgress(client, crawlId, everyMs));
    } finally {
      stopped.signal.removeEventListener('abort', cancel);
    }
    if (!progress || stopped.signal.aborted) return;
    const done = progress.saved + progress.failed + progress.skipped;
    const rate = last ? ((done - last.saved) * 1000) / (Date.now() - last.atMs) : undefined;
    last = { saved: done, atMs: Date.now() };
    const line = formatProgressLine(progress, rate);
    process.stderr.write(tty ? `\r\x1b[2K${line}` : `${line}\n`);
  };
  const timer = setInterval(() => {
    if (tickInFlight || stopped.signal.aborted) return;
    tickInFlight = tick().finally(() => {
      tickInFlight = undefined;
    });
  }, everyMs);
  return {
    async stop() {
      clearInterval(timer);
      stopped.abort();
      await tickInFlight;
      if (tty) process.stderr.write('\r\x1b[2K');
    },
  };
}

/** Flags of `worker` and `dev`. The runtime serves `metricsPort` from its install (cli/runtime.ts); the worker adds the frontier's depth. */
interface WorkerFlags {
  concurrency?: number;
  metricsPort?: number;
}

export async function workerCommand(flags: WorkerFlags): Promise<number> {
  return stoppable(async (stop) => {
    const config = runtimeConfig();
    const services = await ensureServices(config, { detached: true, log });
    return drainExitCode(await runWorker(config, services, stop, flags));
  });
}

export async function devCommand(flags: WorkerFlags): Promise<number> {
  return stoppable(async (stop) => {
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
      return drainExitCode(await runWorker(config, services, stop, flags));
    } finally {
      await services.stop();
    }
  });
}

/**
 * Runs a worker until `stop`, then drains it (see {@link runWorkerUntil}). A worker serving metrics also
 * samples the frontier's depth for them.
 */
async function runWorker(config: RuntimeConfig, services: Services, stop: Stop, { concurrency: maxConcurrentBatches, metricsPort }: WorkerFlags): Promise<Drain> {
  const pool = createPool(services.databaseUrl, 30);
  const connection = await connectWorker(services.temporalAddress, config);
  let drain: Drain = 'drained';
  let stopSampling: (() => void) | undefined;
  try {
    await migrate(pool);
    if (stop.signal) return drain;
    if (metricsPort !== undefined) {
      stopSampling = sampleFrontier(pool, Runtime.instance().metricMeter);
      log(`Metrics on http://0.0.0.0:${metricsPort}/metrics (Prometheus text format).`);
    }
    const worker = await createCrawlWorker({ connection, namespace: config.temporalNamespace, taskQueue: config.taskQueue, pool, maxConcurrentBatches });
    log(`Worker polling task queue "${config.taskQueue}" on ${services.temporalAddress} (namespace ${config.temporalNamespace}).`);
    drain = await runWorkerUntil(worker, stop.requested);
    if (drain === 'drained') log('Worker stopped: its batches finished or were handed back to Temporal.');
    return drain;
  } finally {
    stopSampling?.();
    // An abandoned worker still holds the connection, and its batches their pool clients: exiting closes them.
    if (drain === 'drained') {
      await connection.close();
      await pool.end();
    }
  }
}

/**
 * A worker stopped by a signal has done its job when it drained (0); when it had to leave batches behind
 * that ignored cancellation — a sign that Postgres or a site stopped answering — it says so and exits 1.
 */
function drainExitCode(drain: Drain): number {
  if (drain === 'abandoned') throw new TcrawlError('TCRAWL_DRAIN_TIMEOUT', abandonedBatches);
  return 0;
}

/**
 * How the first SIGINT/SIGTERM reached a command run by {@link stoppable}:
 * `signal` is its name once it came, `requested` resolves with it.
 */
interface Stop {
  readonly signal: NodeJS.Signals | undefined;
  readonly requested: Promise<NodeJS.Signals>;
}

const neverStopped: Stop = { signal: undefined, requested: new Promise(() => undefined) };

/**
 * After the first signal, how long a command may take in all — the worker's
 * drain bound ({@link drainBoundMs}), then closing connections and
 * stopping what `dev` started — before the process exits whatever it is doing.
 */
const exitDeadlineMs = drainBoundMs + 5_000;

/** 128 + the signal's number, as shells report a process a signal ended: 130 for SIGINT, 143 for SIGTERM. */
function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + osConstants.signals[signal];
}

/**
 * Runs a command that must wind down rather than die on SIGINT/SIGTERM
 * (`crawl --wait`, `worker`, `dev`). The first signal is handed to it as
 * `stop`; it has {@link exitDeadlineMs} to finish, after which the process
 * exits anyway (1, TCRAWL_STOP_TIMEOUT). A second signal exits at once (130/143).
 */
async function stoppable(command: (stop: Stop) => Promise<number>): Promise<number> {
  let requested!: (signal: NodeJS.Signals) => void;
  const stop: { signal: NodeJS.Signals | undefined; requested: Promise<NodeJS.Signals> } = {
    signal: undefined,
    requested: new Promise((resolve) => (requested = resolve)),
  };
  let deadline: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal) {
      log(`${signal} again: exiting now.`);
      process.exit(signalExitCode(signal));
    }
    stop.signal = signal;
    requested(signal);
    log(`${signal}: stopping; this process's batches in flight get ${shutdownGraceMs / 1000} s to finish, then are cancelled and retried by Temporal. A second signal exits now.`);
    deadline = setTimeout(() => {
      log(`tcrawl: still stopping ${exitDeadlineMs / 1000} s after ${signal}; exiting without finishing. [TCRAWL_STOP_TIMEOUT]`);
      process.exit(1);
    }, exitDeadlineMs);
  };
  for (const signal of stopSignals) process.on(signal, onSignal);
  try {
    return await command(stop);
  } finally {
    for (const signal of stopSignals) process.off(signal, onSignal);
    clearTimeout(deadline);
  }
}

const stopSignals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

const abandonedBatches =
  `Batches still running ${drainBoundMs / 1000} s after the signal were left behind (cancellation could not reach them: is Postgres answering?). ` +
  'Their URLs stay leased to them until Temporal retries them on another worker, once their heartbeats time out.';

export async function statusCommand(crawlId: string, flags: { json?: boolean; watch?: boolean; interval?: number }): Promise<number> {
  if (flags.watch) return withClient((client) => watchCrawl(client, crawlId, { intervalSecs: flags.interval }));
  const status = await withClient((client) => crawlStatus(client, crawlId));
  const egress = await egressStatusOrNone(crawlId);
  const routes = formatEgressTable(egress);
  if (flags.json) process.stdout.write(`${JSON.stringify({ ...status, ...(egress.length > 0 ? { egress } : {}) })}\n`);
  else if (status.progress) process.stdout.write(`${status.status}\n${formatProgressLine(status.progress)}\n${formatHostTable(status.progress)}${routes}${formatTrouble(status)}`);
  else process.stdout.write(`${status.status}${status.status === 'RUNNING' ? ' (no worker answered the progress query)' : ''}\n${routes}${formatTrouble(status)}`);
  return status.status === 'FAILED' || status.status === 'TERMINATED' || status.status === 'TIMED_OUT' ? 1 : 0;
}

/** The crawl's egress routes and their health, from Postgres; none when it has none, or (said on stderr) when the database cannot be read. */
async function egressStatusOrNone(crawlId: string): Promise<EgressStatus[]> {
  try {
    return await withDatabase((pool) => egressStatus(pool, crawlId));
  } catch (error) {
    log(`(proxies' health not shown: ${(error as Error).message})`);
    return [];
  }
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
  const parts = [`per host ${perSecond(limits.rate)}`, `total ${perSecond(limits.totalRate)}`];
  for (const [host, rate] of Object.entries(limits.hostRates)) parts.push(`${host} ${perSecond(rate)}`);
  for (const group of limits.groups) parts.push(`group ${group.name} ${perSecond(group.rate)}`);
  return `Limits now: ${parts.join(', ')}`;
}

/** Runs `work` with a client of the configured (or local) Temporal server. */
export async function withClient<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const config = runtimeConfig();
  const address = config.temporalAddress ?? (await ensureTemporalServer({ config, detached: true, log })).address;
  const connection = await connectClient(address, config);
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

/** Seeds, and proxies the crawl goes through, on private addresses are refused up front (allowPrivate off); workers check every connection anyway. */
async function refusePrivateSeeds(spec: CrawlSpec): Promise<void> {
  for (const route of allRoutes(spec)) {
    if (route.kind !== 'proxy') continue;
    const refusal = privateLiteralError(new URL(route.url).hostname);
    if (refusal) throw new InvalidInputError(`Proxy ${route.url}: ${refusal.message}`, refusal.code);
  }
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

/**
 * Whether a worker serves the crawl: one polled lately, and one answers the crawl's progress query. A
 * poller is listed for a while after its process is gone (the worker of a `crawl --wait` that has just
 * exited), so a poller alone is no proof: a crawl waiting on one would wait forever.
 */
async function workerServes(client: Client, config: RuntimeConfig, crawlId: string): Promise<boolean> {
  if (!(await hasLiveWorkers(client, config))) return false;
  return (await crawlStatus(client, crawlId, workerAnswerTimeoutMs).catch(() => null))?.progress != null;
}

/** How long a live worker may take to answer a progress query (a busy fleet's workflow task slots are full). */
const workerAnswerTimeoutMs = 15_000;

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


