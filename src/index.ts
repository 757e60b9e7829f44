/**
 * tcrawl as a library: what `require('tcrawl')` / `import … from 'tcrawl'`
 * gives a script. `connect()` to tcrawl's services (as the CLI finds them),
 * start crawls, follow and steer them through their handles, and run a
 * worker in the script's own process.
 *
 * This module only re-exports; each export is documented where it is defined.
 *
 * @packageDocumentation
 */
export { connect, TcrawlClient, CrawlHandle, CrawlCancelledError } from './tcrawl-client';
export type { ConnectOptions, RunningWorker } from './tcrawl-client';
export type { CrawlListRow, ListCrawlsOptions, CrawlStatusFilter, CrawlExecutionStatus } from './operate/list';
export type { ExportOptions, RecordStream } from './results/export';
export type { ExportFormat, ExportKind, ExportRecords, ExportRecord } from './results/export-format';
export type { CrawlDeletion, DeleteCrawlOptions } from './results/delete';
export type { OutputReport } from './results/outputs';
export type { OutputSpec, MirrorOutput, TarOutput, JsonlOutput, ItemFilesOutput } from './output-spec';
export type { ReportOptions } from './report/build-report';
export type { CrawlReplay, CrawlExecution, ReplayDivergence, ReplayCrawlOptions } from './operate/replay';
export { parseCrawlSpec, crawlSpecSchema } from './spec';
export type { CrawlSpec, CrawlSpecInput, ItemsSpec, RateGroup } from './spec';
export { TcrawlError, InvalidInputError, DependencyError } from './errors';
export { runtimeConfig } from './config';
export type { RuntimeConfig } from './config';
export { workflowIdFor } from './client';
export type { CrawlStatus, RetryingActivity } from './client';
export { createCrawlWorker, runWorkerUntil } from './worker';
export type { CrawlWorkerOptions, Drain } from './worker';
export type {
  BatchFailure,
  CrawlCounters,
  CrawlPhase,
  CrawlProgress,
  CrawlSummary,
  HostStatus,
  RequeueFilter,
  RunCounters,
  SetRateRequest,
} from './crawl-types';
