import type { CrawlSpec } from './spec';
import type { ScopeRules } from './scope';

/**
 * Plain-JSON shapes that cross the boundary between the workflow and its
 * activities (and continue-as-new). Keep them small: each is a Temporal
 * payload, limited to 2 MB.
 */

/** What every batch needs to know about the crawl: the spec minus its seeds. */
export type CrawlSettings = Omit<CrawlSpec, 'seeds'>;

/** Final outcomes of a URL, plus `retried` for a transient failure sent back to the queue. */
export type UrlOutcome = 'saved' | 'failed' | 'skipped' | 'retried';

export interface SeedRequest {
  crawlId: string;
  seeds: string[];
  settings: CrawlSettings;
}

export interface SeedResult {
  /** host -> URLs queued for it. */
  queuedByHost: Record<string, number>;
}

export interface BatchRequest {
  crawlId: string;
  /** Lease owner: a retried activity re-uses it and gets the same URLs back. */
  batchId: string;
  host: string;
  /** URLs to lease at most. */
  limit: number;
  /** Requests of this batch in flight at once. */
  concurrency: number;
  /** Epoch ms before which no request of this batch may start. */
  startAtMs: number;
  /** Spacing between request starts, ms; 0 = as fast as `concurrency` allows. */
  intervalMs: number;
  settings: CrawlSettings;
  scope: ScopeRules;
}

export interface BatchResult {
  leased: number;
  outcomes: Record<UrlOutcome, number>;
  /** HTTP status (or 'none') -> count, over final outcomes. */
  byStatus: Record<string, number>;
  /** Failure or skip reason -> count. */
  byReason: Record<string, number>;
  /** host -> URLs this batch newly queued for it. */
  discovered: Record<string, number>;
  /** URLs still queued for this batch's host when it finished. */
  hostQueued: number;
  /** Earliest time a queued URL of this host becomes due, when none is due now. */
  hostNextDueAtMs: number | null;
  /** The host asked us (Retry-After) not to come back before this time. */
  pauseHostUntilMs: number | null;
  /** Epoch ms the batch's last request started, null if it made none. */
  lastStartMs: number | null;
}

export interface ReconcileResult {
  /** host -> queued URLs, and when the first becomes due (null = now). */
  hosts: Record<string, { queued: number; nextDueAtMs: number | null }>;
  /** Leases found without a live batch and put back in the queue. */
  released: number;
}

export interface CrawlCounters {
  saved: number;
  failed: number;
  skipped: number;
  /** Transient failures sent back to the queue (not final). */
  retried: number;
  byStatus: Record<string, number>;
  byReason: Record<string, number>;
}

/** Carried across continue-as-new: counters and per-host schedule, never URLs. */
export interface CrawlState {
  counters: CrawlCounters;
  hosts: Record<string, { queued: number; notBeforeMs: number }>;
  batchSeq: number;
  startedAtMs: number;
}

export interface CrawlInput {
  crawlId: string;
  /** Present on the first run only; the frontier holds them afterwards. */
  seeds?: string[];
  settings: CrawlSettings;
  scope: ScopeRules;
  state?: CrawlState;
  /** Continue-as-new after this many batches even if the server does not suggest it (tests use it). */
  continueAsNewAfterBatches?: number;
}

export type CrawlPhase = 'seeding' | 'crawling' | 'draining' | 'finished';

export interface CrawlProgress extends CrawlCounters {
  crawlId: string;
  phase: CrawlPhase;
  /** URLs believed queued and not yet leased (in-scope, within max depth). */
  queued: number;
  inFlightBatches: number;
  inFlightUrls: number;
  hosts: number;
  startedAtMs: number;
  elapsedMs: number;
}

export type CrawlSummary = CrawlProgress;
