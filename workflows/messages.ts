import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
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
