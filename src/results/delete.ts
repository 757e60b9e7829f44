import { setTimeout as sleep } from 'node:timers/promises';
import { isGrpcServiceError, WorkflowNotFoundError, type Client, type WorkflowExecutionDescription, type WorkflowHandle } from '@temporalio/client';
import type { Pool } from 'pg';
import { withTransaction } from '../../activities/frontier-store';
import { crawlWorkflow } from '../../workflows';
import { shardWorkflowIdFor, workflowIdFor } from '../client';
import { InvalidInputError } from '../errors';

/**
 * Deleting crawls: their rows in every table and every execution of their
 * workflow (`crawl-<id>`), so the id can be used again and retention can
 * keep a database small.
 */

/** Every table holding a crawl's rows (src/infra/database.ts). */
export const crawlTables = ['items', 'bodies', 'pages', 'links', 'robots', 'frontier', 'crawls'] as const;
export type CrawlTable = (typeof crawlTables)[number];

export interface CrawlDeletion {
  crawlId: string;
  /** Rows deleted per table (in a dry run: the rows there are). */
  rows: Record<CrawlTable, number>;
  /** Run ids of the workflow executions deleted (in a dry run: those there are). */
  executions: string[];
  /** How a running crawl was stopped first (`force`): cancelled, or terminated when no worker processed the cancellation. */
  stopped: 'cancelled' | 'terminated' | null;
}

export interface DeleteCrawlOptions {
  /** Cancel a running crawl first instead of refusing. @default false */
  force?: boolean;
  /** Count what would be deleted; change nothing. @default false */
  dryRun?: boolean;
  /** How long a cancellation may take before the crawl is terminated instead, in ms. @default 30000 */
  cancelTimeoutMs?: number;
  /** Progress messages (cancelling, terminating, waiting). @default none */
  log?: (line: string) => void;
}

/**
 * A batch still running on a worker learns that its crawl was terminated at its
 * next heartbeat — at most 80% of the batch heartbeat timeout (10 s) apart,
 * as the SDK throttles them — and stops; rows it writes until then would
 * outlive a delete done at once. So a forced delete waits this long after
 * the crawl closed before deleting its rows.
 */
export const stoppedBatchesNoticeMs = 12_000;

/**
 * Deletes one crawl: its rows in every table, in one transaction (it takes
 * row locks on that crawl's rows only, so other crawls go on), then each
 * execution of its workflow. A running crawl is refused with
 * `TCRAWL_CRAWL_RUNNING`, unless `force`: then it is cancelled — which needs
 * a worker to process it — and terminated if it is not closed within
 * `cancelTimeoutMs`.
 *
 * Executions are found through Temporal's visibility store, which is
 * eventually consistent: a run started a moment ago may not be listed yet
 * (delete again to catch it); the current run is always found. Temporal
 * deletes them in the background once asked (20–35 s on a dev server):
 * until then a new crawl with this id is refused.
 *
 * @throws InvalidInputError `TCRAWL_UNKNOWN_CRAWL` when neither the database nor Temporal knows the crawl,
 *   `TCRAWL_CRAWL_RUNNING` when it runs and `force` is not set.
 */
export async function deleteCrawl(pool: Pool, client: Client, crawlId: string, options: DeleteCrawlOptions = {}): Promise<CrawlDeletion> {
  const handle = client.workflow.getHandle(workflowIdFor(crawlId));
  let latest = await describeLatest(handle);
  let stopped: CrawlDeletion['stopped'] = null;
  if (latest?.status.name === 'RUNNING') {
    if (!options.force) throw crawlRunningError(crawlId);
    if (!options.dryRun) {
      stopped = await stopCrawl(handle, crawlId, options);
      latest = await describeLatest(handle);
    }
  }
  const executions = await executionsOf(client, handle.workflowId, latest);
  // A sharded crawl's shards are workflows of their own (cancelled or terminated with it, above).
  const shards = await shardsOf(pool, crawlId);
  const shardExecutions: Array<{ workflowId: string; runId: string }> = [];
  for (let index = 0; shards > 1 && index < shards; index++) {
    const workflowId = shardWorkflowIdFor(crawlId, index);
    for (const runId of await executionsOf(client, workflowId, null)) shardExecutions.push({ workflowId, runId });
  }
  const rows = options.dryRun ? await countRows(pool, crawlId) : await deleteCrawlRows(pool, crawlId);
  if (!latest && executions.length === 0 && Object.values(rows).every((n) => n === 0)) {
    throw new InvalidInputError(`No crawl with id "${crawlId}": neither this database nor Temporal knows it (check the id, DATABASE_URL and TEMPORAL_ADDRESS)`, 'TCRAWL_UNKNOWN_CRAWL');
  }
  if (!options.dryRun) {
    for (const runId of executions) await deleteExecution(client, handle.workflowId, runId);
    for (const { workflowId, runId } of shardExecutions) await deleteExecution(client, workflowId, runId);
  }
  return { crawlId, rows, executions, stopped };
}

/** The refusal to delete a running crawl. */
export function crawlRunningError(crawlId: string): InvalidInputError {
  return new InvalidInputError(
    `Crawl ${crawlId} is running: stop it first with \`tcrawl cancel ${crawlId}\`, or use \`tcrawl delete ${crawlId} --force\` to cancel it and then delete it`,
    'TCRAWL_CRAWL_RUNNING',
  );
}

async function describeLatest(handle: WorkflowHandle): Promise<WorkflowExecutionDescription | null> {
  try {
    return await handle.describe();
  } catch (error) {
    if (error instanceof WorkflowNotFoundError) return null;
    throw error;
  }
}

async function stopCrawl(handle: WorkflowHandle, crawlId: string, options: DeleteCrawlOptions): Promise<'cancelled' | 'terminated'> {
  const log = options.log ?? (() => undefined);
  const timeoutMs = options.cancelTimeoutMs ?? 30_000;
  log(`Crawl ${crawlId} is running: cancelling it (a worker must process the cancellation)…`);
  await handle.cancel();
  let stopped: 'cancelled' | 'terminated' = 'cancelled';
  if (!(await closedWithin(handle, timeoutMs))) {
    log(`No worker processed the cancellation within ${timeoutMs / 1000} s (is one running for its task queue?): terminating crawl ${crawlId} instead.`);
    await handle.terminate(`tcrawl delete --force: the cancellation was not processed within ${timeoutMs / 1000} s`).catch((error: unknown) => {
      // Closed between the last look and now: the cancellation went through after all.
      if (!(error instanceof WorkflowNotFoundError)) throw error;
    });
    stopped = (await describeLatest(handle))?.status.name === 'TERMINATED' ? 'terminated' : 'cancelled';
  }
  // A cancelled crawl closes only once its batches have stopped (workflow v2); a terminated one's may still run.
  if (stopped === 'terminated') {
    log(`Crawl ${crawlId} terminated; waiting ${stoppedBatchesNoticeMs / 1000} s for batches still running on workers to notice before deleting its rows…`);
    await sleep(stoppedBatchesNoticeMs);
  }
  return stopped;
}

async function closedWithin(handle: WorkflowHandle, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if ((await describeLatest(handle))?.status.name !== 'RUNNING') return true;
    if (Date.now() >= deadline) return false;
    await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
  }
}

/** How many shards the crawl's stored spec splits it over; 1 when unsharded, or when there is no row or no valid spec left. */
async function shardsOf(pool: Pool, crawlId: string): Promise<number> {
  const { rows } = await pool.query<{ shards: unknown }>(`SELECT spec->'shards' AS shards FROM crawls WHERE crawl_id = $1`, [crawlId]);
  const shards = rows[0]?.shards;
  return Number.isInteger(shards) && (shards as number) > 1 ? (shards as number) : 1;
}

/** Run ids of every execution of the workflow id: what visibility lists, plus the current run. */
async function executionsOf(client: Client, workflowId: string, latest: WorkflowExecutionDescription | null): Promise<string[]> {
  const runs = new Set<string>();
  for await (const execution of client.workflow.list({ query: `WorkflowId = ${visibilityString(workflowId)}` })) runs.add(execution.runId);
  if (latest) runs.add(latest.runId);
  return [...runs];
}

async function deleteExecution(client: Client, workflowId: string, runId: string): Promise<void> {
  try {
    await client.workflowService.deleteWorkflowExecution({ namespace: client.options.namespace, workflowExecution: { workflowId, runId } });
  } catch (error) {
    // Already gone (deleted by an earlier attempt, or by the namespace's retention): what we wanted.
    if (isGrpcServiceError(error) && error.code === 5 /* NOT_FOUND */) return;
    throw error;
  }
}

/**
 * Deletes the crawl's rows in every table, in one transaction, and returns
 * how many each held. Leaves its workflow executions alone (see {@link deleteCrawl}).
 */
export async function deleteCrawlRows(pool: Pool, crawlId: string): Promise<Record<CrawlTable, number>> {
  return withTransaction(pool, async (db) => {
    const rows = {} as Record<CrawlTable, number>;
    for (const table of crawlTables) rows[table] = (await db.query(`DELETE FROM ${table} WHERE crawl_id = $1`, [crawlId])).rowCount ?? 0;
    return rows;
  });
}

async function countRows(pool: Pool, crawlId: string): Promise<Record<CrawlTable, number>> {
  const counts = crawlTables.map((table) => `(SELECT count(*)::int FROM ${table} WHERE crawl_id = $1) AS ${table}`).join(', ');
  const { rows } = await pool.query<Record<CrawlTable, number>>(`SELECT ${counts}`, [crawlId]);
  return rows[0];
}

/** A string literal of Temporal's visibility query language. */
function visibilityString(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** Why retention picked a crawl, and when that was. */
export interface RetentionMatch {
  crawlId: string;
  /** `closed`: its latest execution closed at `at`; `no_workflow`: Temporal has no execution left, its row was created at `at`. */
  why: 'closed' | 'no_workflow';
  at: Date;
}

/**
 * The crawls retention may delete: each crawl whose latest execution
 * closed before `before` (among executions on `taskQueue`, so another
 * deployment sharing the namespace is left alone), and each crawl of this
 * database created before `before` that has no execution left (Temporal's
 * retention removed it). A crawl whose latest execution is running, or
 * closed later, is never picked. Oldest first.
 */
export async function crawlsFinishedBefore(pool: Pool, client: Client, before: Date, options: { taskQueue: string }): Promise<RetentionMatch[]> {
  const candidates = new Map<string, Date | null>();
  const query = `WorkflowType = ${visibilityString(crawlWorkflow.name)} AND TaskQueue = ${visibilityString(options.taskQueue)} AND CloseTime < ${visibilityString(before.toISOString())}`;
  for await (const execution of client.workflow.list({ query })) {
    if (execution.workflowId.startsWith(workflowIdFor(''))) candidates.set(execution.workflowId.slice(workflowIdFor('').length), null);
  }
  const { rows } = await pool.query<{ crawl_id: string; created_at: Date }>('SELECT crawl_id, created_at FROM crawls WHERE created_at < $1', [before]);
  for (const row of rows) candidates.set(row.crawl_id, row.created_at);
  const matches: RetentionMatch[] = [];
  for (const [crawlId, createdAt] of candidates) {
    // Visibility's statuses lag; the latest execution's own description does not.
    const latest = await describeLatest(client.workflow.getHandle(workflowIdFor(crawlId)));
    if (latest === null) {
      if (createdAt !== null) matches.push({ crawlId, why: 'no_workflow', at: createdAt });
    } else if (latest.status.name !== 'RUNNING' && latest.closeTime !== undefined && latest.closeTime < before) {
      matches.push({ crawlId, why: 'closed', at: latest.closeTime });
    }
  }
  return matches.sort((a, b) => a.at.getTime() - b.at.getTime());
}

/**
 * Retention: deletes (or with `dryRun`, counts) every crawl
 * {@link crawlsFinishedBefore} picks. A crawl started again in the meantime
 * is refused by {@link deleteCrawl} and left out, with a message.
 */
export async function deleteCrawlsFinishedBefore(
  pool: Pool,
  client: Client,
  before: Date,
  options: { taskQueue: string; dryRun?: boolean; log?: (line: string) => void },
): Promise<Array<RetentionMatch & CrawlDeletion>> {
  const deleted: Array<RetentionMatch & CrawlDeletion> = [];
  for (const match of await crawlsFinishedBefore(pool, client, before, options)) {
    try {
      deleted.push({ ...match, ...(await deleteCrawl(pool, client, match.crawlId, { dryRun: options.dryRun })) });
    } catch (error) {
      if (!(error instanceof InvalidInputError && error.code === 'TCRAWL_CRAWL_RUNNING')) throw error;
      options.log?.(`Crawl ${match.crawlId} was started again since: left as it is.`);
    }
  }
  return deleted;
}
