import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { activityFailureCodes } from '../workflows/failure-codes';
import { describeError, errorCode } from './fetch-errors';

/**
 * What an error that escapes a batch (not one URL's outcome) comes to:
 *
 * - the database is unavailable: retried by Temporal for as long as it takes
 *   (a dead Postgres is waited out; `tcrawl status` shows the attempt and the error);
 * - cancellation and failures already marked non-retryable: passed on as they are;
 * - anything else is a bug or a poison input: retried `maxBatchAttempts` times,
 *   then the batch fails for good, gives its leases back and reports what it did.
 */
export const maxBatchAttempts = 5;

const batchFailedCode = activityFailureCodes.batchFailed;

/** SQLSTATE classes and codes that mean "the database is not there right now" (PostgreSQL Appendix A). */
const unavailableSqlStates = ['08', '53', '57P01', '57P02', '57P03', '58'];
const unavailableNetCodes = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
/** node-postgres reports a lost or unobtainable connection with these messages and no code. */
const unavailableMessages = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection refused/i;

/** Whether `error` means Postgres is unreachable or refusing connections (worth waiting out), not a bug. */
export function isDatabaseUnavailable(error: unknown): boolean {
  const code = errorCode(error);
  if (code !== undefined) {
    if (unavailableNetCodes.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && unavailableSqlStates.some((state) => code.startsWith(state))) return true;
  }
  return error instanceof Error && unavailableMessages.test(error.message);
}

export type BatchErrorVerdict = 'retry' | 'permanent';

/** Retry, or give up for good, on an error that escaped attempt `attempt` (1-based) of a batch. */
export function batchErrorVerdict(error: unknown, attempt: number): BatchErrorVerdict {
  if (error instanceof CancelledFailure) return 'retry';
  if (error instanceof ApplicationFailure) return error.nonRetryable ? 'permanent' : 'retry';
  if (isDatabaseUnavailable(error)) return 'retry';
  return attempt >= maxBatchAttempts ? 'permanent' : 'retry';
}

/** The non-retryable failure a batch ends with, carrying what it did (the workflow counts it). */
export function permanentBatchFailure<T>(error: unknown, attempt: number, report: T): ApplicationFailure {
  if (error instanceof ApplicationFailure) {
    return ApplicationFailure.create({ message: error.message, type: error.type ?? batchFailedCode, nonRetryable: true, details: [report], cause: error });
  }
  return ApplicationFailure.create({
    message: `Batch failed ${attempt} times, its URLs are given back: ${describeError(error)}`,
    type: batchFailedCode,
    nonRetryable: true,
    details: [report],
    cause: error instanceof Error ? error : undefined,
  });
}
