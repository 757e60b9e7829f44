import { defineQuery, defineSignal, defineUpdate, setHandler } from '@temporalio/workflow';
import type { CrawlProgress, RequeueFilter, SetRateRequest, ShardSteering } from '../src/crawl-types';

/** Counters, queue, in-flight figures and per-host state of a crawl. */
export const progressQuery = defineQuery<CrawlProgress>('progress');

/** Changes a rate of a running crawl; acknowledged once the schedule uses it. Returns the new limits. */
export const setRateUpdate = defineUpdate<CrawlProgress['limits'], [SetRateRequest]>('setRate');

/** No new batches until resumed; batches in flight finish. Returns the progress once paused (since v2). */
export const pauseUpdate = defineUpdate<CrawlProgress>('pause');

/** Hands out batches again after a pause. Returns the progress (since v2). */
export const resumeUpdate = defineUpdate<CrawlProgress>('resume');

/** Puts failed URLs back in the queue of the running crawl; returns how many (since v2). */
export const retryFailedUpdate = defineUpdate<{ requeued: number }, [RequeueFilter]>('retryFailed');

/** From a sharded crawl's workflow to a shard's (since v5): steering that reaches every shard. */
export const shardSteeringSignal = defineSignal<[ShardSteering]>('shardSteering');

/** What a crawl's own workflow answers to, sharded or not. */
export interface SteerableCrawl {
  progress(): CrawlProgress;
  validateSetRate(request: SetRateRequest): void;
  setRate(request: SetRateRequest): Promise<CrawlProgress['limits']>;
  validateSteering(what: string): void;
  pause(): Promise<CrawlProgress>;
  resume(): CrawlProgress | Promise<CrawlProgress>;
  validateRetryFailed(filter: RequeueFilter): void;
  retryFailed(filter: RequeueFilter): Promise<{ requeued: number }>;
}

/** The client's query and updates, answered by the crawl. */
export function answerClient(crawl: SteerableCrawl): void {
  setHandler(progressQuery, () => crawl.progress());
  setHandler(setRateUpdate, (request) => crawl.setRate(request), { validator: (request) => crawl.validateSetRate(request) });
  setHandler(pauseUpdate, () => crawl.pause(), { validator: () => crawl.validateSteering('pause') });
  setHandler(resumeUpdate, () => crawl.resume(), { validator: () => crawl.validateSteering('resume') });
  setHandler(retryFailedUpdate, (filter) => crawl.retryFailed(filter), { validator: (filter) => crawl.validateRetryFailed(filter) });
}
