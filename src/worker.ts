import { setTimeout as sleep } from 'node:timers/promises';
import { NativeConnection, Runtime, Worker, type ActivityInterceptors } from '@temporalio/worker';
import type { Pool } from 'pg';
import { createActivities } from '../activities';
import { CrawlMetrics } from '../activities/crawl-metrics';
import { closeEgressDispatchers } from '../activities/egress-dispatcher';
import { EgressHealth } from '../activities/egress-health';
import { closeAgents } from '../activities/http-agent';
import { workflowCodeOptions } from './workflow-code';

/**
 * How long a stopping worker lets its batches in flight run on before it
 * cancels them. A batch near its end finishes and reports as usual; a
 * cancelled one stops its fetches and paced sleeps at once, and Temporal
 * retries it under the same batch id, which gets the same lease back (what
 * it had saved is reported, not fetched again).
 */
export const shutdownGraceMs = 10_000;

/**
 * How long after a stop request {@link runWorkerUntil} waits for the worker
 * at all. A batch that cancellation cannot reach — a query to a Postgres
 * that stopped answering cannot be aborted — would hold the SDK's shutdown
 * forever; it is left behind instead, its URLs still leased under its batch
 * id, and once its heartbeat times out (10 s) Temporal retries it on another
 * worker, which gets them back.
 */
export const drainBoundMs = 15_000;

export interface CrawlWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  /** Batches this worker runs at once (each fetches up to its own concurrency). @default {@link defaultMaxConcurrentBatches} */
  maxConcurrentBatches?: number;
  /** Modules exporting workflow `interceptors` (tests build workflow variants with them); bundled with the workflow code at start. */
  workflowInterceptorModules?: string[];
}

/**
 * Batches a worker runs at once unless told otherwise: as many as one crawl
 * keeps in flight. A polite batch spends most of its life waiting for its
 * granted start in its slot, so slots, not CPU, were what a broad crawl ran
 * short of: `npm run bench:broad` (100 hosts at 2/s) went from 25.8 to 86.2
 * pages/s when the default went from 8 to 32, batches no longer queueing
 * 1.7 s for a slot.
 */
export const defaultMaxConcurrentBatches = 32;

/** What a worker's activities keep beyond its pool, let go once it has stopped (see {@link runWorkerUntil}). */
const releasers = new WeakMap<Worker, () => Promise<void>>();

/**
 * A worker that runs crawl workflows and their batches. On `shutdown()` its
 * batches in flight get {@link shutdownGraceMs} to finish, then are cancelled.
 * Compiled, it runs the workflow bundle `npm run build` made, and throws
 * `TCRAWL_NOT_BUILT` or `TCRAWL_STALE_BUILD` when that bundle is missing or
 * not of this code; from the TypeScript sources it bundles them (see
 * workflow-code.ts).
 */
export async function createCrawlWorker({ connection, namespace, taskQueue, pool, maxConcurrentBatches = defaultMaxConcurrentBatches, workflowInterceptorModules }: CrawlWorkerOptions): Promise<Worker> {
  const egress = new EgressHealth(pool);
  const code = workflowCodeOptions(workflowInterceptorModules);
  const worker = await Worker.create({
    connection,
    namespace,
    taskQueue,
    ...code,
    // On the runtime's meter: served by its Prometheus endpoint when the runtime has one (tcrawl worker --metrics-port).
    activities: createActivities({ pool, egress, metrics: new CrawlMetrics(Runtime.instance().metricMeter) }),
    maxConcurrentActivityTaskExecutions: maxConcurrentBatches,
    interceptors: { ...code.interceptors, activity: [crawlLogAttributes] },
    shutdownGraceTime: shutdownGraceMs,
  });
  // The request counts gathered since the last sync are written while the pool is still open.
  releasers.set(worker, () => egress.close());
  return worker;
}

/**
 * Every log line of an activity carries the crawl and the batch it works
 * for, beside what the SDK adds (`workflowId`, `activityType`, `attempt`, …):
 * read from the activity's one input object (every tcrawl activity takes a
 * crawl's `crawlId`; batches a `batchId` and their hosts, space-separated in
 * `hosts`). Lines about one URL add its `host`. The SDK's "Activity started"
 * comes before the input is seen, and has only its own.
 */
function crawlLogAttributes(): ActivityInterceptors {
  let attributes: Record<string, unknown> = {};
  return {
    inbound: {
      execute(input, next) {
        attributes = logAttributesOf(input.args[0]);
        return next(input);
      },
    },
    outbound: {
      getLogAttributes: (input, next) => next({ ...input, ...attributes }),
    },
  };
}

/** `crawlId`, `batchId` and `hosts` of an activity's input, those it has. */
function logAttributesOf(input: unknown): Record<string, string> {
  const { crawlId, batchId, host, hosts } = (input ?? {}) as { crawlId?: unknown; batchId?: unknown; host?: unknown; hosts?: unknown };
  const attributes: Record<string, string> = {};
  if (typeof crawlId === 'string') attributes.crawlId = crawlId;
  if (typeof batchId === 'string') attributes.batchId = batchId;
  // A window batch's grants, or a v2 batch's one host.
  if (Array.isArray(hosts)) attributes.hosts = hosts.map((grant: { host?: unknown }) => String(grant.host)).join(' ');
  else if (typeof host === 'string') attributes.hosts = host;
  return attributes;
}

/** Workers of this process running under {@link runWorkerUntil}: the HTTP agents and egress dispatchers are theirs together. */
let running = 0;

/**
 * A stopped worker lets go of what it held: its egress health (pending
 * request counts written), and — the last of this process's workers to
 * stop — the shared HTTP agents and egress dispatchers, whose pooled
 * connections to sites and proxies would otherwise stay open until they
 * time out (a proxy sees a worker that stopped keep its connections).
 */
async function release(worker: Worker): Promise<void> {
  await releasers.get(worker)?.();
  if (running > 0) return;
  await Promise.all([closeEgressDispatchers(), closeAgents()]);
}

/** How a worker's run ended: `abandoned` when batches were still running at the drain bound. */
export type Drain = 'drained' | 'abandoned';

/**
 * Runs `worker` until `until` settles, then shuts it down and waits at most
 * {@link drainBoundMs} for it to stop. The SDK's `shutdownForceTime` cannot
 * bound this: its shutdown still waits for every batch to return. So on
 * `abandoned` the worker is left as it is, holding its connection and the
 * abandoned batches' pool clients, and the caller should exit the process —
 * that is what ends those batches. A drained worker has let go of its HTTP
 * connections (see `release`) before this returns; the caller closes the
 * Temporal connection and the pool.
 */
export async function runWorkerUntil(worker: Worker, until: Promise<unknown>): Promise<Drain> {
  running++;
  const ran = worker.run().finally(() => running--);
  const settled = until.then(
    () => undefined,
    () => undefined,
  );
  const bound = new AbortController();
  const abandoned = settled.then(() => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    return sleep(drainBoundMs, 'abandoned' as const, { signal: bound.signal });
  });
  abandoned.catch(() => undefined); // Aborted when the worker stopped in time.
  try {
    const drain = await Promise.race([ran.then(() => 'drained' as const), abandoned]);
    if (drain === 'drained') await release(worker);
    return drain;
  } finally {
    bound.abort();
  }
}
