import { ActivityFailure, ApplicationFailure, log, patched, sleep } from '@temporalio/workflow';
import { activityFailureCodes } from './failure-codes';
import { patches } from './versions';

/** Longest pause before asking again an activity that landed on a worker with another database. */
const maxWrongDatabasePauseMs = 5 * 60_000;

/** The ApplicationFailure behind an activity's failure, if that is what it is. */
export function applicationFailureOf(error: unknown): ApplicationFailure | undefined {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  return cause instanceof ApplicationFailure ? cause : undefined;
}

/**
 * Runs an activity that fails for good when the worker it lands on uses
 * another database than the crawl's: that is one worker's misconfiguration,
 * not the crawl's end. The failure goes to `record` (kept for status) and the
 * activity is asked again after a growing pause (most likely of another worker).
 */
export async function untilServed<T>(what: string, run: () => Promise<T>, record: (what: string, error: unknown) => void): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (applicationFailureOf(error)?.type !== activityFailureCodes.wrongDatabase || !patched(patches.batchFailures)) throw error;
      log.error('Activity ran on a worker with another database', { what, error: String(error) });
      record(what, error);
      await sleep(Math.min(maxWrongDatabasePauseMs, 1000 * 2 ** attempt));
    }
  }
}
