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

/**
 * Which crawl an activity works for, and how it checks that its database
 * holds that crawl. Every activity input extends it.
 */
export interface CrawlRef {
  crawlId: string;
  /** Random per crawl, written to `crawls.token` by the first activity; absent in crawls started before tokens. */
  token?: string;
  /** Where the crawl was seeded (`db@host:port`), to name both databases when a worker uses another one. */
  database?: string;
  /** Version of the stored spec the activity should load. @default 1 */
  specVersion?: number;
  /** A shard's workflow (since v5): the activity works on that shard's hosts only. */
  shard?: ShardRef;
}

/** One shard of a crawl split over child workflows by host (spec `shards`; src/shard.ts). */
export interface ShardRef {
  index: number;
  count: number;
}

/**
 * What a shard's workflow is given by the crawl's (since v5): its hosts, the
 * URLs it may finish (its share of `maxPages`), and its limits.
 */
export interface ShardAssignment extends ShardRef {
  budget: number;
  limits: Schedule['limits'];
}

/** A shard as the crawl's workflow sees it: its queue and outcomes as of the last look at the frontier. */
export interface ShardStatus {
  index: number;
  workflowId: string;
  running: boolean;
  /** URLs it may still finish in its running execution (0 when not running). */
  budget: number;
  queued: number;
  inFlightUrls: number;
  saved: number;
  failed: number;
  skipped: number;
}

/** `shardQueues`: the frontier per shard, for the crawl's workflow (since v5). */
export interface ShardQueuesRequest extends CrawlRef {
  shards: number;
}

export interface ShardQueuesResult {
  /** By shard index: queued and leased URLs, and final outcomes. */
  shards: Array<{ queued: number; leased: number; saved: number; failed: number; skipped: number }>;
  /** Hosts with queued URLs, over all shards. */
  hostsQueued: number;
  counts: FrontierCounts;
}

/** What a sharded crawl's workflow tells a shard's (since v5): pause, resume, the shard's new limits, failed URLs re-queued, or more budget. */
export type ShardSteering = { pause: true } | { resume: true } | { limits: Schedule['limits'] } | { requeued: true } | { budget: number };

export interface SeedRequest extends CrawlRef {
  seeds: string[];
  settings: CrawlSettings;
}

export interface SeedResult {
  /** host -> URLs queued for it. */
  queuedByHost: Record<string, number>;
  /** The seeding worker's database, `db@host:port` (absent from workers before tokens). */
  database?: string;
  /** What the frontier already holds: a new execution of an existing crawl (a reset, a re-run) starts from these. */
  counts?: FrontierCounts;
  /** Hosts with queued URLs left out of `queuedByHost` (since v3: the workflow asks for them with `queuedHosts`). */
  hostsOmitted?: number;
}

/** Which queued hosts to list (since v3): those with most queued, `maxHosts` at most. */
export interface QueuedHostsRequest extends CrawlRef {
  maxHosts: number;
}

export interface QueuedHostsResult {
  hosts: Record<string, { queued: number; nextDueAtMs: number | null }>;
  hostsOmitted: number;
}

/** Final outcomes in the frontier, counted the way the workflow counts them. */
export interface FrontierCounts {
  saved: number;
  failed: number;
  skipped: number;
  byStatus: Record<string, number>;
  byReason: Record<string, number>;
}

export interface BatchRequest extends CrawlRef {
  /** Lease owner, unique across the crawl's executions: a retried activity re-uses it and gets the same URLs back. */
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
  /**
   * Only for a crawl started before tokens (no `token`): its activities cannot
   * load the stored spec. Every other batch finds its settings by the crawl's
   * token (since v2 they are not sent: a batch input stays a few hundred bytes).
   */
  settings?: CrawlSettings;
  scope?: ScopeRules;
}

/** What a batch reports: its outcomes, plus what the scheduler learns about the host (GrantOutcome). */
export interface BatchResult extends GrantOutcome {
  outcomes: Record<UrlOutcome, number>;
  /** HTTP status (or 'none') -> count, over final outcomes. */
  byStatus: Record<string, number>;
  /** Failure or skip reason -> count. */
  byReason: Record<string, number>;
  /** host -> URLs this batch newly queued for it: at most `maxReportedHosts` hosts, the busiest. */
  discovered: Record<string, number>;
  /** Hosts with new URLs left out of `discovered` (the workflow learns them at its next reconcile). */
  discoveredHostsOmitted?: number;
}

/** One host's part of a windowed batch (since workflow v3): as in {@link BatchRequest}, for that host. */
export interface HostGrant {
  host: string;
  /** URLs the batch may take for the host at most, leased as it goes (a paced host's newly found URLs too). */
  limit: number;
  concurrency: number;
  startAtMs: number;
  intervalMs: number;
}

/**
 * A batch over several hosts at once (since workflow v3): each host paced on
 * its own, from its granted start. A paced host's requests start no later
 * than `untilMs`, and URLs found for it meanwhile are leased as the window
 * allows, so one batch carries a host for many seconds; a change the
 * workflow makes meanwhile (set-rate, pause, cancel) reaches the batch
 * through `steeredSeq` and stops it early.
 */
export interface WindowBatchRequest extends CrawlRef {
  batchId: string;
  hosts: HostGrant[];
  /** Epoch ms after which no request of a paced host starts (unpaced hosts finish their lease). */
  untilMs: number;
  /** The crawl's steering count when the batch was granted: once the database holds a higher one, the batch starts no more requests. */
  steeredSeq: number;
  /** As in {@link BatchRequest}: only for a crawl started before tokens. */
  settings?: CrawlSettings;
  scope?: ScopeRules;
}

/** What a windowed batch reports: the crawl's counts over all its hosts, and per host what the scheduler learns. */
export interface WindowBatchResult {
  outcomes: Record<UrlOutcome, number>;
  byStatus: Record<string, number>;
  byReason: Record<string, number>;
  /** host -> URLs newly queued for it, hosts of this batch included: at most `maxReportedHosts` hosts, the busiest. */
  discovered: Record<string, number>;
  discoveredHostsOmitted?: number;
  /** host -> what its part of the batch did (every granted host). */
  hosts: Record<string, GrantOutcome>;
}

export interface SteerRequest extends CrawlRef {
  /** The workflow's new steering count. */
  seq: number;
}

/** Hosts named in one activity result at most, so a link flood cannot outgrow a Temporal payload (2 MB). */
export const maxReportedHosts = 1000;

export type ReconcileRequest = CrawlRef;

export interface ReconcileResult {
  /** host -> queued URLs, and when the first becomes due (null = now): at most `maxReportedHosts`, those with most queued. */
  hosts: Record<string, { queued: number; nextDueAtMs: number | null }>;
  /** Hosts with queued URLs left out of `hosts`. */
  hostsOmitted?: number;
  /** Leases found without a live batch and put back in the queue. */
  released: number;
  /** The frontier's final outcomes: the workflow's counters are set to these (absent from workers before tokens). */
  counts?: FrontierCounts;
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

/** A batch that failed for good, as `tcrawl status` shows it. */
export interface BatchFailure {
  batchId: string;
  host: string;
  /** The failure's stable code (`TCRAWL_WRONG_DATABASE`, `TCRAWL_BATCH_FAILED`, …). */
  code: string;
  message: string;
  atMs: number;
}

/** Carried across continue-as-new: counters and the schedule, never URLs. */
export interface CrawlState {
  counters: CrawlCounters;
  schedule: Schedule;
  batchSeq: number;
  startedAtMs: number;
  /** Where the crawl was seeded (from seedFrontier). */
  database?: string;
  /** The last few batches that failed for good, newest last. */
  batchFailures?: BatchFailure[];
  /** Paused by `tcrawl pause` (since v2). */
  paused?: boolean;
  /** This execution's own counts, carried across continue-as-new (since v2). */
  run?: RunCounters;
  /** The crawl's steering count, as last written to its database (since v3). */
  steeredSeq?: number;
  /** Hosts with queued URLs that the workflow does not track yet (since v3): it lists them when it has room. */
  hostsUntracked?: boolean;
}

/** Which failed URLs `tcrawl retry-failed` puts back in the queue: all, or those matching any reason and any status given. */
export interface RequeueFilter {
  reasons?: string[];
  statuses?: number[];
}

export interface RequeueRequest extends CrawlRef, RequeueFilter {}

export interface RequeueResult {
  requeued: number;
  /** host -> URLs re-queued for it: at most `maxReportedHosts`, the busiest. */
  byHost: Record<string, number>;
  hostsOmitted: number;
  /** Former status / reason -> count of the re-queued URLs. */
  byStatus: Record<string, number>;
  byReason: Record<string, number>;
}

/**
 * What one execution of a crawl did — a re-run (`retry-failed` or `resume`
 * of a finished crawl) reports its own work beside the crawl's totals.
 */
export interface RunCounters {
  /** When this execution (the first of its continue-as-new chain) started. */
  startedAtMs: number;
  /** Failed URLs this execution put back in the queue (retry-failed). */
  requeued: number;
  saved: number;
  failed: number;
  skipped: number;
}

export interface CrawlInput {
  crawlId: string;
  /** Written to the crawl's row by its first activity and checked by every other (see CrawlRef). */
  token?: string;
  /** Present on the first run only; the frontier holds them afterwards. */
  seeds?: string[];
  settings: CrawlSettings;
  scope: ScopeRules;
  state?: CrawlState;
  /** A re-run of a crawl that has finished: re-queue these failed URLs first (since v2). */
  retryFailed?: RequeueFilter;
  /** Continue-as-new after this many batches even if the server does not suggest it (tests use it). */
  continueAsNewAfterBatches?: number;
  /** Set for a shard's workflow, started by a sharded crawl's (since v5). */
  shard?: ShardAssignment;
}

/**
 * `paused`: no new batches (tcrawl pause); `draining`: letting batches finish
 * before continue-as-new; `cancelling`: cancelled, batches winding down;
 * `cancelled` and `finished` are final.
 */
export type CrawlPhase = 'seeding' | 'crawling' | 'paused' | 'draining' | 'cancelling' | 'cancelled' | 'finished';

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
  /** The last few batches that failed for good (retrying could not help), newest last. */
  batchFailures?: BatchFailure[];
  /** What this execution did (absent before v2). */
  run?: RunCounters;
  /** The crawl's page budget, from its spec (absent before v2). */
  maxPages?: number;
  /** A sharded crawl's shards (since v5); per-host states are each shard's (`hostStates` is empty). */
  shards?: ShardStatus[];
}

/** `tcrawl set-rate`: a new limit for one host, one group, the crawl's total, or the default per-host rate. */
export interface SetRateRequest {
  target: { host: string } | { group: string } | { total: true } | { default: true };
  /** Requests/s; 0 = no limit. */
  rate: number;
}

export type CrawlSummary = CrawlProgress;

export interface SitemapSeedRequest extends CrawlRef {
  seeds: string[];
  /** As in {@link BatchRequest}: only for a crawl started before tokens. */
  settings?: CrawlSettings;
  scope?: ScopeRules;
}

export interface SitemapSeedResult {
  /** host -> URLs newly queued for it. */
  queuedByHost: Record<string, number>;
  /** Sitemap files fetched and parsed (2xx), robots.txt not counted. */
  sitemapsFetched: number;
  /** host -> epoch ms before which no request may start after this activity's (its spacing, margin and Crawl-delay included). */
  nextRequestAtByHost: Record<string, number>;
  /** The same for the shared pacers (`total`, `group:<name>`); absent from workers before v1. */
  nextRequestAtByPacer?: Record<string, number>;
}

/** The activities that fetch: `crawlHosts` (windowed, since workflow v3) and `crawlBatch` (one host, before). */
export const batchActivityTypes: readonly string[] = ['crawlHosts', 'crawlBatch'];

export function isBatchActivity(type: string | null | undefined): boolean {
  return type != null && batchActivityTypes.includes(type);
}
