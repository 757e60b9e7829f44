/**
 * tcrawl as a library: what `require('tcrawl')` / `import … from 'tcrawl'`
 * gives a script. Validate a crawl spec, start a crawl on a Temporal client,
 * follow it, change its rates, wait for its summary, and run a worker in the
 * script's own process.
 *
 * This module only re-exports; each export is documented where it is defined.
 *
 * @packageDocumentation
 */
export { parseCrawlSpec, crawlSpecSchema } from './spec';
export type { CrawlSpec, CrawlSpecInput, ItemsSpec, RateGroup } from './spec';
export { TcrawlError, InvalidInputError, DependencyError } from './errors';
export { runtimeConfig } from './config';
export type { RuntimeConfig } from './config';
export { startCrawl, crawlStatus, setCrawlRate, awaitCrawlResult, workflowIdFor } from './client';
export type { CrawlStatus, RetryingActivity } from './client';
export { createCrawlWorker, runWorkerUntil } from './worker';
export type { CrawlWorkerOptions, Drain } from './worker';
export type { CrawlProgress, CrawlSummary, CrawlCounters, CrawlPhase, HostStatus, BatchFailure, SetRateRequest } from './crawl-types';
