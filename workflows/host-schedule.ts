/**
 * Per-host politeness as the scheduler sees it: pure functions over plain
 * state, so the workflow stays deterministic and this can be unit-tested.
 *
 * The invariant that makes a rate limit hold for a whole fleet: a host with a
 * rate gets at most one batch at a time, and each batch is granted a window of
 * request start times [startAt, startAt + n·interval) that begins where the
 * previous window ended. Workers only execute the window they are given.
 */

export interface HostState {
  /** URLs believed queued (a hint: the database is the truth, see reconcile). */
  queued: number;
  /** Batches in flight. */
  batches: number;
  /** Requests in flight allowed to those batches, summed. */
  slots: number;
  /** No request to this host may start before this time (rate window, Retry-After, retry back-off). */
  notBeforeMs: number;
}

export interface PaceSettings {
  /** Request starts per second per host; 0 = unlimited. */
  rate: number;
  /** Requests in flight per host. */
  concurrency: number;
  batchSize: number;
}

export interface Grant {
  host: string;
  limit: number;
  concurrency: number;
  startAtMs: number;
  intervalMs: number;
}

/** How far ahead of its start a batch may be handed out (it waits in the worker). */
export const grantLeadMs = 1000;
/** A rate-limited batch spans at most this long, so a lost worker loses little and the schedule stays responsive. */
const maxWindowMs = 10_000;

export function newHost(queued = 0): HostState {
  return { queued, batches: 0, slots: 0, notBeforeMs: 0 };
}

function isEligible(host: HostState, pace: PaceSettings, nowMs: number): boolean {
  if (host.queued <= 0 || host.slots >= pace.concurrency) return false;
  if (pace.rate > 0 && host.batches > 0) return false;
  return host.notBeforeMs <= nowMs + grantLeadMs;
}

/** Picks the next batch to hand out, or null; at most `budget` URLs. Mutates the host it grants. */
export function takeGrant(hosts: Record<string, HostState>, pace: PaceSettings, budget: number, nowMs: number): Grant | null {
  if (budget <= 0) return null;
  let chosen: string | undefined;
  for (const [name, host] of Object.entries(hosts)) {
    if (!isEligible(host, pace, nowMs)) continue;
    // Least-busy host first, so one big host doesn't starve the others.
    if (chosen === undefined || host.slots < hosts[chosen].slots) chosen = name;
  }
  if (chosen === undefined) return null;
  const host = hosts[chosen];
  const intervalMs = pace.rate > 0 ? 1000 / pace.rate : 0;
  const concurrency = pace.rate > 0 ? pace.concurrency : Math.min(pace.concurrency - host.slots, Math.max(1, Math.ceil(pace.concurrency / 4)));
  let limit = Math.min(pace.batchSize, budget, host.queued);
  if (intervalMs > 0) limit = Math.min(limit, Math.max(1, Math.floor(maxWindowMs / intervalMs)));
  const startAtMs = Math.max(nowMs, host.notBeforeMs);
  host.queued -= limit;
  host.batches += 1;
  host.slots += concurrency;
  if (intervalMs > 0) host.notBeforeMs = startAtMs + limit * intervalMs;
  return { host: chosen, limit, concurrency, startAtMs, intervalMs };
}

export interface GrantOutcome {
  leased: number;
  hostQueued: number;
  hostNextDueAtMs: number | null;
  pauseHostUntilMs: number | null;
  /** When the batch's last request started (a retried batch may start later than its window). */
  lastStartMs: number | null;
}

/** Returns a finished batch's capacity to its host and takes in what it learned. */
export function settleGrant(host: HostState, grant: Grant, outcome: GrantOutcome): void {
  host.batches -= 1;
  host.slots -= grant.concurrency;
  host.queued = outcome.hostQueued;
  // Start times the batch did not use (it leased fewer URLs) go back to the host.
  if (grant.intervalMs > 0 && host.batches === 0) host.notBeforeMs = grant.startAtMs + outcome.leased * grant.intervalMs;
  const afterLastStart = outcome.lastStartMs === null ? 0 : outcome.lastStartMs + grant.intervalMs;
  host.notBeforeMs = Math.max(host.notBeforeMs, afterLastStart, outcome.hostNextDueAtMs ?? 0, outcome.pauseHostUntilMs ?? 0);
}

/**
 * When the next host becomes eligible, if any is waiting only for time. A
 * host eligible already is not a reason to wake: it was not granted because
 * the budget or the crawl's batch limit is used up, and only a finished
 * batch changes that.
 */
export function nextWakeMs(hosts: Record<string, HostState>, pace: PaceSettings, nowMs: number): number | null {
  let wake: number | null = null;
  for (const host of Object.values(hosts)) {
    if (host.queued <= 0 || host.slots >= pace.concurrency || (pace.rate > 0 && host.batches > 0)) continue;
    const at = host.notBeforeMs - grantLeadMs;
    if (at > nowMs && (wake === null || at < wake)) wake = at;
  }
  return wake;
}
