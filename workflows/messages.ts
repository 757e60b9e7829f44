import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { CrawlProgress, SetRateRequest } from '../src/crawl-types';

/** Counters, queue, in-flight figures and per-host state of a crawl. */
export const progressQuery = defineQuery<CrawlProgress>('progress');

/** Changes a rate of a running crawl; acknowledged once the schedule uses it. Returns the new limits. */
export const setRateUpdate = defineUpdate<CrawlProgress['limits'], [SetRateRequest]>('setRate');
