import { randomUUID } from 'node:crypto';
import {
  CancelledFailure,
  isGrpcServiceError,
  WorkflowFailedError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import type { CrawlInput, CrawlProgress, CrawlSummary, RequeueFilter, SetRateRequest } from './crawl-types';
import type { CrawlSpec } from './spec';
import { scopeRulesFor } from './scope';
import { InvalidInputError, TcrawlError } from './errors';
import { hostOf } from './url';
import { workflowIdFor } from '../workflows/workflow-ids';
import { crawlWorkflow, pauseUpdate, progressQuery, resumeUpdate, retryFailedUpdate, setRateUpdate } from '../workflows';
import { uiPaneMargin } from '../workflows/current-details';
import { crawlSearchAttributes } from '../workflows/search-attributes';

export { shardWorkflowIdFor, workflowIdFor } from '../workflows/workflow-ids';

/**
 * Starts a new crawl. A crawl id names one crawl: an id that was used before
 * (running or finished) is refused with `TCRAWL_CRAWL_EXISTS`; re-running
 * what failed is a new execution of that crawl, not a new start.
 */
export async function startCrawl(
  client: Client,
  taskQueue: string,
  crawlId: string,
  spec: CrawlSpec,
  options: StartOptions = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof crawlWorkflow>> {
  const { seeds, ...settings } = spec;
  const { searchAttributes = false, ...inputOptions } = options;
  try {
    return await client.workflow.start(crawlWorkflow, {
      taskQueue,
      workflowId: workflowIdFor(crawlId),
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      args: [{ crawlId, token: randomUUID(), seeds, settings, scope: scopeRulesFor(spec), ...inputOptions }],
      ...crawlMetadata(crawlId, spec, searchAttributes, 'seeding'),
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) throw crawlExistsError(crawlId);
    throw error;
  }
}

export interface StartOptions extends Pick<CrawlInput, 'continueAsNewAfterBatches'> {
  /** Start with tcrawl's search attributes, so the workflow keeps them up to date (they must be registered: `tcrawl setup`). @default false */
  searchAttributes?: boolean;
}

/**
 * Starts a new execution of a crawl that has run before (same workflow id, same
 * token, its stored spec): to go on after a cancel, or to re-queue its failed
 * URLs first (`retryFailed`). Refused while an execution runs.
 */
export async function startRerun(
  client: Client,
  taskQueue: string,
  stored: { crawlId: string; token: string | undefined; spec: CrawlSpec },
  options: { retryFailed?: RequeueFilter; searchAttributes?: boolean },
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof crawlWorkflow>> {
  const { crawlId, token, spec } = stored;
  const { seeds: _seeds, ...settings } = spec;
  return client.workflow.start(crawlWorkflow, {
    taskQueue,
    workflowId: workflowIdFor(crawlId),
    workflowIdReusePolicy: 'ALLOW_DUPLICATE',
    args: [{ crawlId, token, settings, scope: scopeRulesFor(spec), retryFailed: options.retryFailed }],
    ...crawlMetadata(crawlId, spec, options.searchAttributes ?? false, 'crawling', options.retryFailed ? 'retry failed' : 'resumed'),
  });
}

/** A rate as people read it: `2/s`, or `unlimited` for 0. */
export function perSecond(rate: number): string {
  return rate > 0 ? `${rate}/s` : 'unlimited';
}

/** What the Web UI shows of a crawl before it has done anything: its summary, seeds and limits, and its search attributes. */
function crawlMetadata(crawlId: string, spec: CrawlSpec, searchAttributes: boolean, phase: string, rerun?: string) {
  const more = spec.seeds.length > 1 ? ` (+${spec.seeds.length - 1} more)` : '';
  const staticSummary = `tcrawl ${crawlId}${rerun ? ` (${rerun})` : ''}: ${spec.seeds[0]}${more}`;
  const shownSeeds = spec.seeds.slice(0, 20).map((seed) => `- ${seed}`);
  if (spec.seeds.length > 20) shownSeeds.push(`- … ${spec.seeds.length - 20} more`);
  const staticDetails = [
    `**Seeds**`,
    ...shownSeeds,
    '',
    `**Limits**: max pages ${spec.maxPages} · max depth ${spec.maxDepth} · scope ${spec.scope} · rate ${perSecond(spec.rate)} per host` +
      ` · total rate ${perSecond(spec.totalRate)} · concurrency ${spec.concurrency} per host · throttle ${spec.throttle}`,
  ].join('\n') + uiPaneMargin;
  const typedSearchAttributes: SearchAttributePair[] = [
    { key: crawlSearchAttributes.crawlId, value: crawlId },
    { key: crawlSearchAttributes.seedHost, value: hostOf(spec.seeds[0]) },
    { key: crawlSearchAttributes.phase, value: phase },
  ];
  return { staticSummary, staticDetails, ...(searchAttributes ? { typedSearchAttributes } : {}) };
}

/** The refusal of a crawl id that names a crawl already. */
export function crawlExistsError(crawlId: string): InvalidInputError {
  return new InvalidInputError(
    `Crawl id "${crawlId}" is taken: a crawl id names one crawl. Start a new crawl with another --id (or none, for a generated one); ` +
      `to fetch again what failed in that crawl, use \`tcrawl retry-failed ${crawlId}\`.`,
    'TCRAWL_CRAWL_EXISTS',
  );
}

/**
 * The crawl's result, waiting through Temporal outages: the crawl lives on in
 * the server's database, so a lost connection is not the crawl failing (the
 * client's own retries give up after about half a minute).
 */
export async function awaitCrawlResult(client: Client, crawlId: string, onOutage: (error: Error) => void): Promise<CrawlSummary> {
  for (;;) {
    try {
      return await crawlHandle(client, crawlId).result();
    } catch (error) {
      if (error instanceof WorkflowFailedError && error.cause instanceof CancelledFailure) {
        throw new CrawlCancelledError(crawlId, finalSummaryOf(await crawlHandle(client, crawlId).describe()));
      }
      if (!isServerUnreachable(error)) throw error;
      onOutage(error as Error);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

/** The result of a cancelled crawl. */
export class CrawlCancelledError extends TcrawlError {
  constructor(
    readonly crawlId: string,
    /** The figures the crawl had when it wound down (null for a crawl cancelled before v2). */
    readonly summary: CrawlSummary | null,
  ) {
    super('TCRAWL_CRAWL_CANCELLED', `Crawl "${crawlId}" was cancelled; \`tcrawl resume ${crawlId}\` goes on from where it stopped.`);
  }
}

/** gRPC UNAVAILABLE or DEADLINE_EXCEEDED, possibly wrapped (ServiceError's cause). */
function isServerUnreachable(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (isGrpcServiceError(e) && (e.code === 14 || e.code === 4)) return true;
  }
  return false;
}

export interface CrawlStatus {
  crawlId: string;
  /** The latest execution's run id (a re-run is a new execution of the crawl's workflow id). */
  runId: string;
  /** The task queue its workers must poll. */
  taskQueue: string;
  /** Temporal's execution status: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, CONTINUED_AS_NEW. */
  status: string;
  progress: CrawlProgress | CrawlSummary | null;
  /** Activities being retried now (attempt ≥ 2), with why their last attempt failed: what a crawl is waiting out. */
  retrying: RetryingActivity[];
}

export interface RetryingActivity {
  /** `crawlBatch`, `seedFrontier`, … */
  activity: string;
  /** 1-based: 3 means two attempts failed before this one. */
  attempt: number;
  lastFailure: string | null;
}

/**
 * Changes a limit of a running crawl through a Temporal update: validated by
 * the workflow (bad input is rejected with its reason) and acknowledged once
 * the schedule uses it. Needs a worker to answer within `timeoutMs`.
 */
export function setCrawlRate(client: Client, crawlId: string, request: SetRateRequest, timeoutMs = 10_000): Promise<CrawlProgress['limits']> {
  return steer(client, crawlId, 'set-rate', 'TCRAWL_INVALID_RATE', (handle) => handle.executeUpdate(setRateUpdate, { args: [request] }), timeoutMs);
}

/** Pauses a running crawl: no new batches, those in flight finish. Acknowledged by the workflow (needs a worker). */
export function pauseCrawl(client: Client, crawlId: string, timeoutMs = 10_000): Promise<CrawlProgress> {
  return steer(client, crawlId, 'pause', 'TCRAWL_STEERING_REFUSED', (handle) => handle.executeUpdate(pauseUpdate), timeoutMs);
}

/** Resumes a paused crawl that is still running (a cancelled one: {@link startRerun}). */
export function resumeCrawl(client: Client, crawlId: string, timeoutMs = 10_000): Promise<CrawlProgress> {
  return steer(client, crawlId, 'resume', 'TCRAWL_STEERING_REFUSED', (handle) => handle.executeUpdate(resumeUpdate), timeoutMs);
}

/** Re-queues failed URLs in a running crawl; answers once they are queued. */
export function retryFailedInRunningCrawl(client: Client, crawlId: string, filter: RequeueFilter, timeoutMs = 60_000): Promise<{ requeued: number }> {
  return steer(client, crawlId, 'retry-failed', 'TCRAWL_STEERING_REFUSED', (handle) => handle.executeUpdate(retryFailedUpdate, { args: [filter] }), timeoutMs);
}

/**
 * Runs an update on a running crawl: validated by the workflow (a refusal is
 * bad input, with the workflow's reason) and answered by a worker within `timeoutMs`.
 */
async function steer<T>(
  client: Client,
  crawlId: string,
  what: string,
  refusedCode: string,
  update: (handle: ReturnType<typeof crawlHandle>) => Promise<T>,
  timeoutMs: number,
): Promise<T> {
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new TcrawlError('TCRAWL_NO_WORKER', `${what}: no worker answered within ${timeoutMs / 1000} s. Is one running for this crawl's task queue (tcrawl worker)?`)), timeoutMs).unref(),
  );
  try {
    return await Promise.race([update(crawlHandle(client, crawlId)), timeout]);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new InvalidInputError(`No running crawl with id "${crawlId}"`, 'TCRAWL_UNKNOWN_CRAWL');
    if (error instanceof WorkflowUpdateFailedError) throw new InvalidInputError(`${what} refused: ${error.cause?.message ?? error.message}`, refusedCode);
    throw error;
  }
}

function crawlHandle(client: Client, crawlId: string) {
  return client.workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId));
}

/**
 * Cancels a running crawl and waits (at most `timeoutMs`) until it has wound
 * down: its batches stopped, their leases back in the queue. Returns the
 * final summary the workflow left in its memo (null if it ended otherwise).
 */
export async function cancelCrawl(client: Client, crawlId: string, timeoutMs = 120_000): Promise<CrawlSummary | null> {
  const handle = crawlHandle(client, crawlId);
  const description = await describeCrawl(client, crawlId);
  if (description.status.name !== 'RUNNING') throw new InvalidInputError(`Crawl "${crawlId}" is not running (${description.status.name})`, 'TCRAWL_NOT_RUNNING');
  await handle.cancel();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await handle.describe();
    if (now.status.name !== 'RUNNING') return finalSummaryOf(now);
    if (Date.now() > deadline) {
      throw new TcrawlError('TCRAWL_NO_WORKER', `Crawl "${crawlId}" was asked to cancel but has not wound down within ${timeoutMs / 1000} s: is a worker running for its task queue? It ends once one is.`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function describeCrawl(client: Client, crawlId: string) {
  try {
    return await crawlHandle(client, crawlId).describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new InvalidInputError(`No crawl with id "${crawlId}"`, 'TCRAWL_UNKNOWN_CRAWL');
    throw error;
  }
}

/** The summary a cancelled crawl's workflow left in its memo (since v2). */
function finalSummaryOf(description: { memo?: Record<string, unknown> }): CrawlSummary | null {
  return (description.memo?.summary as CrawlSummary | undefined) ?? null;
}

/** The crawl's state: its result when finished, else a live query answered by a worker. */
export async function crawlStatus(client: Client, crawlId: string, queryTimeoutMs = 5000): Promise<CrawlStatus> {
  const handle = crawlHandle(client, crawlId);
  const description = await describeCrawl(client, crawlId);
  const status = description.status.name;
  const { runId, taskQueue } = description;
  if (status === 'COMPLETED') return { crawlId, runId, taskQueue, status, progress: await handle.result(), retrying: [] };
  if (status !== 'RUNNING') return { crawlId, runId, taskQueue, status, progress: finalSummaryOf(description), retrying: [] };
  const progress = await queryProgress(client, crawlId, queryTimeoutMs);
  const retrying = (description.raw.pendingActivities ?? [])
    .filter((activity) => (activity.attempt ?? 1) > 1)
    .map((activity) => ({ activity: activity.activityType?.name ?? '?', attempt: activity.attempt ?? 1, lastFailure: activity.lastFailure?.message ?? null }));
  return { crawlId, runId, taskQueue, status, progress, retrying };
}

/**
 * The running crawl's progress, answered by a worker; null if none answers
 * within `timeoutMs`. One call, so that an abort signal around it (see
 * `Connection.withAbortSignal`) is in place before the call starts.
 */
export function queryProgress(client: Client, crawlId: string, timeoutMs = 5000): Promise<CrawlProgress | null> {
  // A deadline, not a race with a timer: a query left running would be retried after the caller
  // closes the connection, and crash it ("Channel has been shut down").
  return client.connection.withDeadline(Date.now() + timeoutMs, () => crawlHandle(client, crawlId).query(progressQuery)).catch(() => null);
}
