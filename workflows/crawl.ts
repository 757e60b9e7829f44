import { condition, continueAsNew, log, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { BatchResult, CrawlCounters, CrawlInput, CrawlPhase, CrawlProgress, CrawlState, CrawlSummary } from '../src/crawl-types';
import { progressQuery } from './queries';
import { newHost, nextWakeMs, settleGrant, takeGrant, type Grant, type HostState } from './host-schedule';

// No maximumAttempts: a dead worker or database is waited out, never given up on.
// Batches heartbeat every second, so a killed worker's batch is retried after the heartbeat timeout.
const { crawlBatch } = proxyActivities<Activities>({
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

const { seedFrontier, reconcileFrontier } = proxyActivities<Activities>({
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});

/** Batches in flight for one crawl at most, across all hosts. */
const maxBatchesInFlight = 32;

/**
 * One crawl. Owns the control — what to lease, when each host may be
 * requested next, the page budget, counters — while the frontier itself
 * lives in Postgres. Ends when nothing is queued or in flight.
 */
export async function crawlWorkflow(input: CrawlInput): Promise<CrawlSummary> {
  const crawl = new Crawl(input);
  setHandler(progressQuery, () => crawl.progress());
  return crawl.run();
}

class Crawl {
  private readonly hosts: Record<string, HostState> = {};
  private readonly counters: CrawlCounters;
  private readonly inFlight = new Map<string, Grant>();
  private batchSeq: number;
  private batchesThisRun = 0;
  private readonly startedAtMs: number;
  private phase: CrawlPhase = 'crawling';
  /** Bumped whenever a batch settles, so the main loop wakes up. */
  private settled = 0;

  constructor(private readonly input: CrawlInput) {
    const state = input.state;
    this.counters = state?.counters ?? { saved: 0, failed: 0, skipped: 0, retried: 0, byStatus: {}, byReason: {} };
    this.batchSeq = state?.batchSeq ?? 0;
    this.startedAtMs = state?.startedAtMs ?? Date.now();
    for (const [name, host] of Object.entries(state?.hosts ?? {})) this.hosts[name] = { ...newHost(host.queued), notBeforeMs: host.notBeforeMs };
  }

  async run(): Promise<CrawlSummary> {
    if (this.input.seeds) await this.seed(this.input.seeds);
    for (;;) {
      this.handOutBatches();
      if (this.inFlight.size === 0) {
        if (this.shouldContinueAsNew()) return this.continueAsNew();
        if (this.budget() <= 0 || nextWakeMs(this.hosts, this.input.settings, Date.now()) === null) {
          if (!(await this.reconcile())) break;
          continue;
        }
      }
      await this.waitForChange();
    }
    this.phase = 'finished';
    return this.progress();
  }

  private async seed(seeds: string[]): Promise<void> {
    this.phase = 'seeding';
    const { queuedByHost } = await seedFrontier({ crawlId: this.input.crawlId, seeds, settings: this.input.settings });
    for (const [name, queued] of Object.entries(queuedByHost)) this.hosts[name] = newHost(queued);
    this.phase = 'crawling';
  }

  /** URLs that may still be leased under maxPages. */
  private budget(): number {
    const { saved, failed, skipped } = this.counters;
    let reserved = 0;
    for (const grant of this.inFlight.values()) reserved += grant.limit;
    return this.input.settings.maxPages - saved - failed - skipped - reserved;
  }

  private handOutBatches(): void {
    if (this.shouldContinueAsNew()) this.phase = 'draining';
    if (this.phase === 'draining') return;
    while (this.inFlight.size < maxBatchesInFlight) {
      const grant = takeGrant(this.hosts, this.input.settings, this.budget(), Date.now());
      if (!grant) return;
      this.startBatch(grant);
    }
  }

  private startBatch(grant: Grant): void {
    const batchId = `${this.input.crawlId}/b${++this.batchSeq}`;
    this.inFlight.set(batchId, grant);
    this.batchesThisRun++;
    const { crawlId, settings, scope } = this.input;
    crawlBatch({ crawlId, batchId, settings, scope, ...grant }).then(
      (result) => this.settle(batchId, grant, result),
      (error: unknown) => this.fail(batchId, grant, error),
    );
  }

  private settle(batchId: string, grant: Grant, result: BatchResult): void {
    this.inFlight.delete(batchId);
    settleGrant(this.hosts[grant.host], grant, result);
    const c = this.counters;
    c.saved += result.outcomes.saved;
    c.failed += result.outcomes.failed;
    c.skipped += result.outcomes.skipped;
    c.retried += result.outcomes.retried;
    addCounts(c.byStatus, result.byStatus);
    addCounts(c.byReason, result.byReason);
    for (const [name, count] of Object.entries(result.discovered)) {
      if (name === grant.host) continue; // hostQueued already counts them
      this.hosts[name] ??= newHost();
      this.hosts[name].queued += count;
    }
    this.settled++;
  }

  /** Only a non-retryable activity failure gets here; its leases are released by the next reconcile. */
  private fail(batchId: string, grant: Grant, error: unknown): void {
    log.error('Batch failed', { batchId, host: grant.host, error: String(error) });
    this.inFlight.delete(batchId);
    settleGrant(this.hosts[grant.host], grant, { leased: 0, hostQueued: 0, hostNextDueAtMs: null, pauseHostUntilMs: null, lastStartMs: null });
    this.settled++;
  }

  private async waitForChange(): Promise<void> {
    const seen = this.settled;
    const wake = this.budget() > 0 ? nextWakeMs(this.hosts, this.input.settings, Date.now()) : null;
    const changed = () => this.settled !== seen;
    if (wake === null) await condition(changed);
    else await condition(changed, Math.max(1, wake - Date.now()));
  }

  /**
   * Asks the database what is really queued (counts here are hints) and
   * releases leases no batch holds. Returns whether there is work left.
   */
  private async reconcile(): Promise<boolean> {
    const { hosts } = await reconcileFrontier({ crawlId: this.input.crawlId });
    for (const host of Object.values(this.hosts)) host.queued = 0;
    for (const [name, queue] of Object.entries(hosts)) {
      this.hosts[name] ??= newHost();
      this.hosts[name].queued = queue.queued;
      this.hosts[name].notBeforeMs = Math.max(this.hosts[name].notBeforeMs, queue.nextDueAtMs ?? 0);
    }
    return this.budget() > 0 && Object.keys(hosts).length > 0;
  }

  private shouldContinueAsNew(): boolean {
    const after = this.input.continueAsNewAfterBatches;
    return workflowInfo().continueAsNewSuggested || (after !== undefined && this.batchesThisRun >= after);
  }

  private async continueAsNew(): Promise<never> {
    const hosts: CrawlState['hosts'] = {};
    for (const [name, host] of Object.entries(this.hosts)) {
      if (host.queued > 0 || host.notBeforeMs > Date.now()) hosts[name] = { queued: host.queued, notBeforeMs: host.notBeforeMs };
    }
    const state: CrawlState = { counters: this.counters, hosts, batchSeq: this.batchSeq, startedAtMs: this.startedAtMs };
    return continueAsNew<typeof crawlWorkflow>({ ...this.input, seeds: undefined, state });
  }

  progress(): CrawlProgress {
    let queued = 0;
    for (const host of Object.values(this.hosts)) queued += Math.max(0, host.queued);
    let inFlightUrls = 0;
    for (const grant of this.inFlight.values()) inFlightUrls += grant.limit;
    return {
      crawlId: this.input.crawlId,
      phase: this.phase,
      ...this.counters,
      queued,
      inFlightBatches: this.inFlight.size,
      inFlightUrls,
      hosts: Object.keys(this.hosts).length,
      startedAtMs: this.startedAtMs,
      elapsedMs: Date.now() - this.startedAtMs,
    };
  }
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, count] of Object.entries(from)) into[key] = (into[key] ?? 0) + count;
}
