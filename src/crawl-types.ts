import type { CrawlSpec } from './spec';
import type { ScopeRules } from './scope';
import type { GrantOutcome, Schedule } from '../workflows/host-schedule';

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

/** What a batch reports: its outcomes, plus what the scheduler learns about the host (GrantOutcome). */
export interface BatchResult extends GrantOutcome {
  outcomes: Record<UrlOutcome, number>;
  /** HTTP status (or 'none') -> count, over final outcomes. */
  byStatus: Record<string, number>;
  /** Failure or skip reason -> count. */
  byReason: Record<string, number>;
  /** host -> URLs this batch newly queued for it. */
  discovered: Record<string, number>;
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

/** Carried across continue-as-new: counters and the schedule, never URLs. */
export interface CrawlState {
  counters: CrawlCounters;
  schedule: Schedule;
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

/** One host as the scheduler sees it (the busiest hosts, in `CrawlProgress.hostStates`). */
export interface HostStatus {
  host: string;
  queued: number;
  inFlight: number;
  /** Requests/s it is paced at now; 0 = unlimited. */
  ratePerSec: number;
  /** Current rate / configured rate while backing off from bans, else 1. */
  backoffFactor: number;
  crawlDelayMs: number;
  pausedUntilMs: number | null;
  reason: string | null;
}

export interface CrawlProgress extends CrawlCounters {
  crawlId: string;
  phase: CrawlPhase;
  /** URLs believed queued and not yet leased (in-scope, within max depth). */
  queued: number;
  inFlightBatches: number;
  inFlightUrls: number;
  hosts: number;
  /** Up to 50 hosts, most queued first. */
  hostStates: HostStatus[];
  limits: Pick<Schedule['limits'], 'rate' | 'hostRates' | 'totalRate' | 'groups'>;
  startedAtMs: number;
  elapsedMs: number;
}

/** `tcrawl set-rate`: a new limit for one host, one group, the crawl's total, or the default per-host rate. */
export interface SetRateRequest {
  target: { host: string } | { group: string } | { total: true } | { default: true };
  /** Requests/s; 0 = no limit. */
  rate: number;
}

export type CrawlSummary = CrawlProgress;

export interface SitemapSeedRequest {
  crawlId: string;
  seeds: string[];
  settings: CrawlSettings;
  scope: ScopeRules;
}

export interface SitemapSeedResult {
  /** host -> URLs newly queued for it. */
  queuedByHost: Record<string, number>;
  /** Sitemap files fetched and parsed (2xx), robots.txt not counted. */
  sitemapsFetched: number;
  /** host -> epoch ms before which no request may start after this activity's (its spacing, margin and Crawl-delay included). */
  nextRequestAtByHost: Record<string, number>;
}
