import * as path from 'node:path';
import { replayCrawl, type CrawlReplay, type ExecutionReplay } from '../operate/replay';
import { withClient } from './commands';

/** `tcrawl replay <crawlId>`: 0 when every execution replays against this release's workflow code, 1 when one does not. */
export async function replayCommand(crawlId: string, flags: { out?: string; json?: boolean }): Promise<number> {
  const outDir = flags.out === undefined ? undefined : path.resolve(flags.out);
  const replay = await withClient((client) => replayCrawl(client, crawlId, { outDir }));
  process.stdout.write(flags.json ? `${JSON.stringify(replay)}\n` : formatReplay(replay));
  if (outDir) process.stderr.write(`Saved ${replay.executions.length} histories and index.json (chain order) to ${outDir}\n`);
  return replay.ok ? 0 : 1;
}

export function formatReplay(replay: CrawlReplay): string {
  const failed = replay.executions.filter((execution) => !execution.ok).length;
  const verdict = failed === 0 ? 'all replay' : `${failed} diverged`;
  const lines = [`${replay.workflowId}: ${replay.executions.length} executions, ${verdict}`];
  for (const execution of replay.executions) lines.push(...formatExecution(replay.workflowId, execution));
  return `${lines.join('\n')}\n`;
}

function formatExecution(workflowId: string, execution: ExecutionReplay): string[] {
  const origin = execution.resetFromRunId ? `, reset from ${execution.resetFromRunId}` : execution.continuedFromRunId ? `, continued from ${execution.continuedFromRunId}` : '';
  const head = `${execution.ok ? 'OK      ' : 'DIVERGED'}  ${execution.runId}  ${execution.status}, started ${execution.startTime}, ${execution.events} events${origin}`;
  if (execution.ok) return [head];
  const { eventId, eventType, activityType, resetEventId, message } = execution.divergence;
  const at = eventId === null ? 'replay failed' : `at event ${eventId} ${eventType ?? '?'}${activityType ? ` (${activityType})` : ''}`;
  const lines = [head, `          ${at}: ${coreMessage(message)}`];
  // A running execution whose code changed under it fails its next workflow task; resetting it there recovers it.
  if (resetEventId !== null && execution.status === 'RUNNING') {
    lines.push(`          to let this code take over: temporal workflow reset --workflow-id ${workflowId} --run-id ${execution.runId} --event-id ${resetEventId} --reason "…"`);
  }
  return lines;
}

/** The SDK wraps core's message ("Nondeterminism error: … HistoryEvent(id: 11, …)") in a Failure dump; a terminal needs only the core part. */
function coreMessage(message: string): string {
  return /message: "((?:[^"\\]|\\.)*)"/.exec(message)?.[1] ?? message;
}
