import type { CrawlPhase, RequeueFilter } from '../src/crawl-types';

/** Steering a crawl that is winding down or over would be lost: refused with the phase it is in. */
export function refuseSteeringWhenOver(phase: CrawlPhase, what: string): void {
  if (phase === 'cancelling' || phase === 'cancelled' || phase === 'finished') throw new Error(`cannot ${what}: the crawl is ${phase}`);
}

/** A retry-failed filter as the client API's types say it is. */
export function checkRequeueFilter(filter: RequeueFilter): void {
  if (filter.reasons !== undefined && !(Array.isArray(filter.reasons) && filter.reasons.every((r) => typeof r === 'string'))) throw new Error('reasons must be a list of strings');
  if (filter.statuses !== undefined && !(Array.isArray(filter.statuses) && filter.statuses.every((n) => Number.isInteger(n)))) throw new Error('statuses must be a list of integers');
}
