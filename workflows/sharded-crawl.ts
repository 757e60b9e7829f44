import {
  allHandlersFinished,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  startChild,
  upsertMemo,
  workflowInfo,
  type ChildWorkflowHandle,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type {
  BatchFailure,
  CrawlCounters,
  CrawlInput,
  CrawlPhase,
  CrawlProgress,
  CrawlRef,
  CrawlSummary,
  FrontierCounts,
  RequeueFilter,
  RunCounters,
  SetRateRequest,
  ShardAssignment,
  ShardQueuesResult,
  ShardStatus,
  ShardSteering,
} from '../src/crawl-types';
import { frontierActivityOptions, sitemapActivityOptions } from './activity-options';
import { activityFailureCodes } from './failure-codes';
import { applyRateRequest, rateRequestProblem, type Limits } from './host-schedule';
import { answerClient, shardSteeringSignal } from './messages';
import { ProgressPublisher } from './progress-publisher';
import { crawlSearchAttributes } from './search-attributes';
import { shardWorkflowIdFor } from './workflow-ids';
import { applicationFailureOf, untilServed } from './served';
import { checkRequeueFilter, refuseSteeringWhenOver } from './steering-checks';

const { seedFrontier, reconcileFrontier, requeueFailed, shardQueues } = proxyActivities<Activities>(frontierActivityOptions);
const { seedFromSitemaps } = proxyActivities<Activities>(sitemapActivityOptions);

/**
 * How often the crawl's workflow looks at its frontier per shard while
 * shards run: for progress, and to start a shard whose hosts got work
 * (found by another shard's pages, or re-queued). Soon after a shard ends or
 * starts, then less often while looks start nothing: each look is an
 * activity, about six history events, and at the longest interval about
 * 720 an hour.
 */
const lookAfterChangeMs = 2000;
const lookAtMostEveryMs = 30_000;
/** Shard failures kept for `tcrawl status`. */
const keptFailures = 10;

/**
 * The limits a shard's workflow paces its hosts by: per-host rates as they
 * are, a crawl-wide or group rate split evenly, so the shards together never
 * exceed it (0 stays no limit).
 */
function finishedOf(queue: ShardQueuesResult['shards'][number]): number {
  return queue.saved + queue.failed + queue.skipped;
}

function shardLimits(limits: Limits, shards: number): Limits {
  return {
    ...limits,
    hostRates: { ...limits.hostRates },
    totalRate: limits.totalRate / shards,
    groups: limits.groups.map((group) => ({ ...group, rate: group.rate / shards })),
  };
}

interface Shard {
  index: number;
  workflowId: string;
  /** An execution is starting or running. */
  running: boolean;
  /** Its running execution, once started. */
  handle: ChildWorkflowHandle<never> | null;
  /** URLs its running execution was given (at its start and since). */
  budget: number;
  /** URLs of its hosts finished when its running execution started, from the look before. */
  finishedAtStart: number;
  /** From the last look. */
  queue: ShardQueuesResult['shards'][number];
}

/**
 * A crawl split over `shards` child workflows by host (spec `shards`, since
 * v5): this workflow seeds, then runs a shard's workflow (crawlShardWorkflow)
 * for each shard with queued URLs, each with its own history, tracking and
 * continue-as-new; it shares out `maxPages`, forwards pause, resume, set-rate
 * and retry-failed to the shards running, starts a shard again when its hosts
 * get work, and ends once no shard runs and none has work.
 */
export async function runShardedCrawl(input: CrawlInput): Promise<CrawlSummary> {
  const crawl = new ShardedCrawl(input);
  answerClient(crawl);
  return crawl.run();
}

class ShardedCrawl {
  private phase: CrawlPhase = 'crawling';
  private counters: CrawlCounters = { saved: 0, failed: 0, skipped: 0, retried: 0, byStatus: {}, byReason: {} };
  /** Finished URLs when this execution started: what it did is the difference. */
  private finishedBefore = { saved: 0, failed: 0, skipped: 0 };
  private readonly run_: RunCounters = { startedAtMs: Date.now(), requeued: 0, saved: 0, failed: 0, skipped: 0 };
  private readonly startedAtMs = Date.now();
  private paused = false;
  private readonly limits: Limits;
  /** Bumped by each set-rate: a shard started before one is told the limits once it runs. */
  private limitsSeq = 0;
  private readonly shards: Shard[];
  /** URLs finished, as far as budgets go: the frontier's count when no shard runs, plus what each shard's execution finished since. */
  private spent = 0;
  private hostsQueued = 0;
  private database: string | undefined;
  private readonly failures: BatchFailure[] = [];
  private readonly publisher: ProgressPublisher;
  /** Started with tcrawl's search attributes: so are its shards, with the crawl's id (the Web UI finds them by it). */
  private readonly attributed: boolean;
  /** Bumped when a shard ends or steering changes something, so the main loop looks again at once. */
  private changed = 0;
  private lookInMs = lookAfterChangeMs;

  constructor(private readonly input: CrawlInput) {
    const { rate, totalRate, rateGroups, concurrency, batchSize, throttle, targetConcurrency, shards } = input.settings;
    this.limits = { rate, hostRates: {}, totalRate, groups: rateGroups, concurrency, batchSize, throttle, targetConcurrency };
    const noQueue = { queued: 0, leased: 0, saved: 0, failed: 0, skipped: 0 };
    this.shards = Array.from({ length: shards }, (_, index) => ({ index, workflowId: shardWorkflowIdFor(input.crawlId, index), running: false, handle: null, budget: 0, finishedAtStart: 0, queue: noQueue }));
    this.attributed = workflowInfo().typedSearchAttributes.get(crawlSearchAttributes.crawlId) !== undefined;
    this.publisher = new ProgressPublisher(this.attributed);
  }

  private get ref(): CrawlRef {
    return { crawlId: this.input.crawlId, token: this.input.token, database: this.database, specVersion: 1 };
  }

  async run(): Promise<CrawlSummary> {
    try {
      return await this.crawl();
    } catch (error) {
      if (!isCancellation(error)) throw error;
      await CancellationScope.nonCancellable(() => this.windDown());
      throw error;
    }
  }

  private async crawl(): Promise<CrawlSummary> {
    if (this.input.seeds) await this.seed(this.input.seeds);
    await this.look();
    this.finishedBefore = { saved: this.counters.saved, failed: this.counters.failed, skipped: this.counters.skipped };
    if (this.input.retryFailed) await this.requeue(this.input.retryFailed);
    for (;;) {
      const started = await this.startShards();
      const toppedUp = await this.topUpShards();
      this.lookInMs = started + toppedUp > 0 ? lookAfterChangeMs : Math.min(lookAtMostEveryMs, this.lookInMs * 2);
      this.showProgress();
      if (this.running() === 0 && !this.paused && !this.hasWork()) {
        // An update still running may put URLs back in the queue: the crawl is over only after it, and a look.
        await condition(allHandlersFinished);
        await this.look();
        if (this.hasWork() || this.paused) continue;
        break;
      }
      const seen = this.changed;
      if (await condition(() => this.changed !== seen, this.lookInMs)) this.lookInMs = lookAfterChangeMs;
      await this.look();
    }
    // No shard runs: any lease left is an orphan, and the frontier's counts are the crawl's.
    await this.reconcile();
    this.phase = 'finished';
    const summary = this.progress();
    this.showProgress(summary);
    return summary;
  }

  private async seed(seeds: string[]): Promise<void> {
    this.phase = 'seeding';
    this.showProgress();
    const { settings } = this.input;
    const seeded = await this.untilServed('seed', () => seedFrontier({ ...this.ref, seeds, settings }));
    this.database ??= seeded.database;
    // The shards' first grants are paced by the fleet's host pacers, which saw the sitemap requests.
    if (settings.sitemaps) await this.untilServed('sitemaps', () => seedFromSitemaps({ ...this.ref, seeds }));
    this.phase = this.paused ? 'paused' : 'crawling';
  }

  /** The frontier per shard: the crawl's counts, each shard's queue. */
  private async look(): Promise<void> {
    const looked = await this.untilServed('shard queues', () => shardQueues({ ...this.ref, shards: this.shards.length }));
    this.adoptCounts(looked.counts);
    this.hostsQueued = looked.hostsQueued;
    for (const shard of this.shards) shard.queue = looked.shards[shard.index];
    if (this.running() === 0) this.spent = this.finished();
  }

  private async reconcile(): Promise<void> {
    const { counts } = await this.untilServed('reconcile', () => reconcileFrontier(this.ref));
    if (counts) this.adoptCounts(counts);
  }

  private adoptCounts({ saved, failed, skipped, byStatus, byReason }: FrontierCounts): void {
    Object.assign(this.counters, { saved, failed, skipped, byStatus, byReason });
    this.run_.saved = saved - this.finishedBefore.saved;
    this.run_.failed = failed - this.finishedBefore.failed + this.run_.requeued;
    this.run_.skipped = skipped - this.finishedBefore.skipped;
  }

  private finished(): number {
    return this.counters.saved + this.counters.failed + this.counters.skipped;
  }

  private running(): number {
    return this.shards.filter((shard) => shard.running).length;
  }

  /** URLs no shard holds a budget for. */
  private available(): number {
    return this.input.settings.maxPages - this.spent - this.shards.reduce((sum, shard) => sum + (shard.running ? shard.budget : 0), 0);
  }

  private hasWork(): boolean {
    return this.available() > 0 && this.shards.some((shard) => shard.queue.queued > 0);
  }

  /**
   * What a shard is given at a time: half an even share of what is left of
   * `maxPages`, so that some is always held back for the shards that turn
   * out to have more work (topped up while they run) or whose hosts are
   * found later; one that spends what it has and gets no more ends, and is
   * started again once budget comes back.
   */
  private share(): number {
    return Math.max(1, Math.floor((this.input.settings.maxPages - this.spent) / (2 * this.shards.length)));
  }

  /** Starts the shards that have queued URLs and no running execution. Returns how many started. */
  private async startShards(): Promise<number> {
    if (this.paused || this.phase !== 'crawling') return 0;
    const starts: Array<Promise<void>> = [];
    for (const shard of this.shards) {
      const budget = Math.min(this.share(), this.available());
      if (shard.running || shard.queue.queued === 0 || budget <= 0) continue;
      // Running from now on: it holds its budget, which the next shard's start must not give out again.
      shard.running = true;
      shard.budget = budget;
      shard.finishedAtStart = finishedOf(shard.queue);
      starts.push(this.startShard(shard, budget));
    }
    await Promise.all(starts);
    return starts.length;
  }

  /**
   * Gives more budget to each running shard with queued URLs that the last
   * look says has less than half a share left (its URLs finished and in
   * flight counted against what it was given). Returns how many got more.
   */
  private async topUpShards(): Promise<number> {
    if (this.paused || this.phase !== 'crawling') return 0;
    const share = this.share();
    const topUps: Array<Promise<void>> = [];
    for (const shard of this.shards) {
      const left = shard.budget - (finishedOf(shard.queue) - shard.finishedAtStart) - shard.queue.leased;
      const more = Math.min(share, this.available());
      if (!shard.handle || shard.queue.queued === 0 || left >= share / 2 || more <= 0) continue;
      shard.budget += more;
      topUps.push(this.tell(shard.handle, { budget: more }));
    }
    await Promise.all(topUps);
    return topUps.length;
  }

  private async startShard(shard: Shard, budget: number): Promise<void> {
    const { crawlId, token, settings, scope } = this.input;
    const assignment: ShardAssignment = { index: shard.index, count: this.shards.length, budget, limits: shardLimits(this.limits, this.shards.length) };
    const limitsSeq = this.limitsSeq;
    const handle = await startChild('crawlShardWorkflow', {
      workflowId: shard.workflowId,
      args: [{ crawlId, token, settings, scope, shard: assignment } satisfies CrawlInput],
      staticSummary: `tcrawl ${crawlId}: shard ${shard.index + 1} of ${this.shards.length}, up to ${budget} URLs`,
      ...(this.attributed ? { typedSearchAttributes: [{ key: crawlSearchAttributes.crawlId, value: crawlId }] } : {}),
    });
    shard.handle = handle as ChildWorkflowHandle<never>;
    // Steering while it was starting reached the shards that ran then: not this one.
    if (this.paused) await this.tell(shard.handle, { pause: true });
    if (this.limitsSeq !== limitsSeq) await this.tell(shard.handle, { limits: shardLimits(this.limits, this.shards.length) });
    (handle.result() as Promise<CrawlSummary>).then(
      (summary) => this.shardEnded(shard, summary),
      (error: unknown) => this.shardFailed(shard, error),
    );
  }

  private shardEnded(shard: Shard, summary: CrawlSummary): void {
    const run = summary.run;
    this.spent += run ? run.saved + run.failed + run.skipped : shard.budget;
    this.counters.retried += summary.retried;
    shard.running = false;
    shard.handle = null;
    shard.budget = 0;
    this.changed++;
  }

  /** A shard cancelled with the crawl, or failed: what it finished is counted at the next look; a failure is kept for status. */
  private shardFailed(shard: Shard, error: unknown): void {
    // What it spent is not known: its whole budget, until no shard runs and the frontier says.
    this.spent += shard.budget;
    shard.running = false;
    shard.handle = null;
    shard.budget = 0;
    this.changed++;
    if (isCancellation(error)) return;
    log.error('Shard failed', { workflowId: shard.workflowId, error: String(error) });
    this.recordFailure(shard.workflowId, error);
  }

  private recordFailure(what: string, error: unknown): void {
    const failure = applicationFailureOf(error);
    this.failures.push({ batchId: what, host: '', code: failure?.type ?? activityFailureCodes.batchFailed, message: failure?.message ?? String(error), atMs: Date.now() });
    this.failures.splice(0, this.failures.length - keptFailures);
  }

  private untilServed<T>(what: string, run: () => Promise<T>): Promise<T> {
    return untilServed(what, run, (failed, error) => this.recordFailure(failed, error));
  }

  /** Tells every running shard; one that has just ended misses it, and its next execution starts from the crawl's steering. */
  private async tellShards(steering: ShardSteering): Promise<void> {
    const running = this.shards.flatMap((shard) => (shard.handle ? [shard.handle] : []));
    await Promise.all(running.map((handle) => this.tell(handle, steering)));
  }

  private async tell(handle: ChildWorkflowHandle<never>, steering: ShardSteering): Promise<void> {
    await handle.signal(shardSteeringSignal, steering).catch((error: unknown) => log.warn('A shard missed steering (it had ended)', { workflowId: handle.workflowId, error: String(error) }));
  }

  /** Cancelled: each shard is cancelled with this workflow and winds down; then the leases left go back and the figures go to the memo. */
  private async windDown(): Promise<void> {
    this.phase = 'cancelling';
    this.showProgress();
    await condition(() => this.running() === 0);
    await this.reconcile();
    this.phase = 'cancelled';
    const summary = this.progress();
    upsertMemo({ summary });
    this.showProgress(summary);
  }

  validateSteering(what: string): void {
    refuseSteeringWhenOver(this.phase, what);
  }

  validateRetryFailed(filter: RequeueFilter): void {
    this.validateSteering('retry-failed');
    checkRequeueFilter(filter);
  }

  validateSetRate(request: SetRateRequest): void {
    this.validateSteering('set-rate');
    const problem = rateRequestProblem(this.limits, request);
    if (problem) throw new Error(problem);
  }

  async pause(): Promise<CrawlProgress> {
    this.paused = true;
    if (this.phase === 'crawling') this.phase = 'paused';
    this.changed++;
    await this.tellShards({ pause: true });
    return this.progress();
  }

  async resume(): Promise<CrawlProgress> {
    this.paused = false;
    if (this.phase === 'paused') this.phase = 'crawling';
    this.changed++;
    await this.tellShards({ resume: true });
    return this.progress();
  }

  async setRate(request: SetRateRequest): Promise<CrawlProgress['limits']> {
    applyRateRequest(this.limits, request);
    this.limitsSeq++;
    await this.tellShards({ limits: shardLimits(this.limits, this.shards.length) });
    return this.progress().limits;
  }

  async retryFailed(filter: RequeueFilter): Promise<{ requeued: number }> {
    const requeued = await this.requeue(filter);
    await this.tellShards({ requeued: true });
    return { requeued };
  }

  /** Failed URLs back in the queue: no longer counted as finished, so the budget gets them back. */
  private async requeue(filter: RequeueFilter): Promise<number> {
    const { requeued } = await this.untilServed('retry-failed', () => requeueFailed({ ...this.ref, ...filter }));
    this.run_.requeued += requeued;
    this.spent -= requeued;
    this.counters.failed -= requeued;
    this.changed++;
    return requeued;
  }

  private showProgress(progress = this.progress()): void {
    this.publisher.show(progress, () => true);
  }

  progress(): CrawlProgress {
    const shards: ShardStatus[] = this.shards.map(({ index, workflowId, running, budget, queue }) => ({
      index,
      workflowId,
      running,
      budget: running ? budget : 0,
      queued: queue.queued,
      inFlightUrls: queue.leased,
      saved: queue.saved,
      failed: queue.failed,
      skipped: queue.skipped,
    }));
    const { rate, hostRates, totalRate, groups } = this.limits;
    return {
      crawlId: this.input.crawlId,
      phase: this.phase,
      ...this.counters,
      queued: shards.reduce((sum, shard) => sum + shard.queued, 0),
      inFlightBatches: 0,
      inFlightUrls: shards.reduce((sum, shard) => sum + shard.inFlightUrls, 0),
      hosts: this.hostsQueued,
      hostStates: [],
      limits: { rate, hostRates, totalRate, groups },
      startedAtMs: this.startedAtMs,
      elapsedMs: Date.now() - this.startedAtMs,
      batchFailures: this.failures,
      run: this.run_,
      maxPages: this.input.settings.maxPages,
      shards,
    };
  }
}
