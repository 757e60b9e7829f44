import { isGrpcServiceError, type Client, type WorkflowExecutionInfo } from '@temporalio/client';
import { InvalidInputError } from '../errors';
import { crawlSearchAttributes } from '../../workflows/search-attributes';

/**
 * A crawl's execution status, spelled as the Temporal Web UI shows it
 * (in a visibility query, `ExecutionStatus = "Canceled"` is Cancelled's spelling).
 */
export type CrawlExecutionStatus = 'Running' | 'Completed' | 'Failed' | 'Cancelled' | 'Terminated' | 'TimedOut' | 'ContinuedAsNew' | 'Paused' | 'Unknown';

/** Which crawls {@link listCrawls} returns, by their latest execution's status. */
export type CrawlStatusFilter = 'running' | 'finished' | 'failed';

export interface ListCrawlsOptions {
  /**
   * `running`: Running; `finished`: Completed; `failed`: Failed, Terminated
   * or TimedOut (Cancelled is a user's decision, not a failure: it is in none
   * of them). @default all statuses
   */
  status?: CrawlStatusFilter;
  /** Crawls returned at most. @default 50 */
  limit?: number;
  /**
   * A Temporal visibility query ANDed with the others, e.g. `TcrawlPhase = "paused"`
   * or `TcrawlSaved > 1000`. Naming `ExecutionStatus` in it lets executions that
   * continued as new through, which are otherwise left out.
   */
  query?: string;
}

/** One crawl, as its latest execution shows it. */
export interface CrawlListRow {
  crawlId: string;
  workflowId: string;
  /** The latest execution's run id. */
  runId: string;
  status: CrawlExecutionStatus;
  /** The search attributes of the execution; null when it does not carry them (workflows before version 2). */
  phase: string | null;
  saved: number | null;
  queued: number | null;
  failed: number | null;
  /** The first seed's host[:port]. */
  seedHost: string | null;
  taskQueue: string;
  startedAt: Date;
  closedAt: Date | null;
  /** closedAt − startedAt; null while running. */
  durationMs: number | null;
  /** Executions of this crawl id: re-runs and continue-as-new runs, this one included. */
  runs: number;
}

/** How many crawls at most may be asked for at once: each costs a count (and, with several runs, a describe). */
export const maxListLimit = 1000;

const statusNames: Record<WorkflowExecutionInfo['status']['name'], CrawlExecutionStatus> = {
  RUNNING: 'Running',
  COMPLETED: 'Completed',
  FAILED: 'Failed',
  CANCELLED: 'Cancelled',
  TERMINATED: 'Terminated',
  TIMED_OUT: 'TimedOut',
  CONTINUED_AS_NEW: 'ContinuedAsNew',
  PAUSED: 'Paused',
  UNSPECIFIED: 'Unknown',
  UNKNOWN: 'Unknown',
};

/** Visibility's spelling of each filter's statuses. */
const statusClauses: Record<CrawlStatusFilter, string> = {
  running: 'ExecutionStatus = "Running"',
  finished: 'ExecutionStatus = "Completed"',
  failed: 'ExecutionStatus IN ("Failed", "Terminated", "TimedOut")',
};

/**
 * The crawls the Temporal server knows, one per crawl id: its latest
 * execution. Order is the server's: running crawls first, newest first, then
 * the others by when they closed, most recent first (SQL visibility, the dev
 * server's, cannot ORDER BY). A crawl is listed only if its latest execution
 * matches: a crawl that failed and was re-run is no longer `failed`.
 *
 * A query the server refuses is an {@link InvalidInputError} (`TCRAWL_INVALID_QUERY`)
 * naming the search attributes it knows.
 */
export async function listCrawls(client: Client, options: ListCrawlsOptions = {}): Promise<CrawlListRow[]> {
  const limit = options.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > maxListLimit) {
    throw new InvalidInputError(`The limit must be a whole number from 1 to ${maxListLimit}, not ${limit}`, 'TCRAWL_INVALID_LIMIT');
  }
  const query = visibilityQuery(options);
  try {
    return await collectLatest(client, query, limit);
  } catch (error) {
    const grpcError = grpcErrorOf(error);
    if (grpcError?.code === invalidArgument) throw await invalidQueryError(client, options.query, query, grpcError.details);
    throw error;
  }
}

/** The query sent to the server: tcrawl's crawl workflows, the status filter, then the user's query. */
export function visibilityQuery({ status, query }: Pick<ListCrawlsOptions, 'status' | 'query'>): string {
  const clauses = ['WorkflowType = "crawlWorkflow"'];
  if (status) clauses.push(statusClauses[status]);
  // A chain's earlier runs say nothing its latest run does not: leave them out, unless the user asks about statuses.
  else if (!/\bExecutionStatus\b/i.test(query ?? '')) clauses.push('ExecutionStatus != "ContinuedAsNew"');
  if (query?.trim()) clauses.push(`(${query})`);
  return clauses.join(' AND ');
}

/** Pages through the matches until `limit` crawls whose latest execution matched are found. */
async function collectLatest(client: Client, query: string, limit: number): Promise<CrawlListRow[]> {
  const executions = client.workflow.list({ query, pageSize: Math.min(limit, 100) })[Symbol.asyncIterator]();
  const seen = new Set<string>();
  const rows: CrawlListRow[] = [];
  for (;;) {
    const candidates = await nextDistinct(executions, seen, limit - rows.length);
    if (candidates.length === 0) return rows;
    rows.push(...(await latestOnly(client, candidates)));
    if (rows.length >= limit) return rows;
  }
}

/**
 * Up to `count` executions of workflow ids not seen yet. The first execution
 * listed for an id is its latest that matches: a workflow id runs one
 * execution at a time, so a later run closes after (or is running, listed
 * before) every earlier one.
 */
async function nextDistinct(executions: AsyncIterator<WorkflowExecutionInfo>, seen: Set<string>, count: number): Promise<WorkflowExecutionInfo[]> {
  const found: WorkflowExecutionInfo[] = [];
  while (found.length < count) {
    const next = await executions.next();
    if (next.done) break;
    if (seen.has(next.value.workflowId)) continue;
    seen.add(next.value.workflowId);
    found.push(next.value);
  }
  return found;
}

/** Rows of the executions that are their crawl's latest (a re-run may have superseded a closed one). */
async function latestOnly(client: Client, executions: WorkflowExecutionInfo[]): Promise<CrawlListRow[]> {
  const rows = await mapConcurrently(executions, 8, async (execution) => {
    const { count: runs } = await client.workflow.count(`WorkflowId = ${quoted(execution.workflowId)}`);
    // A running execution is its id's current one; a closed one is, unless the id has run again since.
    if (runs > 1 && execution.closeTime) {
      const latest = await client.workflow.getHandle(execution.workflowId).describe();
      if (latest.runId !== execution.runId) return undefined;
    }
    return rowOf(execution, runs);
  });
  return rows.filter((row): row is CrawlListRow => row !== undefined);
}

export function rowOf(execution: WorkflowExecutionInfo, runs: number): CrawlListRow {
  const attributes = execution.typedSearchAttributes;
  const closedAt = execution.closeTime ?? null;
  return {
    crawlId: attributes.get(crawlSearchAttributes.crawlId) ?? execution.workflowId.replace(/^crawl-/, ''),
    workflowId: execution.workflowId,
    runId: execution.runId,
    status: statusNames[execution.status.name] ?? 'Unknown',
    phase: attributes.get(crawlSearchAttributes.phase) ?? null,
    saved: attributes.get(crawlSearchAttributes.saved) ?? null,
    queued: attributes.get(crawlSearchAttributes.queued) ?? null,
    failed: attributes.get(crawlSearchAttributes.failed) ?? null,
    seedHost: attributes.get(crawlSearchAttributes.seedHost) ?? null,
    taskQueue: execution.taskQueue,
    startedAt: execution.startTime,
    closedAt,
    durationMs: closedAt ? closedAt.getTime() - execution.startTime.getTime() : null,
    runs,
  };
}

async function mapConcurrently<T, R>(items: T[], concurrency: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const runner = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, runner));
  return results;
}

/** A string literal of the visibility query language. */
function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/** gRPC INVALID_ARGUMENT: how the server refuses a query it cannot parse or whose attributes it does not know. */
const invalidArgument = 3;

/** The gRPC error behind the SDK's ServiceError (its cause), if any. */
function grpcErrorOf(error: unknown): { code: number; details: string } | undefined {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (isGrpcServiceError(e)) return e;
  }
  return undefined;
}

/** Temporal's own attributes most useful in a crawl query. */
const builtInAttributes = ['WorkflowId', 'ExecutionStatus', 'StartTime', 'CloseTime', 'ExecutionDuration', 'TaskQueue'];

async function invalidQueryError(client: Client, userQuery: string | undefined, sent: string, reason: string): Promise<InvalidInputError> {
  const ours = Object.values(crawlSearchAttributes);
  const registered = await registeredCustomAttributes(client);
  const missing = registered ? ours.filter((key) => !registered.has(key.name)).map((key) => key.name) : [];
  const others = registered ? [...registered].filter((name) => !ours.some((key) => key.name === name)).sort() : [];
  return new InvalidInputError(
    [
      `--query ${JSON.stringify(userQuery ?? '')} was refused by Temporal: ${reason} (the query sent: ${sent}).`,
      `Search attributes of a crawl: ${ours.map((key) => `${key.name} (${key.type === 'INT' ? 'Int' : 'Keyword'})`).join(', ')}` +
        `${missing.length ? `; not registered on this server: ${missing.join(', ')}` : ''}.`,
      ...(others.length ? [`Other custom search attributes on this server: ${others.join(', ')}.`] : []),
      `Temporal's own include ${builtInAttributes.join(', ')}. Example: --query 'TcrawlPhase = "paused" AND TcrawlSaved > 100'.`,
    ].join(' '),
    'TCRAWL_INVALID_QUERY',
  );
}

/** Custom search attributes registered in the namespace, or undefined if the server will not say. */
async function registeredCustomAttributes(client: Client): Promise<Set<string> | undefined> {
  try {
    const { customAttributes } = await client.connection.operatorService.listSearchAttributes({ namespace: client.options.namespace });
    return new Set(Object.keys(customAttributes ?? {}));
  } catch {
    return undefined;
  }
}
