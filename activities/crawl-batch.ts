import { setMaxListeners } from 'node:events';
import { Context } from '@temporalio/activity';
import type { Pool } from 'pg';
import type { BatchRequest, BatchResult, UrlOutcome } from '../src/crawl-types';
import { extractPage } from '../src/extract';
import { isInScope, scopeRejection } from '../src/scope';
import { fetchPage, type FetchOutcome } from './fetch-page';
import { hostQueues, leaseUrls, type FinishedUrl, type LeasedUrl } from './frontier-store';
import { agentFor } from './http-agent';
import { saveResults, type UrlResult } from './page-store';
import type { RobotsCache } from './robots-cache';

/** Results are written in groups of this many, or after this long, whichever comes first. */
const flushEvery = 50;
const flushAfterMs = 500;
const heartbeatEveryMs = 1000;

export interface CrawlBatchDeps {
  pool: Pool;
  robots: RobotsCache;
}

/**
 * Leases up to `limit` URLs of one host, fetches them on the schedule the
 * workflow granted (request i starts no earlier than startAt + i·interval,
 * at most `concurrency` at once), parses and saves them. May run twice for
 * one batch id: the lease comes back the same and finished URLs are reported,
 * not fetched again.
 */
export function createCrawlBatch({ pool, robots }: CrawlBatchDeps) {
  return async function crawlBatch(request: BatchRequest): Promise<BatchResult> {
    const lease = await leaseUrls(pool, request.crawlId, request.batchId, request.host, request.limit, request.startAtMs);
    const tally = new BatchTally(lease.pending.length + lease.finished.length);
    for (const finished of lease.finished) tally.addFinished(finished);
    const writer = new ResultWriter(pool, request, tally);
    const context = Context.current();
    const heartbeat = setInterval(() => context.heartbeat({ done: tally.done }), heartbeatEveryMs);
    try {
      await runOnSchedule(lease.pending, request, async (leased) => {
        const result = await crawlUrl(leased, request, robots);
        tally.add(result);
        await writer.add(result);
      }, (at) => tally.started(at));
      await writer.flush();
    } finally {
      clearInterval(heartbeat);
    }
    const queue = (await hostQueues(pool, request.crawlId, request.host))[request.host];
    return tally.result(queue?.queued ?? 0, queue?.nextDueAtMs ?? null);
  };
}

/** Runs `work` for each URL, starting the i-th no earlier than its slot and keeping `concurrency` in flight. */
async function runOnSchedule(
  urls: LeasedUrl[],
  { startAtMs, intervalMs, concurrency }: BatchRequest,
  work: (url: LeasedUrl) => Promise<void>,
  onStart: (atMs: number) => void,
): Promise<void> {
  // A retried batch starts its window again from now, never in a burst to catch up.
  const windowStart = Math.max(startAtMs, Date.now());
  let next = 0;
  const signal = Context.current().cancellationSignal;
  // Every request in flight (and every paced sleep) listens for cancellation.
  setMaxListeners(2 * concurrency + 10, signal);
  const runner = async () => {
    while (next < urls.length && !signal.aborted) {
      const index = next++;
      const delay = windowStart + index * intervalMs - Date.now();
      if (delay > 0) await Context.current().sleep(delay);
      onStart(Date.now());
      await work(urls[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, urls.length) }, runner));
  if (signal.aborted) throw signal.reason;
}

async function crawlUrl(leased: LeasedUrl, request: BatchRequest, robots: RobotsCache): Promise<UrlResult> {
  const { settings, scope, crawlId } = request;
  if (settings.obeyRobots) {
    const verdict = await robots.verdict(crawlId, leased.url, settings);
    if (verdict === 'unavailable') return retryOrFail(leased, request, { status: null, reason: 'robots_unavailable' });
    if (verdict === 'disallowed') return { url: leased.url, outcome: 'skipped', status: null, reason: 'robots_disallowed' };
  }
  const outcome = await fetchPage(leased.url, {
    dispatcher: agentFor(settings),
    userAgent: settings.userAgent,
    maxBodyBytes: settings.maxBodyBytes,
    maxRedirects: settings.maxRedirects,
    retryMaxMs: settings.retryMaxMs,
    allowPrivate: settings.allowPrivate,
    signal: Context.current().cancellationSignal,
    checkHop: async (hop) => {
      const rejection = scopeRejection(hop, scope);
      if (rejection) return rejection;
      if (settings.obeyRobots && (await robots.verdict(crawlId, hop, settings)) !== 'allowed') return 'robots_disallowed';
      return null;
    },
  });
  return toResult(leased, outcome, request);
}

function toResult(leased: LeasedUrl, outcome: FetchOutcome, request: BatchRequest): UrlResult {
  const { url, depth } = leased;
  switch (outcome.kind) {
    case 'html': {
      const { settings, scope } = request;
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
    case 'failed':
      if (outcome.transient) return retryOrFail(leased, request, outcome);
      return { url, outcome: 'failed', status: outcome.status ?? null, reason: outcome.reason };
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
  return { url: leased.url, outcome: 'retried', status, reason: failure.reason, notBefore: new Date(Date.now() + delayMs) };
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
  private lastStartMs: number | null = null;
  done = 0;

  constructor(private readonly leased: number) {}

  started(atMs: number): void {
    this.lastStartMs = atMs;
  }

  add(result: UrlResult): void {
    this.outcomes[result.outcome]++;
    this.done++;
    if (result.outcome === 'retried') {
      if (result.reason === 'http_429' || result.reason === 'http_503') {
        this.pauseHostUntilMs = Math.max(this.pauseHostUntilMs ?? 0, result.notBefore.getTime());
      }
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

  result(hostQueued: number, hostNextDueAtMs: number | null): BatchResult {
    return {
      leased: this.leased,
      outcomes: this.outcomes,
      byStatus: this.byStatus,
      byReason: this.byReason,
      discovered: this.discovered,
      hostQueued,
      hostNextDueAtMs,
      pauseHostUntilMs: this.pauseHostUntilMs,
      lastStartMs: this.lastStartMs,
    };
  }
}
