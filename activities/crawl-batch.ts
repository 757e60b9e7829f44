import { setMaxListeners } from 'node:events';
import { Context } from '@temporalio/activity';
import type { Pool } from 'pg';
import type { BatchRequest, BatchResult, UrlOutcome } from '../src/crawl-types';
import { extractPage } from '../src/extract';
import { isInScope, scopeRejection } from '../src/scope';
import { hostOf } from '../src/url';
import { fetchOptionsFor, fetchPage, type FetchOutcome } from './fetch-page';
import { hostQueues, leaseUrls, type FinishedUrl, type LeasedUrl } from './frontier-store';
import { saveResults, type UrlResult } from './page-store';
import { RequestGate } from './request-gate';
import type { RobotsCache } from './robots-cache';

/** Results are written in groups of this many, or after this long, whichever comes first. */
const flushEvery = 50;
const flushAfterMs = 500;
const heartbeatEveryMs = 1000;

export interface CrawlBatchDeps {
  pool: Pool;
  robots: RobotsCache;
}

/** What one batch works with: its request, its gate, and where results go. */
interface BatchContext {
  request: BatchRequest;
  /** settings.banBodyMarkers, compiled once per batch. */
  banMarkers: RegExp[];
  robots: RobotsCache;
  gate: RequestGate;
  tally: BatchTally;
  signal: AbortSignal;
}

/**
 * Leases up to `limit` URLs of one host, fetches them on the schedule the
 * workflow granted (starts at least `intervalMs` apart from `startAtMs`, at
 * most `concurrency` at once), parses and saves them. May run twice for one
 * batch id: the lease comes back the same and finished URLs are reported,
 * not fetched again.
 */
export function createCrawlBatch({ pool, robots }: CrawlBatchDeps) {
  return async function crawlBatch(request: BatchRequest): Promise<BatchResult> {
    const context = Context.current();
    const lease = await leaseUrls(pool, request.crawlId, request.batchId, request.host, request.limit, request.startAtMs);
    const tally = new BatchTally(lease.pending.length + lease.finished.length, request.settings.banStatuses);
    for (const finished of lease.finished) tally.addFinished(finished);
    // A retried batch starts its window again from now, never in a burst to catch up.
    const gate = new RequestGate(Math.max(request.startAtMs, Date.now()), request.intervalMs, (ms) => context.sleep(ms));
    const banMarkers = request.settings.banBodyMarkers.map((marker) => new RegExp(marker));
    const batch: BatchContext = { request, banMarkers, robots, gate, tally, signal: context.cancellationSignal };
    // Every request in flight (and every paced sleep) listens for cancellation.
    setMaxListeners(2 * request.concurrency + 10, batch.signal);
    const writer = new ResultWriter(pool, request, tally);
    const heartbeat = setInterval(() => context.heartbeat({ done: tally.done }), heartbeatEveryMs);
    try {
      const pending = await applyRobots(lease.pending, batch, writer);
      await inParallel(pending, request.concurrency, batch.signal, async (leased) => {
        const result = await crawlUrl(leased, batch);
        tally.add(result);
        await writer.add(result);
      });
      await writer.flush();
    } finally {
      clearInterval(heartbeat);
    }
    const queue = (await hostQueues(pool, request.crawlId, request.host))[request.host];
    return tally.result(gate, queue?.queued ?? 0, queue?.nextDueAtMs ?? null);
  };
}

/**
 * Settles robots.txt for the batch's host before any page: its fetch is a
 * request like any other (it passes the gate), its Crawl-delay widens the
 * spacing, and a Crawl-delay over the maximum skips the host's URLs.
 * Returns the URLs still to fetch.
 */
async function applyRobots(pending: LeasedUrl[], batch: BatchContext, writer: ResultWriter): Promise<LeasedUrl[]> {
  const { request, robots, gate, tally } = batch;
  if (!request.settings.obeyRobots || pending.length === 0) return pending;
  const policy = await robots.policy(request.crawlId, pending[0].url, request.settings, () => gate.pass());
  if (policy === null) {
    // Unreachable: nothing of the host is fetched; the URLs wait with the host, and robots.txt is asked again then.
    await finishAll(pending, (leased) => retryOrFail(leased, request, { status: null, reason: 'robots_unavailable' }), batch, writer);
    return [];
  }
  const crawlDelayMs = (policy.crawlDelaySecs ?? 0) * 1000;
  tally.crawlDelayMs = crawlDelayMs;
  if (crawlDelayMs <= request.settings.maxCrawlDelaySecs * 1000) {
    gate.slowTo(crawlDelayMs);
    return pending;
  }
  tally.pause(null, 'crawl_delay_too_long');
  await finishAll(pending, (leased) => ({ url: leased.url, outcome: 'skipped', status: null, reason: 'crawl_delay_too_long' }), batch, writer);
  return [];
}

/** Records an outcome for every URL without fetching any. */
async function finishAll(pending: LeasedUrl[], outcome: (leased: LeasedUrl) => UrlResult, { tally }: BatchContext, writer: ResultWriter): Promise<void> {
  for (const leased of pending) {
    const result = outcome(leased);
    tally.add(result);
    await writer.add(result);
  }
}

/** Runs `work` over `items` with at most `concurrency` at once; stops taking new items once cancelled. */
async function inParallel<T>(items: T[], concurrency: number, signal: AbortSignal, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const runner = async () => {
    while (next < items.length && !signal.aborted) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, runner));
  if (signal.aborted) throw signal.reason;
}

async function crawlUrl(leased: LeasedUrl, batch: BatchContext): Promise<UrlResult> {
  const { request, robots, gate, tally, signal } = batch;
  const { settings, scope, crawlId } = request;
  if (settings.obeyRobots) {
    const verdict = await robots.verdict(crawlId, leased.url, settings, () => gate.pass());
    if (verdict === 'unavailable') return retryOrFail(leased, request, { status: null, reason: 'robots_unavailable' });
    if (verdict === 'disallowed') return { url: leased.url, outcome: 'skipped', status: null, reason: 'robots_disallowed' };
  }
  const startedMs = Date.now();
  const outcome = await fetchPage(leased.url, {
    ...fetchOptionsFor(settings),
    signal,
    beforeRequest: () => gate.pass(),
    checkHop: async (hop) => {
      // Another host has its own schedule: its URL is queued for it, not fetched here.
      if (hostOf(hop) !== request.host) return 'other_host';
      const rejection = scopeRejection(hop, scope);
      if (rejection) return rejection;
      if (settings.obeyRobots && (await robots.verdict(crawlId, hop, settings, () => gate.pass())) !== 'allowed') return 'robots_disallowed';
      return null;
    },
  });
  tally.latency(Date.now() - startedMs);
  return toResult(leased, outcome, batch);
}

function toResult(leased: LeasedUrl, outcome: FetchOutcome, { request, banMarkers }: BatchContext): UrlResult {
  const { url, depth } = leased;
  const { settings, scope } = request;
  switch (outcome.kind) {
    case 'html': {
      if (banMarkers.some((marker) => marker.test(outcome.body))) {
        return retryOrFail(leased, request, { status: outcome.status, reason: 'ban_marker' });
      }
      const page = extractPage(outcome.body, outcome.finalUrl, settings.items);
      const follow = depth < settings.maxDepth ? page.links.filter((link) => isInScope(link, scope)) : [];
      return {
        url,
        outcome: 'saved',
        status: outcome.status,
        finalUrl: outcome.finalUrl,
        contentType: outcome.contentType,
        title: page.title,
        depth,
        bytes: Buffer.byteLength(outcome.body),
        html: settings.saveHtml ? outcome.body : null,
        linkCount: page.links.length,
        newUrls: follow.map((link) => ({ url: link, depth: depth + 1, foundOn: url })),
        items: page.items,
        fetchedAt: new Date(),
      };
    }
    case 'skipped':
      return { url, outcome: 'skipped', status: outcome.status, reason: outcome.reason };
    case 'failed': {
      if (outcome.reason === 'redirect_refused' && outcome.detail === 'other_host' && outcome.location) {
        // The redirect target counts as the same hop as the URL that pointed to it.
        const target = isInScope(outcome.location, scope) ? [{ url: outcome.location, depth, foundOn: url }] : [];
        return { url, outcome: 'skipped', status: outcome.status ?? null, reason: 'redirected_off_host', newUrls: target };
      }
      const banned = outcome.status !== undefined && settings.banStatuses.includes(outcome.status);
      if (outcome.transient || banned) return retryOrFail(leased, request, outcome);
      return { url, outcome: 'failed', status: outcome.status ?? null, reason: outcome.reason };
    }
  }
}

/** A transient failure goes back to the queue with exponential back-off, until retries run out. */
function retryOrFail(
  leased: LeasedUrl,
  { settings }: BatchRequest,
  failure: { status?: number | null; reason: string; retryAfterMs?: number },
): UrlResult {
  const status = failure.status ?? null;
  if (leased.attempts >= settings.maxRetries) return { url: leased.url, outcome: 'failed', status, reason: failure.reason };
  const backoffMs = Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** leased.attempts);
  const delayMs = Math.max(backoffMs, failure.retryAfterMs ?? 0);
  return { url: leased.url, outcome: 'retried', status, reason: failure.reason, notBefore: new Date(Date.now() + delayMs), retryAfterMs: failure.retryAfterMs };
}

/** Buffers results and writes them in groups, so a killed worker loses at most one group of fetches. */
class ResultWriter {
  private buffer: UrlResult[] = [];
  private lastFlushMs = Date.now();
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly pool: Pool,
    private readonly request: BatchRequest,
    private readonly tally: BatchTally,
  ) {}

  async add(result: UrlResult): Promise<void> {
    this.buffer.push(result);
    if (this.buffer.length >= flushEvery || Date.now() - this.lastFlushMs >= flushAfterMs) await this.flush();
  }

  /** Writes are chained so groups land in order and a failure reaches the caller. */
  flush(): Promise<void> {
    const group = this.buffer;
    this.buffer = [];
    this.lastFlushMs = Date.now();
    this.writing = this.writing.then(async () => {
      const discovered = await saveResults(this.pool, this.request.crawlId, this.request.batchId, group);
      this.tally.addDiscovered(discovered);
    });
    return this.writing;
  }
}

class BatchTally {
  readonly outcomes: Record<UrlOutcome, number> = { saved: 0, failed: 0, skipped: 0, retried: 0 };
  private readonly byStatus: Record<string, number> = {};
  private readonly byReason: Record<string, number> = {};
  private readonly discovered: Record<string, number> = {};
  private pauseHostUntilMs: number | null = null;
  private pauseReason: string | null = null;
  private banned = 0;
  private latencyTotalMs = 0;
  private latencies = 0;
  crawlDelayMs: number | null = null;
  done = 0;

  constructor(
    private readonly leased: number,
    private readonly banStatuses: number[],
  ) {}

  /** Asks the scheduler to leave the host alone until `untilMs` (null: just report the reason). */
  pause(untilMs: number | null, reason: string): void {
    if (untilMs !== null) this.pauseHostUntilMs = Math.max(this.pauseHostUntilMs ?? 0, untilMs);
    this.pauseReason = reason;
  }

  latency(ms: number): void {
    this.latencyTotalMs += ms;
    this.latencies++;
  }

  add(result: UrlResult): void {
    this.outcomes[result.outcome]++;
    this.done++;
    if (result.status !== null && this.banStatuses.includes(result.status)) this.banned++;
    if (result.outcome === 'retried') {
      if (result.reason === 'ban_marker') this.banned++;
      if (result.retryAfterMs !== undefined) this.pause(result.notBefore.getTime(), 'retry_after');
      if (result.reason === 'robots_unavailable') this.pause(result.notBefore.getTime(), 'robots_unreachable');
      return;
    }
    this.count(result.status, result.outcome === 'saved' ? null : result.reason);
  }

  addFinished(finished: FinishedUrl): void {
    const outcome = finished.state === 'done' ? 'saved' : finished.state;
    this.outcomes[outcome]++;
    this.done++;
    this.count(finished.status, finished.reason);
  }

  addDiscovered(discovered: Record<string, number>): void {
    for (const [host, count] of Object.entries(discovered)) this.discovered[host] = (this.discovered[host] ?? 0) + count;
  }

  private count(status: number | null, reason: string | null): void {
    const statusKey = status === null ? 'none' : String(status);
    this.byStatus[statusKey] = (this.byStatus[statusKey] ?? 0) + 1;
    if (reason) this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
  }

  result(gate: RequestGate, hostQueued: number, hostNextDueAtMs: number | null): BatchResult {
    return {
      leased: this.leased,
      outcomes: this.outcomes,
      byStatus: this.byStatus,
      byReason: this.byReason,
      discovered: this.discovered,
      hostQueued,
      hostNextDueAtMs,
      pauseHostUntilMs: this.pauseHostUntilMs,
      pauseReason: this.pauseReason,
      requests: gate.requests,
      firstStartMs: gate.firstStartMs,
      lastStartMs: gate.lastStartMs,
      nextStartAtMs: gate.nextStartAtMs,
      banned: this.banned,
      meanLatencyMs: this.latencies > 0 ? this.latencyTotalMs / this.latencies : null,
      crawlDelayMs: this.crawlDelayMs,
    };
  }
}
