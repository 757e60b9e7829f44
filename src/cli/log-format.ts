import type { LogEntry, LogLevel } from '@temporalio/worker';
import { InvalidInputError } from '../errors';

/** How tcrawl and the SDK write log lines to stderr: `text` (the SDK's own format), or one JSON object a line. */
export type LogFormat = 'text' | 'json';

/** `TCRAWL_LOG_FORMAT`: `text` unless set; anything else is refused, before a command runs. */
export function logFormat(env: NodeJS.ProcessEnv = process.env): LogFormat {
  const value = env.TCRAWL_LOG_FORMAT;
  if (value === undefined || value === '' || value === 'text') return 'text';
  if (value === 'json') return 'json';
  throw new InvalidInputError(`TCRAWL_LOG_FORMAT "${value}" is not a log format: use text or json.`, 'TCRAWL_INVALID_LOG_FORMAT');
}

/**
 * One log line as JSON: `time` (ISO 8601, UTC), `level` (lower case), `message`, then the entry's
 * attributes. An activity's lines carry the SDK's (`workflowId`, `activityType`, `attempt`, …) and
 * tcrawl's (`crawlId`, `batchId`; a URL's lines `host` and `url`): see src/worker.ts.
 */
export function jsonLogLine({ level, message, meta, timestampNanos }: Pick<LogEntry, 'level' | 'message' | 'meta' | 'timestampNanos'>): string {
  const time = new Date(Number(timestampNanos / 1_000_000n)).toISOString();
  return `${JSON.stringify({ time, level: level.toLowerCase(), message, ...meta }, jsonValue)}\n`;
}

/** Errors and bigints, which JSON.stringify cannot write as they are. */
function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}

/** A line of tcrawl's own (what a command tells its user), as {@link jsonLogLine} writes it. */
export function jsonMessage(level: LogLevel, message: string): string {
  return jsonLogLine({ level, message, meta: undefined, timestampNanos: BigInt(Date.now()) * 1_000_000n });
}

/** Writes a line of tcrawl's own to stderr: as it is, or as a JSON object with `TCRAWL_LOG_FORMAT=json`. */
export function say(line: string): void {
  process.stderr.write(logFormat() === 'json' ? jsonMessage('INFO', line) : `${line}\n`);
}
