import { randomUUID } from 'node:crypto';
import {
  isGrpcServiceError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import type { CrawlInput, CrawlProgress, CrawlSummary, SetRateRequest } from './crawl-types';
import type { CrawlSpec } from './spec';
import { scopeRulesFor } from './scope';
import { InvalidInputError } from './errors';
import { crawlWorkflow, progressQuery, setRateUpdate } from '../workflows';

export function workflowIdFor(crawlId: string): string {
  return `crawl-${crawlId}`;
}

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
  options: Pick<CrawlInput, 'continueAsNewAfterBatches'> = {},
): Promise<WorkflowHandleWithFirstExecutionRunId<typeof crawlWorkflow>> {
  const { seeds, ...settings } = spec;
  try {
    return await client.workflow.start(crawlWorkflow, {
      taskQueue,
      workflowId: workflowIdFor(crawlId),
      workflowIdReusePolicy: 'REJECT_DUPLICATE',
      args: [{ crawlId, token: randomUUID(), seeds, settings, scope: scopeRulesFor(spec), ...options }],
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) throw crawlExistsError(crawlId);
    throw error;
  }
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
      return await client.workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId)).result();
    } catch (error) {
      if (!isServerUnreachable(error)) throw error;
      onOutage(error as Error);
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
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
export async function setCrawlRate(client: Client, crawlId: string, request: SetRateRequest, timeoutMs = 10_000): Promise<CrawlProgress['limits']> {
  const handle = client.workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId));
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`No worker answered within ${timeoutMs / 1000} s: is one running for this crawl's task queue?`)), timeoutMs).unref(),
  );
  try {
    return await Promise.race([handle.executeUpdate(setRateUpdate, { args: [request] }), timeout]);
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new InvalidInputError(`No running crawl with id "${crawlId}"`, 'TCRAWL_UNKNOWN_CRAWL');
    if (error instanceof WorkflowUpdateFailedError) throw new InvalidInputError(`set-rate refused: ${error.cause?.message ?? error.message}`, 'TCRAWL_INVALID_RATE');
    throw error;
  }
}

/** The crawl's state: its result when finished, else a live query answered by a worker. */
export async function crawlStatus(client: Client, crawlId: string, queryTimeoutMs = 5000): Promise<CrawlStatus> {
  const handle = client.workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId));
  let description;
  try {
    description = await handle.describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) throw new InvalidInputError(`No crawl with id "${crawlId}"`, 'TCRAWL_UNKNOWN_CRAWL');
    throw error;
  }
  const status = description.status.name;
  if (status === 'COMPLETED') return { crawlId, status, progress: await handle.result(), retrying: [] };
  if (status !== 'RUNNING') return { crawlId, status, progress: null, retrying: [] };
  // A deadline, not a race with a timer: a query left running would be retried after the caller
  // closes the connection, and crash it ("Channel has been shut down").
  const progress = await client.connection.withDeadline(Date.now() + queryTimeoutMs, () => handle.query(progressQuery)).catch(() => null);
  const retrying = (description.raw.pendingActivities ?? [])
    .filter((activity) => (activity.attempt ?? 1) > 1)
    .map((activity) => ({ activity: activity.activityType?.name ?? '?', attempt: activity.attempt ?? 1, lastFailure: activity.lastFailure?.message ?? null }));
  return { crawlId, status, progress, retrying };
}
