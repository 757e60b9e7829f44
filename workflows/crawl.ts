import {
  ActivityCancellationType,
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  log,
  patched,
  proxyActivities,
  setHandler,
  upsertMemo,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type {
  BatchFailure,
  BatchResult,
  WindowBatchResult,
  CrawlCounters,
  CrawlInput,
  CrawlPhase,
  CrawlProgress,
  CrawlRef,
  CrawlState,
  CrawlSummary,
  FrontierCounts,
  HostStatus,
  RequeueFilter,
  RequeueResult,
  RunCounters,
  SetRateRequest,
  ShardSteering,
} from '../src/crawl-types';
import { crawlSearchAttributes } from './search-attributes';
import { activityFailureCodes } from './failure-codes';
import { answerClient, progressQuery, shardSteeringSignal } from './messages';
import { frontierActivityOptions, sitemapActivityOptions } from './activity-options';
import { ProgressPublisher } from './progress-publisher';
import { applicationFailureOf, untilServed } from './served';
import { checkRequeueFilter, refuseSteeringWhenOver } from './steering-checks';
import { runShardedCrawl } from './sharded-crawl';
import {
  applyRateRequest,
  configuredRate,
  hostIntervalMs,
  newHost,
  nextWakeMs,
  noOutcome,
  pauseAfterFailedBatch,
  rateRequestProblem,
  settleGrant,
  takeGrant,
  takeWindow,
  type Grant,
  type Schedule,
  type Window,
} from './host-schedule';
import { patches } from './versions';

// No maximumAttempts: a dead worker or database is waited out, never given up on (a batch gives up
// by itself on errors that are neither: activities/batch-failure.ts). Batches heartbeat every
// second, so the heartbeat timeout is what notices a dead worker; start-to-close only bounds a
// batch that may legitimately run long (100 URLs at fetchTimeoutMs each, paced by a Crawl-delay).
// Retries stay frequent: an attempt that landed on a worker killed in turn is no reason to wait longer.
// Cancelling the crawl cancels its batches and waits until each has stopped: only then may their leases
// be released. Explicit: left unset, core's default is TRY_CANCEL (seen: a cancelled batch's last group of
// results landed after the wind-down released its leases), whatever the SDK's docs say.
const batchOptions: ActivityOptions = {
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  startToCloseTimeout: '6 hours',
  // Not shorter: a worker whose event loop stalls (a second worker bundling its workflows on a busy
  // machine) would look dead, and its batch would run twice (seen under the chaos run at 5 s).
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds' },
};
const { crawlBatch, crawlHosts } = proxyActivities<Activities>(batchOptions);

// A shard's workflow asks for its own hosts under activity names a worker from before shards does not
// serve (reconcileShard, queuedShardHosts, steerShard): it would take the crawl's hosts for the shard's.
const { seedFrontier, reconcileFrontier, requeueFailed, markSteered, queuedHosts, reconcileShard, queuedShardHosts, steerShard } = proxyActivities<Activities>(frontierActivityOptions);

const { seedFromSitemaps } = proxyActivities<Activities>(sitemapActivityOptions);

/** Batches in flight for one crawl at most, across all hosts. */
const maxBatchesInFlight = 32;
/** Batch failures kept for `tcrawl status`. */
const keptBatchFailures = 10;
/**
 * Hosts the workflow keeps state for at most (about 200 bytes each in a
 * continue-as-new payload, limited to 2 MB); more wait in the frontier
 * until a reconcile brings them in.
 */
const maxTrackedHosts = 2000;
/** How often at most the workflow lists hosts it does not track yet (v3). */
const untrackedHostsEveryMs = 5000;
/**
 * A run continues as new once its history is this large (v3): windowed
 * batches make large events (about 40 KB for 100 hosts), and the windows in
 * flight still report after it; Temporal's limit is 50 MB, its suggestion 4 MB.
 */
const maxRunHistoryBytes = 2 * 1024 * 1024;

/** A batch in flight: one grant (before v3), or a window of several hosts. */
interface Batch {
  grants: Grant[];
  windowed: boolean;
}

/**
 * One crawl. Owns the control — what to lease, when each host may be
 * requested next, the page budget, counters — while the frontier itself
 * lives in Postgres. Ends when nothing is queued or in flight.
 */
export async function crawlWorkflow(input: CrawlInput): Promise<CrawlSummary> {
  // Only a crawl started with shards since v5 has more than one: a history recorded before never gets here.
  if ((input.settings.shards ?? 1) > 1) return runShardedCrawl(input);
  const crawl = new Crawl(input);
  answerClient(crawl);
  return crawl.run();
}

/**
 * One shard of a sharded crawl (since v5), started by the crawl's workflow
 * ({@link runShardedCrawl}): a crawl of the hosts whose hash falls in its
 * shard, within the budget it was given, steered by the crawl's workflow's
 * signals. Ends when its hosts have nothing queued or its budget is spent.
 */
export async function crawlShardWorkflow(input: CrawlInput): Promise<CrawlSummary> {
  const crawl = new Crawl(input);
  setHandler(progressQuery, () => crawl.progress());
  setHandler(shardSteeringSignal, (steering) => crawl.steerShard(steering));
  return crawl.run();
}

class Crawl {
  private readonly schedule: Schedule;
  private readonly counters: CrawlCounters;
  private readonly inFlight = new Map<string, Batch>();
  private batchSeq: number;
  private batchesThisRun = 0;
  private readonly startedAtMs: number;
  private phase: CrawlPhase = 'crawling';
  /** Bumped whenever a batch settles, so the main loop wakes up. */
  private settled = 0;
  private database: string | undefined;
  private readonly batchFailures: BatchFailure[];
  private paused: boolean;
  private readonly runCounters: RunCounters;
  /** A handler put URLs back in the queue since the last reconcile: the crawl is not over. */
  private requeuedSinceReconcile = false;
  /** Set when the crawl was started with tcrawl's search attributes (registered on its server). */
  private readonly publisher: ProgressPublisher;
  /** Steering count last written to the database (v3): windowed batches granted at a lower one stop. */
  private steeredSeq: number;
  /** Batches were told to stop for this drain already. */
  private drainSteered = false;
  /** The frontier holds queued hosts this workflow does not track (left out of a result, or over `maxTrackedHosts`). */
  private hostsUntracked: boolean;
  private untrackedListedAtMs = 0;

  constructor(private readonly input: CrawlInput) {
    const state = input.state;
    this.counters = state?.counters ?? { saved: 0, failed: 0, skipped: 0, retried: 0, byStatus: {}, byReason: {} };
    this.batchSeq = state?.batchSeq ?? 0;
    this.startedAtMs = state?.startedAtMs ?? Date.now();
    this.database = state?.database;
    this.batchFailures = state?.batchFailures ?? [];
    this.paused = state?.paused ?? false;
    if (this.paused) this.phase = 'paused';
    this.runCounters = state?.run ?? { startedAtMs: Date.now(), requeued: 0, saved: 0, failed: 0, skipped: 0 };
    this.steeredSeq = state?.steeredSeq ?? 0;
    // A shard's hosts may be found by any shard's batches: it lists its queued hosts as often as a crawl with untracked ones.
    this.hostsUntracked = input.shard !== undefined || (state?.hostsUntracked ?? false);
    this.publisher = new ProgressPublisher(workflowInfo().typedSearchAttributes.get(crawlSearchAttributes.crawlId) !== undefined);
    const { rate, totalRate, rateGroups, concurrency, batchSize, throttle, targetConcurrency } = input.settings;
    this.schedule = state?.schedule ?? {
      hosts: {},
      shared: {},
      limits: input.shard?.limits ?? { rate, hostRates: {}, totalRate, groups: rateGroups, concurrency, batchSize, throttle, targetConcurrency },
    };
  }

  private get hosts(): Schedule['hosts'] {
    return this.schedule.hosts;
  }

  /** What every activity gets to find (and check) the crawl in its database. */
  private get ref(): CrawlRef {
    const { crawlId, token, shard } = this.input;
    if (token === undefined) return { crawlId };
    return shard ? { crawlId, token, database: this.database, specVersion: 1, shard: { index: shard.index, count: shard.count } } : { crawlId, token, database: this.database, specVersion: 1 };
  }

  /**
   * Settings ride along only for a crawl started before tokens (v0), whose
   * activities cannot load them; any other finds them by its token.
   */
  private get carried(): Pick<CrawlInput, 'settings' | 'scope'> | Record<string, never> {
    const { token, settings, scope } = this.input;
    return token === undefined ? { settings, scope } : {};
  }

  async run(): Promise<CrawlSummary> {
    try {
      return await this.crawl();
    } catch (error) {
      if (!isCancellation(error) || !patched(patches.operating)) throw error;
      await CancellationScope.nonCancellable(() => this.windDown());
      throw error;
    }
  }

  private async crawl(): Promise<CrawlSummary> {
    // A new execution of a shard goes on from the shard's stored steering count: one of an earlier execution would halt its batches.
    // So does a re-run (no seeds, no state), which would start from 0 under a count its crawl's earlier executions raised (v6).
    if ((this.input.shard && !this.input.state) || (this.isRerun() && patched(patches.rerunSteeredSeq))) this.steeredSeq = await this.storeSteeredSeq(0);
    if (this.input.seeds) await this.seed(this.input.seeds);
    // A re-run of a finished crawl: its counters come from the frontier at the first reconcile.
    if (this.input.retryFailed && !this.input.state) this.runCounters.requeued += (await this.requeue(this.input.retryFailed)).requeued;
    for (;;) {
      await this.trackUntrackedHosts();
      this.handOutBatches();
      if (this.phase === 'draining') await this.steerDrain();
      this.showProgress();
      if (this.inFlight.size === 0) {
        if (this.shouldContinueAsNew()) return this.continueAsNew();
        if (this.paused) {
          // Woken too when the search attributes lag behind the batches that finished after the pause.
          const resumed = () => !this.paused || this.shouldContinueAsNew();
          const publishAt = this.publisher.nextAtMs({ ...this.counters, queued: this.queued() });
          if (publishAt === null) await condition(resumed);
          else await condition(resumed, Math.max(1, publishAt - Date.now()));
          continue;
        }
        if (this.budget() <= 0 || nextWakeMs(this.schedule, Date.now()) === null) {
          if (await this.reconcile()) continue;
          // An update still running may put URLs back in the queue: the crawl is over only after it.
          await condition(allHandlersFinished);
          if (this.requeuedSinceReconcile || this.paused) continue;
          break;
        }
      }
      await this.waitForChange();
    }
    this.phase = 'finished';
    const summary = this.progress();
    this.showProgress(summary);
    return summary;
  }

  /** A new execution of a crawl that ran before: resumed after a cancel, or re-run to retry what failed. */
  private isRerun(): boolean {
    const { seeds, state, shard, token } = this.input;
    return seeds === undefined && state === undefined && shard === undefined && token !== undefined;
  }

  /**
   * After a cancel (v2): batches in flight were cancelled with the crawl and
   * are awaited until each has stopped, then their leases go back to the
   * queue, so the frontier is as consistent as after any batch; the final
   * figures go to the memo, search attributes and details, since a
   * cancelled workflow returns no result. A later `tcrawl resume` goes on from here.
   */
  private async windDown(): Promise<void> {
    this.phase = 'cancelling';
    this.showProgress();
    await this.steer();
    await condition(() => this.inFlight.size === 0);
    await this.reconcile();
    this.phase = 'cancelled';
    const summary = this.progress();
    upsertMemo({ summary });
    this.showProgress(summary);
  }

  private async seed(seeds: string[]): Promise<void> {
    this.phase = 'seeding';
    const { settings } = this.input;
    const seeded = await seedFrontier({ ...this.ref, seeds, settings });
    this.database ??= seeded.database;
    // A new execution of a crawl that has run before (a reset, a re-run) counts what is already there.
    if (seeded.counts) this.adoptCounts(seeded.counts);
    for (const [name, queued] of Object.entries(seeded.queuedByHost)) this.hosts[name] = newHost(queued);
    if (seeded.hostsOmitted) this.hostsUntracked = true;
    if (settings.sitemaps) {
      const found = await this.untilServed('sitemaps', () => seedFromSitemaps({ ...this.ref, ...this.carried, seeds }));
      for (const [name, queued] of Object.entries(found.queuedByHost)) {
        this.hosts[name] ??= newHost();
        this.hosts[name].queued += queued;
      }
      // Reading sitemaps made requests: each pacer goes on where the activity's left it
      // (which knows the margin and any Crawl-delay; a fresh host here knows neither yet).
      for (const [name, nextMs] of Object.entries(found.nextRequestAtByHost)) {
        if (this.hosts[name]) this.hosts[name].notBeforeMs = nextMs;
      }
      for (const [key, nextMs] of Object.entries(found.nextRequestAtByPacer ?? {})) {
        this.schedule.shared[key] = { busy: false, notBeforeMs: Math.max(this.schedule.shared[key]?.notBeforeMs ?? 0, nextMs) };
      }
    }
    // Paused while seeding (v2): it stays paused.
    this.phase = this.paused ? 'paused' : 'crawling';
  }

  /** The frontier is the truth: final outcomes are what its rows say (retries are this workflow's own count). */
  private adoptCounts(counts: FrontierCounts): void {
    const { saved, failed, skipped, byStatus, byReason } = counts;
    Object.assign(this.counters, { saved, failed, skipped, byStatus, byReason });
  }

  /** URLs that may still be leased under maxPages (a shard: under the budget its execution was given). */
  private budget(): number {
    let reserved = 0;
    for (const batch of this.inFlight.values()) for (const grant of batch.grants) reserved += grant.limit;
    const { saved, failed, skipped } = this.input.shard ? this.runCounters : this.counters;
    return (this.input.shard?.budget ?? this.input.settings.maxPages) - saved - failed - skipped - reserved;
  }

  private handOutBatches(): void {
    if (this.shouldContinueAsNew()) this.phase = 'draining';
    // Only draining or paused returns before the patch checks, as always: with every slot taken they are still asked, where earlier histories have their markers.
    if (this.phase === 'draining' || this.paused) return;
    const windowed = patched(patches.hostWindows);
    const shareOver = windowed && patched(patches.waitingShare) ? 'hostsWaiting' : 'hostsWithWork';
    while (this.canHandOut()) {
      if (windowed) {
        const window = takeWindow(this.schedule, this.budget(), Date.now(), shareOver);
        if (!window) return;
        this.startWindow(window);
        continue;
      }
      const grant = takeGrant(this.schedule, this.budget(), Date.now());
      if (!grant) return;
      this.startBatch(grant);
    }
  }

  /** Not draining, not paused, and a batch slot free. */
  private canHandOut(): boolean {
    return this.phase !== 'draining' && !this.paused && this.inFlight.size < maxBatchesInFlight;
  }

  /** The next batch id; the run id makes batch ids unique across executions (continue-as-new, a reset, a re-run). */
  private nextBatchId(): string {
    return `${this.input.crawlId}/${workflowInfo().runId}/b${++this.batchSeq}`;
  }

  /** v3: one batch over several hosts, each on its own schedule, until the window's end or a steering change. */
  private startWindow({ grants, untilMs }: Window): void {
    const batchId = this.nextBatchId();
    this.inFlight.set(batchId, { grants, windowed: true });
    this.batchesThisRun++;
    const hosts = grants.map(({ host, limit, concurrency, startAtMs, intervalMs }) => ({ host, limit, concurrency, startAtMs, intervalMs }));
    const request = { ...this.ref, ...this.carried, batchId, hosts, untilMs, steeredSeq: this.steeredSeq };
    let limit = 0;
    for (const grant of grants) limit += grant.limit;
    const summary = grants.length === 1 ? `${grants[0].host}: up to ${limit} URLs` : `${grants.length} hosts (${grants[0].host}, …): up to ${limit} URLs`;
    crawlHosts.executeWithOptions({ ...batchOptions, summary }, [request]).then(
      (result) => this.settleWindow(batchId, grants, result),
      (error: unknown) => this.failWindow(batchId, grants, error),
    );
  }

  private settleWindow(batchId: string, grants: Grant[], result: WindowBatchResult): void {
    this.inFlight.delete(batchId);
    const now = Date.now();
    for (const grant of grants) {
      settleGrant(this.schedule, grant, result.hosts[grant.host] ?? noOutcome, now);
      const host = this.hosts[grant.host];
      if (host.failedBatches) {
        host.failedBatches = 0;
        if (host.reason?.startsWith('batch failed')) host.reason = null;
      }
    }
    this.countOutcomes(result, new Set(grants.map((grant) => grant.host)));
    this.settled++;
  }

  /** As {@link fail}, for a window: each of its hosts waits its back-off; the report counts what its rows say. */
  private failWindow(batchId: string, grants: Grant[], error: unknown): void {
    this.inFlight.delete(batchId);
    const now = Date.now();
    if (isCancellation(error)) {
      for (const grant of grants) settleGrant(this.schedule, grant, noOutcome, now);
      this.settled++;
      return;
    }
    const hostNames = grants.map((grant) => grant.host);
    log.error('Batch failed', { batchId, hosts: hostNames.join(' '), error: String(error) });
    // The URLs are back in the queue (or never left it): a hint until the next reconcile.
    for (const grant of grants) settleGrant(this.schedule, grant, { ...noOutcome, hostQueued: this.hosts[grant.host].queued + grant.limit }, now);
    const report = applicationFailureOf(error)?.details?.[0] as WindowBatchResult | undefined;
    this.countOutcomes(report ?? nothingDone, new Set(hostNames));
    const code = this.recordFailure(batchId, hostNames.length === 1 ? hostNames[0] : `${hostNames[0]} (+${hostNames.length - 1} more)`, error);
    for (const name of hostNames) pauseAfterFailedBatch(this.hosts[name], code, now);
    this.settled++;
  }

  /**
   * Tells windowed batches in flight to stop starting requests (v3), so a
   * change of limits, a pause, a cancel or a continue-as-new reaches the
   * crawl's hosts within about a second, not at the windows' end.
   */
  private async steer(): Promise<void> {
    if (![...this.inFlight.values()].some((batch) => batch.windowed) || !patched(patches.hostWindows)) return;
    await this.storeSteeredSeq(++this.steeredSeq);
  }

  /** Raises the stored steering count (the shard's, for a shard) to `seq` if lower; returns the count stored. */
  private storeSteeredSeq(seq: number): Promise<number> {
    return this.untilServed('steer', () => (this.input.shard ? steerShard({ ...this.ref, seq }) : markSteered({ ...this.ref, seq })));
  }

  /**
   * Brings in queued hosts the workflow does not track yet (v3), dropping
   * hosts that are done to make room: a result names 1,000 hosts at most and
   * the workflow tracks `maxTrackedHosts`, so a crawl over more would
   * otherwise reach the rest only at a reconcile, once every batch is done.
   * At most every `untrackedHostsEveryMs`.
   */
  private async trackUntrackedHosts(): Promise<void> {
    if (!this.hostsUntracked || Date.now() < this.untrackedListedAtMs + untrackedHostsEveryMs || !patched(patches.hostWindows)) return;
    this.untrackedListedAtMs = Date.now();
    // Hosts done with make room: a crawl over more hosts than it tracks goes on through them without a reconcile.
    this.schedule.hosts = this.hostsWorthKeeping();
    const room = maxTrackedHosts - Object.keys(this.hosts).length;
    if (room <= 0) return;
    const request = { ...this.ref, maxHosts: maxTrackedHosts };
    const listed = await this.untilServed('queued hosts', () => (this.input.shard ? queuedShardHosts(request) : queuedHosts(request)));
    let added = 0;
    for (const [name, queue] of Object.entries(listed.hosts)) {
      if (this.hosts[name] || added >= room) continue;
      this.hosts[name] = newHost(queue.queued);
      this.hosts[name].notBeforeMs = queue.nextDueAtMs ?? 0;
      added++;
    }
    this.hostsUntracked = this.input.shard !== undefined || listed.hostsOmitted > 0 || Object.keys(listed.hosts).some((name) => !this.hosts[name]);
  }

  /** Before a continue-as-new the batches in flight are waited for: windowed ones are told to stop first. */
  private async steerDrain(): Promise<void> {
    if (this.drainSteered) return;
    this.drainSteered = true;
    await this.steer();
  }

  private startBatch(grant: Grant): void {
    // A lease is found by batch id, and finished rows keep theirs.
    const batchId = this.nextBatchId();
    this.inFlight.set(batchId, { grants: [grant], windowed: false });
    this.batchesThisRun++;
    const { host, limit, concurrency, startAtMs, intervalMs } = grant;
    const request = { ...this.ref, ...this.carried, batchId, host, limit, concurrency, startAtMs, intervalMs };
    // The summary is what the Web UI shows for the activity in the workflow's event list.
    crawlBatch.executeWithOptions({ ...batchOptions, summary: `${host}: up to ${limit} URLs` }, [request]).then(
      (result) => this.settle(batchId, grant, result),
      (error: unknown) => this.fail(batchId, grant, error),
    );
  }

  private settle(batchId: string, grant: Grant, result: BatchResult): void {
    this.inFlight.delete(batchId);
    this.count(grant, result);
    const host = this.hosts[grant.host];
    if (host.failedBatches) {
      host.failedBatches = 0;
      if (host.reason?.startsWith('batch failed')) host.reason = null;
    }
    this.settled++;
  }

  /** Takes in what a batch did: the schedule learns about its host, the counters count its URLs. */
  private count(grant: Grant, result: BatchResult): void {
    settleGrant(this.schedule, grant, result, Date.now());
    this.countOutcomes(result, new Set([grant.host]));
  }

  /** The counters count a batch's URLs; hosts it found URLs for are tracked (its own hosts' queues it reported already). */
  private countOutcomes(result: Pick<BatchResult, 'outcomes' | 'byStatus' | 'byReason' | 'discovered' | 'discoveredHostsOmitted'>, own: Set<string>): void {
    const c = this.counters;
    c.saved += result.outcomes.saved;
    c.failed += result.outcomes.failed;
    c.skipped += result.outcomes.skipped;
    c.retried += result.outcomes.retried;
    this.runCounters.saved += result.outcomes.saved;
    this.runCounters.failed += result.outcomes.failed;
    this.runCounters.skipped += result.outcomes.skipped;
    addCounts(c.byStatus, result.byStatus);
    addCounts(c.byReason, result.byReason);
    const bounded = patched(patches.boundedHosts);
    let tracked = Object.keys(this.hosts).length;
    if (result.discoveredHostsOmitted) this.hostsUntracked = true;
    for (const [name, count] of Object.entries(result.discovered)) {
      if (own.has(name)) continue; // hostQueued already counts them
      if (!this.hosts[name]) {
        if (bounded && tracked >= maxTrackedHosts) {
          this.hostsUntracked = true;
          continue;
        }
        this.hosts[name] = newHost();
        tracked++;
      }
      this.hosts[name].queued += count;
    }
  }

  /**
   * Only a non-retryable activity failure gets here. Since v1 the failure
   * carries what the batch did (its leases are given back, each counted as an
   * attempt), the host waits a growing back-off, and status shows why.
   */
  private fail(batchId: string, grant: Grant, error: unknown): void {
    this.inFlight.delete(batchId);
    if (isCancellation(error) && patched(patches.operating)) {
      // Cancelled with the crawl: what it saved is in the frontier, which the wind-down reconciles.
      settleGrant(this.schedule, grant, noOutcome, Date.now());
      this.settled++;
      return;
    }
    log.error('Batch failed', { batchId, host: grant.host, error: String(error) });
    if (!patched(patches.batchFailures)) {
      settleGrant(this.schedule, grant, noOutcome, Date.now());
      this.settled++;
      return;
    }
    const failure = applicationFailureOf(error);
    const report = failure?.details?.[0] as BatchResult | undefined;
    // The URLs are back in the queue (or never left it): a hint until the next reconcile.
    const hostQueued = this.hosts[grant.host].queued + grant.limit;
    this.count(grant, { ...(report ?? nothingDone), hostQueued });
    const code = this.recordFailure(batchId, grant.host, error);
    pauseAfterFailedBatch(this.hosts[grant.host], code, Date.now());
    this.settled++;
  }

  /** Keeps a failure for `tcrawl status`; returns its code. */
  private recordFailure(batchId: string, host: string, error: unknown): string {
    const failure = applicationFailureOf(error);
    const code = failure?.type ?? activityFailureCodes.batchFailed;
    this.batchFailures.push({ batchId, host, code, message: failure?.message ?? String(error), atMs: Date.now() });
    this.batchFailures.splice(0, this.batchFailures.length - keptBatchFailures);
    return code;
  }

  private untilServed<T>(what: string, run: () => Promise<T>): Promise<T> {
    return untilServed(what, run, (failed, error) => this.recordFailure(failed, '', error));
  }

  private async waitForChange(): Promise<void> {
    const seen = this.settled;
    // A host coming due wakes the loop only if it could be granted then (v6): draining, or with every batch slot taken,
    // only a settle can hand out more, and each wake is a timer and a workflow task. A shard of 1,000 hosts at 0.1/s
    // draining behind windows that waited for worker slots had a run of 4.6 MB; 3.1 MB with this (one run each).
    const hostsWake = this.budget() > 0 && (this.canHandOut() || !patched(patches.wakeToGrant)) ? nextWakeMs(this.schedule, Date.now()) : null;
    const wake = earliest(hostsWake, this.publisher.nextAtMs({ ...this.counters, queued: this.queued() }));
    const changed = () => this.settled !== seen;
    if (wake === null) await condition(changed);
    else await condition(changed, Math.max(1, wake - Date.now()));
  }

  /**
   * Asks the database what is really queued (counts here are hints) and
   * releases leases no batch holds. Returns whether there is work left.
   */
  private async reconcile(): Promise<boolean> {
    this.requeuedSinceReconcile = false;
    const { hosts, counts } = await this.untilServed('reconcile', () => (this.input.shard ? reconcileShard(this.ref) : reconcileFrontier(this.ref)));
    if (counts) this.adoptCounts(counts);
    for (const host of Object.values(this.hosts)) host.queued = 0;
    for (const [name, queue] of Object.entries(hosts)) {
      this.hosts[name] ??= newHost();
      this.hosts[name].queued = queue.queued;
      this.hosts[name].notBeforeMs = Math.max(this.hosts[name].notBeforeMs, queue.nextDueAtMs ?? 0);
    }
    if (patched(patches.boundedHosts)) this.schedule.hosts = this.hostsWorthKeeping();
    return this.budget() > 0 && Object.keys(hosts).length > 0;
  }

  private shouldContinueAsNew(): boolean {
    const after = this.input.continueAsNewAfterBatches;
    const { continueAsNewSuggested, historySize } = workflowInfo();
    if (continueAsNewSuggested || (after !== undefined && this.batchesThisRun >= after)) return true;
    return historySize >= maxRunHistoryBytes && patched(patches.hostWindows);
  }

  private async continueAsNew(): Promise<never> {
    const schedule = { ...this.schedule, hosts: this.hostsWorthKeeping() };
    const state: CrawlState = {
      counters: this.counters,
      schedule,
      batchSeq: this.batchSeq,
      startedAtMs: this.startedAtMs,
      database: this.database,
      batchFailures: this.batchFailures,
      paused: this.paused,
      run: this.runCounters,
      steeredSeq: this.steeredSeq,
      hostsUntracked: this.hostsUntracked,
    };
    return continueAsNew<typeof crawlWorkflow>({ ...this.input, seeds: undefined, retryFailed: undefined, state });
  }

  /** Hosts with nothing queued, nothing in flight and nothing to remember are dropped: they are probed again if they come back. */
  private hostsWorthKeeping(): Schedule['hosts'] {
    const now = Date.now();
    const hosts: Schedule['hosts'] = {};
    for (const [name, host] of Object.entries(this.hosts)) {
      if (host.queued > 0 || host.batches > 0 || host.notBeforeMs > now || host.pausedUntilMs > now || host.banRate !== null) hosts[name] = host;
    }
    return hosts;
  }

  validateSteering(what: string): void {
    refuseSteeringWhenOver(this.phase, what);
  }

  validateRetryFailed(filter: RequeueFilter): void {
    this.validateSteering('retry-failed');
    checkRequeueFilter(filter);
  }

  /** Batches in flight finish (windowed ones stop starting requests); none is handed out until {@link resume}. */
  async pause(): Promise<CrawlProgress> {
    this.paused = true;
    if (this.phase === 'crawling') this.phase = 'paused';
    this.settled++;
    await this.steer();
    return this.progress();
  }

  resume(): CrawlProgress {
    this.paused = false;
    if (this.phase === 'paused') this.phase = 'crawling';
    this.settled++;
    return this.progress();
  }

  /** Re-queues failed URLs in the running crawl; they are crawled within its budget (they no longer count as failed). */
  async retryFailed(filter: RequeueFilter): Promise<{ requeued: number }> {
    const result = await this.requeue(filter);
    const c = this.counters;
    c.failed -= result.requeued;
    subtractCounts(c.byStatus, result.byStatus);
    subtractCounts(c.byReason, result.byReason);
    this.runCounters.requeued += result.requeued;
    return { requeued: result.requeued };
  }

  private async requeue(filter: RequeueFilter): Promise<RequeueResult> {
    const result = await this.untilServed('retry-failed', () => requeueFailed({ ...this.ref, ...filter }));
    for (const [name, count] of Object.entries(result.byHost)) {
      this.hosts[name] ??= newHost();
      this.hosts[name].queued += count;
    }
    if (result.requeued > 0) this.requeuedSinceReconcile = true;
    this.settled++;
    return result;
  }

  private showProgress(progress = this.progress()): void {
    this.publisher.show(progress, () => patched(patches.operating));
  }

  /** URLs queued, as the hosts' hints say. */
  private queued(): number {
    let queued = 0;
    for (const host of Object.values(this.hosts)) queued += Math.max(0, host.queued);
    return queued;
  }

  /**
   * Steering from the crawl's workflow, for a shard (since v5): its pause,
   * resume, new limits (set-rate), failed URLs re-queued (some perhaps of
   * this shard's hosts), or more budget.
   * Ignored once the shard is winding down or over: its next execution is
   * given the crawl's steering as it is then.
   */
  async steerShard(steering: ShardSteering): Promise<void> {
    const over = this.phase === 'cancelling' || this.phase === 'cancelled' || this.phase === 'finished';
    if (over) return;
    if ('pause' in steering) await this.pause();
    else if ('resume' in steering) this.resume();
    else if ('limits' in steering) {
      this.schedule.limits = steering.limits;
      this.settled++;
      await this.steer();
    } else if ('budget' in steering) {
      // In the input, which a continue-as-new carries on.
      if (this.input.shard) this.input.shard.budget += steering.budget;
      this.settled++;
    } else {
      this.requeuedSinceReconcile = true;
      this.untrackedListedAtMs = 0;
      this.settled++;
    }
  }

  validateSetRate(request: SetRateRequest): void {
    const problem = rateRequestProblem(this.schedule.limits, request);
    if (problem) throw new Error(problem);
    const { target } = request;
    if ('host' in target && !(target.host in this.hosts)) {
      throw new Error(`host "${target.host}" is not in this crawl (hosts are written host[:port], as in tcrawl status)`);
    }
  }

  /**
   * Takes effect with the next grant: before v3 rate-limited batches span at
   * most a second; since, the windowed batches in flight are steered to stop
   * and their hosts granted again under the new limits.
   */
  async setRate(request: SetRateRequest): Promise<CrawlProgress['limits']> {
    applyRateRequest(this.schedule.limits, request);
    this.settled++;
    await this.steer();
    return this.progress().limits;
  }

  progress(): CrawlProgress {
    const queued = this.queued();
    let inFlightUrls = 0;
    for (const batch of this.inFlight.values()) for (const grant of batch.grants) inFlightUrls += grant.limit;
    return {
      crawlId: this.input.crawlId,
      phase: this.phase,
      ...this.counters,
      queued,
      inFlightBatches: this.inFlight.size,
      inFlightUrls,
      hosts: Object.keys(this.hosts).length,
      hostStates: this.hostStates(),
      limits: { rate: this.schedule.limits.rate, hostRates: this.schedule.limits.hostRates, totalRate: this.schedule.limits.totalRate, groups: this.schedule.limits.groups },
      startedAtMs: this.startedAtMs,
      elapsedMs: Date.now() - this.startedAtMs,
      batchFailures: this.batchFailures,
      run: this.runCounters,
      maxPages: this.input.settings.maxPages,
    };
  }

  private hostStates(): HostStatus[] {
    const now = Date.now();
    const { limits } = this.schedule;
    return Object.entries(this.hosts)
      .sort(([, a], [, b]) => b.queued + b.batches - (a.queued + a.batches))
      .slice(0, 50)
      .map(([name, host]) => {
        const interval = hostIntervalMs(name, host, limits);
        const configured = configuredRate(name, limits);
        return {
          host: name,
          queued: Math.max(0, host.queued),
          inFlight: host.batches,
          ratePerSec: interval > 0 ? 1000 / interval : 0,
          backoffFactor: host.banRate === null ? 1 : configured > 0 ? host.banRate / configured : 0,
          crawlDelayMs: host.crawlDelayMs,
          pausedUntilMs: host.pausedUntilMs > now ? host.pausedUntilMs : null,
          reason: host.reason,
        };
      });
  }
}

/** What a batch that failed before doing anything reports. */
const nothingDone: BatchResult = { ...noOutcome, outcomes: { saved: 0, failed: 0, skipped: 0, retried: 0 }, byStatus: {}, byReason: {}, discovered: {} };

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, count] of Object.entries(from)) into[key] = (into[key] ?? 0) + count;
}

function subtractCounts(from: Record<string, number>, counts: Record<string, number>): void {
  for (const [key, count] of Object.entries(counts)) {
    from[key] = (from[key] ?? 0) - count;
    if (from[key] <= 0) delete from[key];
  }
}

function earliest(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.min(a, b);
}
