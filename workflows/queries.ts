import { defineQuery } from '@temporalio/workflow';
import type { CrawlProgress } from '../src/crawl-types';

/** Counters, queue and in-flight figures of a running (or finished) crawl. */
export const progressQuery = defineQuery<CrawlProgress>('progress');
