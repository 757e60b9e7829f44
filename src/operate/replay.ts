/**
 * Replays every execution of a crawl's workflow against workflow code: the
 * check that a change to workflows/ is safe for the crawls already running
 * (or recorded), and the first question when a crawl's workflow task fails
 * as non-deterministic. Temporal's replayer needs only the histories; the
 * client fetches them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { Client, WorkflowExecutionInfo } from '@temporalio/client';
import { historyToJSON, type History } from '@temporalio/common/lib/proto-utils';
import { Worker, type ReplayResult } from '@temporalio/worker';
import { workflowIdFor } from '../client';
import { InvalidInputError } from '../errors';
import { crawlWorkflowsPath } from '../workflow-code';

type HistoryEvent = NonNullable<History['events']>[number];

export interface ReplayCrawlOptions {
  /** Also save each execution's history as `<runId>.json` (the JSON `temporal workflow show --output json` writes) and `index.json` here. */
  outDir?: string;
  /** The workflow code to replay against: a module exporting `crawlWorkflow`. @default the code tcrawl's workers run */
  workflowsPath?: string;
  /** Modules exporting workflow `interceptors`, bundled with it (as a worker's `interceptors.workflowModules`). */
  workflowInterceptorModules?: string[];
}

/** One execution of the crawl's workflow: a first run, a run it continued as new into, a re-run or a reset. */
export interface CrawlExecution {
  runId: string;
  /** Temporal's status: RUNNING, COMPLETED, CONTINUED_AS_NEW, TERMINATED, FAILED, … */
  status: string;
  /** ISO 8601: when this execution began (for a reset, when the reset made it). */
  startTime: string;
  closeTime: string | null;
  /** Events in its history (so far, if it is running). */
  events: number;
  /** The run whose continue-as-new started this one's history, if any (a reset run inherits its base run's). */
  continuedFromRunId: string | null;
  /** If this execution is a reset: the run it was reset from. */
  resetFromRunId: string | null;
  /** With `outDir`: the history's file name there. */
  file?: string;
}

/** Where replaying an execution's history parted from it. */
export interface ReplayDivergence {
  /** `nondeterminism`: the code issues other commands than the history records; `failure`: replay failed otherwise. */
  kind: 'nondeterminism' | 'failure';
  /** The history event the code did not match, when the SDK names one. */
  eventId: number | null;
  /** That event's type, e.g. `ActivityTaskScheduled`. */
  eventType: string | null;
  /** The activity that event schedules, e.g. `crawlBatch`. */
  activityType: string | null;
  /**
   * The last WorkflowTaskCompleted before that event: resetting the execution
   * there (`temporal workflow reset --event-id`) lets this code take over
   * from the workflow task that went another way.
   */
  resetEventId: number | null;
  /** The SDK's message. */
  message: string;
}

export type ExecutionReplay = CrawlExecution & ({ ok: true } | { ok: false; divergence: ReplayDivergence });

export interface CrawlReplay {
  crawlId: string;
  workflowId: string;
  /** True when every execution replayed. */
  ok: boolean;
  /** In chain order: by start time, each run after the one it continued from or was reset from. */
  executions: ExecutionReplay[];
}

/**
 * Fetches the history of every execution of the crawl's workflow (closed
 * ones included: runs that continued as new, earlier runs, resets) and
 * replays each against the workflow code.
 *
 * @throws InvalidInputError `TCRAWL_UNKNOWN_CRAWL` when Temporal has no execution of it.
 */
export async function replayCrawl(client: Client, crawlId: string, options: ReplayCrawlOptions = {}): Promise<CrawlReplay> {
  const workflowId = workflowIdFor(crawlId);
  const runs = await fetchExecutions(client, crawlId);
  const replays = await replayHistories(workflowId, runs, options);
  const executions = runs.map(({ execution, history }, i) => ({
    ...execution,
    ...(options.outDir && { file: `${execution.runId}.json` }),
    ...outcomeOf(replays[i], history),
  }));
  const result: CrawlReplay = { crawlId, workflowId, ok: executions.every((execution) => execution.ok), executions };
  if (options.outDir) await saveHistories(options.outDir, result, runs);
  return result;
}

interface FetchedExecution {
  execution: CrawlExecution;
  history: History;
}

async function fetchExecutions(client: Client, crawlId: string): Promise<FetchedExecution[]> {
  const workflowId = workflowIdFor(crawlId);
  // The id goes into a visibility query: one that could not be a crawl id names no crawl.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(crawlId)) throw unknownCrawl(crawlId);
  const infos: WorkflowExecutionInfo[] = [];
  for await (const info of client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) infos.push(info);
  if (infos.length === 0) throw unknownCrawl(crawlId);
  const fetched = await Promise.all(
    infos.map(async (info) => {
      const history = await client.workflow.getHandle(workflowId, info.runId).fetchHistory();
      return { execution: describeExecution(info, history), history };
    }),
  );
  return chainOrder(fetched);
}

function unknownCrawl(crawlId: string): InvalidInputError {
  return new InvalidInputError(`No crawl with id "${crawlId}": Temporal has no execution of workflow ${workflowIdFor(crawlId)} in this namespace`, 'TCRAWL_UNKNOWN_CRAWL');
}

function describeExecution(info: WorkflowExecutionInfo, history: History): CrawlExecution {
  const events = history.events ?? [];
  const started = events[0]?.workflowExecutionStartedEventAttributes;
  // A reset run's history starts with its base run's events; its own reset is the one that names it.
  const reset = events.find((event) => event.workflowTaskFailedEventAttributes?.newRunId === info.runId)?.workflowTaskFailedEventAttributes;
  return {
    runId: info.runId,
    status: info.status.name,
    startTime: info.startTime.toISOString(),
    closeTime: info.closeTime?.toISOString() ?? null,
    events: events.length,
    continuedFromRunId: started?.continuedExecutionRunId || null,
    resetFromRunId: reset?.baseRunId || null,
  };
}

/** By start time; a run and its successor may start within the same millisecond, so the successor is put after. */
function chainOrder(fetched: FetchedExecution[]): FetchedExecution[] {
  const follows = (a: CrawlExecution, b: CrawlExecution) => (a.resetFromRunId ?? a.continuedFromRunId) === b.runId;
  return [...fetched].sort(
    ({ execution: a }, { execution: b }) => a.startTime.localeCompare(b.startTime) || (follows(a, b) ? 1 : follows(b, a) ? -1 : 0),
  );
}

/**
 * One replay worker (one bundle of the workflow code) for all histories; it replays them one at a time, in order.
 * Bundled from the code itself, never the prebuilt bundle workers load: a replay is the check of that code (a
 * change not yet built, or one with interceptor variants), and it bundles once per command.
 */
async function replayHistories(workflowId: string, runs: FetchedExecution[], options: ReplayCrawlOptions): Promise<ReplayResult[]> {
  const replayOptions = {
    workflowsPath: options.workflowsPath ?? crawlWorkflowsPath,
    interceptors: { workflowModules: options.workflowInterceptorModules },
  };
  const results: ReplayResult[] = [];
  for await (const result of Worker.runReplayHistories(replayOptions, runs.map(({ history }) => ({ workflowId, history })))) results.push(result);
  return results;
}

function outcomeOf(result: ReplayResult, history: History): { ok: true } | { ok: false; divergence: ReplayDivergence } {
  if (!result.error) return { ok: true };
  const message = result.error.message;
  // Core names the event it could not match: "… does not handle this event: HistoryEvent(id: 11, ActivityTaskScheduled)".
  const match = /HistoryEvent\(id: (\d+)/.exec(message);
  const eventId = match ? Number(match[1]) : null;
  const event = eventId === null ? undefined : (history.events ?? []).find((e) => Number(e.eventId) === eventId);
  return {
    ok: false,
    divergence: {
      kind: result.error.name === 'DeterminismViolationError' ? 'nondeterminism' : 'failure',
      eventId,
      eventType: event ? eventTypeOf(event) : null,
      activityType: event?.activityTaskScheduledEventAttributes?.activityType?.name ?? null,
      resetEventId: eventId === null ? null : lastCompletedTaskBefore(history, eventId),
      message,
    },
  };
}

/** `ActivityTaskScheduled` for EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, as core and the Web UI name events. */
function eventTypeOf(event: HistoryEvent): string {
  const name: string = JSON.parse(historyToJSON({ events: [event] })).events[0].eventType;
  return name
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .replace(/(?:^|_)([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

function lastCompletedTaskBefore(history: History, eventId: number): number | null {
  let last: number | null = null;
  for (const event of history.events ?? []) {
    if (Number(event.eventId) >= eventId) break;
    if (event.workflowTaskCompletedEventAttributes) last = Number(event.eventId);
  }
  return last;
}

/** `<runId>.json` per execution, and `index.json`: the replay's result, naming each file, in chain order. */
async function saveHistories(outDir: string, result: CrawlReplay, runs: FetchedExecution[]): Promise<void> {
  await mkdir(outDir, { recursive: true });
  await Promise.all(result.executions.map(({ file }, i) => writeFile(path.join(outDir, file!), historyToJSON(runs[i].history))));
  await writeFile(path.join(outDir, 'index.json'), `${JSON.stringify(result, null, 2)}\n`);
}
