import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context, log } from '@temporalio/activity';
import type { Pool } from 'pg';
import { maxReportedHosts, type BatchRequest, type BatchResult, type CrawlSettings, type UrlOutcome } from '../src/crawl-types';
import { bodyKindOf } from '../src/decode';
import { applyRule, requestFor, type FoundRequest, type Item } from '../src/rules/apply';
import { ruleFor, type CompiledRule, type CompiledRules } from '../src/rules/compile';
import { ParseError, parseDocument, type ParsedDocument } from '../src/rules/document';
import type { CrawlRequest } from '../src/rules/request';
import { canonicalizeUrl } from '../src/url';
import { inParallel } from '../src/in-parallel';
import type { ScopeRules } from '../src/scope';
import { isInScope } from '../src/scope';
import { batchErrorVerdict, isDatabaseUnavailable, permanentBatchFailure } from './batch-failure';
import type { CrawlStore } from './crawl-store';
import { describeError } from './fetch-errors';
import { fetchOptionsFor, fetchPage, type FetchOutcome } from './fetch-page';
import { batchRows, hostQueues, leaseUrls, newRequest, releaseFailedBatch, requestOf, type FinishedUrl, type LeasedUrl } from './frontier-store';
import { HandlerError, runHandler } from './handlers';
import { saveResults, type UrlResult } from './page-store';
import { RequestGate } from './request-gate';
import type { RobotsCache } from './robots-cache';
import { MissingSecretError, resolveValues, scrubSecrets } from './secrets';

/** Results are written in groups of this many, or after this long, whichever comes first. */
const flushEvery = 50;
const flushAfterMs = 500;
const heartbeatEveryMs = 1000;

export interface CrawlBatchDeps {
  pool: Pool;
  robots: RobotsCache;
  crawls: CrawlStore;
}

/** What one batch works with: its request, the crawl's settings, its gate, and where results go. */
interface BatchContext {
  request: BatchRequest;
  settings: CrawlSettings;
  scope: ScopeRules;
  rules: CompiledRules;
  /** settings.banBodyMarkers, compiled once per batch. */
  banMarkers: RegExp[];
  robots: RobotsCache;
  gate: RequestGate;
  tally: BatchTally;
  /** Aborted when the activity is cancelled or one of the batch's own steps fails: every fetch and paced sleep listens. */
  signal: AbortSignal;
}

/**
 * Leases up to `limit` URLs of one host, fetches them on the schedule the
 * workflow granted (starts at least `intervalMs` apart from `startAtMs`, at
 * most `concurrency` at once), parses and saves them. May run twice for one
 * batch id: the lease comes back the same and finished URLs are reported,
 * not fetched again.
 */
export function createCrawlBatch({ pool, robots, crawls }: CrawlBatchDeps) {
  return async function crawlBatch(request: BatchRequest): Promise<BatchResult> {
    const context = Context.current();
    const { settings, scope, rules } = await crawls.load(request, request);
    const lease = await leaseUrls(pool, request.crawlId, request.batchId, request.host, request.limit, request.startAtMs);
    const tally = new BatchTally(lease.pending.length + lease.finished.length, settings.banStatuses);
    for (const finished of lease.finished) tally.addFinished(finished);
    const stop = new AbortController();
    const cancelled = () => stop.abort(context.cancellationSignal.reason);
    context.cancellationSignal.addEventListener('abort', cancelled, { once: true });
    // Every request in flight and every paced sleep listens.
    setMaxListeners(2 * request.concurrency + 10, stop.signal);
    // A retried batch starts its window again from now, never in a burst to catch up.
    const gate = new RequestGate(Math.max(request.startAtMs, Date.now()), request.intervalMs, (ms) => sleep(ms, undefined, { signal: stop.signal }));
    const banMarkers = settings.banBodyMarkers.map((marker) => new RegExp(marker));
    const batch: BatchContext = { request, settings, scope, rules, banMarkers, robots, gate, tally, signal: stop.signal };
    const writer = new ResultWriter(pool, request, tally);
    const heartbeat = setInterval(() => context.heartbeat({ done: tally.done }), heartbeatEveryMs);
    try {
      const pending = await applyRobots(lease.pending, batch, writer);
      await inParallel(pending, request.concurrency, stop, async (leased) => {
        const result = await settleUrl(leased, batch);
        tally.add(result);
        await writer.add(result);
      });
      await writer.flush();
      const queue = (await hostQueues(pool, request.crawlId, { host: request.host })).queues[request.host];
      return tally.result(gate, queue?.queued ?? 0, queue?.nextDueAtMs ?? null);
    } catch (error) {
      const { attempt } = context.info;
      if (context.cancellationSignal.aborted || batchErrorVerdict(error, attempt) === 'retry') throw error;
      // Given back with an attempt counted, so a URL that breaks every batch it is in ends failed `internal`.
      const released = await releaseFailedBatch(pool, request.crawlId, request.batchId, { detail: describeError(error), ...settings });
      log.error('Batch failed for good', { batchId: request.batchId, host: request.host, attempt, error: describeError(error), ...released });
      // What the batch reports is what its rows say, not what it meant to write: the workflow's counters equal the rows.
      const written = new BatchTally(0, settings.banStatuses);
      for (const finished of (await batchRows(pool, request.crawlId, request.batchId)).finished) written.addFinished(finished);
      written.outcomes.retried += released.requeued;
      throw permanentBatchFailure(error, attempt, written.result(gate, 0, null));
    } finally {
      clearInterval(heartbeat);
      context.cancellationSignal.removeEventListener('abort', cancelled);
    }
  };
}

/**
 * Settles robots.txt for the batch's host before any page: its fetch is a
 * request like any other (it passes the gate), its Crawl-delay widens the
 * spacing, and a Crawl-delay over the maximum skips the host's URLs.
 * Returns the URLs still to fetch.
 */
async function applyRobots(pending: LeasedUrl[], batch: BatchContext, writer: ResultWriter): Promise<LeasedUrl[]> {
  const { request, settings, robots, gate, tally } = batch;
  if (!settings.obeyRobots || pending.length === 0) return pending;
  const policy = await robots.policy(request.crawlId, requestOf(pending[0]).url, settings, () => gate.pass());
  if (policy === null) {
    // Unreachable: nothing of the host is fetched; the URLs wait with the host, and robots.txt is asked again then.
    await finishAll(pending, (leased) => retryOrFail(leased, settings, { status: null, reason: 'robots_unavailable' }), batch, writer);
    return [];
  }
  const crawlDelayMs = (policy.crawlDelaySecs ?? 0) * 1000;
  tally.crawlDelayMs = crawlDelayMs;
  if (crawlDelayMs <= settings.maxCrawlDelaySecs * 1000) {
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

/**
 * One URL's outcome, whatever happens: an error of our own (a bug, a parser
 * choking on a page) is that URL's `internal` failure, retried within
 * maxRetries, never the batch's. Only stopping and an unavailable database
 * escape — neither is the URL's fault.
 */
async function settleUrl(leased: LeasedUrl, batch: BatchContext): Promise<UrlResult> {
  try {
    return await crawlUrl(leased, batch);
  } catch (error) {
    if (batch.signal.aborted || isDatabaseUnavailable(error)) throw error;
    log.warn('URL failed with an internal error', { url: leased.url, error: describeError(error), stack: (error as Error).stack });
    return retryOrFail(leased, batch.settings, { status: null, reason: 'internal', detail: describeError(error) });
  }
}

async function crawlUrl(leased: LeasedUrl, batch: BatchContext): Promise<UrlResult> {
  const { settings, robots, gate, tally, signal, rules } = batch;
  const request = requestOf(leased);
  if (settings.obeyRobots) {
    const verdict = await robots.verdict(batch.request.crawlId, request.url, settings, () => gate.pass());
    if (verdict === 'unavailable') return retryOrFail(leased, settings, { status: null, reason: 'robots_unavailable' });
    if (verdict === 'disallowed') return { url: leased.url, outcome: 'skipped', status: null, reason: 'robots_disallowed' };
  }
  const rule = ruleFor(rules, request.url, request.label);
  let sending: ReturnType<typeof sendingFor>;
  try {
    sending = sendingFor(settings, rule, request);
  } catch (error) {
    if (!(error instanceof MissingSecretError)) throw error;
    return { url: leased.url, outcome: 'failed', status: null, reason: 'secret_missing', detail: error.message };
  }
  const startedMs = Date.now();
  const outcome = await fetchPage(request.url, {
    ...fetchOptionsFor(settings),
    method: request.method,
    body: request.body,
    headers: sending.headers,
    secretQuery: sending.query,
    acceptsType: rule.parse === 'auto' ? (contentType) => bodyKindOf(contentType) !== null : () => true,
    signal,
    beforeRequest: () => gate.pass(),
    // Not followed inline: the target is queued as a URL of its own (see toResult), so it is fetched
    // once per crawl, on its own host's schedule, after its own robots.txt and scope checks.
    checkHop: async () => queueHop,
  });
  tally.latency(Date.now() - startedMs);
  const result = await toResult(leased, request, rule, outcome, batch, sending);
  // A server or a handler may echo what it was sent: no secret reaches a stored message.
  if ('detail' in result && result.detail !== undefined && sending.secrets.length > 0) result.detail = scrubSecrets(result.detail, sending.secrets);
  return result;
}

/** What a request is sent with beyond itself; `query` and `secrets` exist on the wire only. */
interface Sending {
  headers: Record<string, string>;
  /** The rule's send-time query parameters. */
  query: Record<string, string>;
  /** The secret values among the headers and parameters. */
  secrets: string[];
}

/** The headers and query parameters a request is sent with: the spec's, then its rule's, secrets read now. */
function sendingFor(settings: CrawlSettings, rule: CompiledRule, request: CrawlRequest): Sending {
  const headers = resolveValues({ ...settings.headers, ...rule.headers });
  const query = resolveValues(rule.query);
  if (request.contentType !== undefined && !Object.keys(headers.values).some((name) => name.toLowerCase() === 'content-type')) {
    headers.values['content-type'] = request.contentType;
  }
  return { headers: headers.values, query: query.values, secrets: [...headers.secrets, ...query.secrets] };
}

/** The refusal `checkHop` gives every redirect: "queue it". */
const queueHop = 'queue';

async function toResult(leased: LeasedUrl, request: CrawlRequest, rule: CompiledRule, outcome: FetchOutcome, batch: BatchContext, sending: Sending): Promise<UrlResult> {
  const { settings, scope, banMarkers } = batch;
  const { url, depth } = leased;
  switch (outcome.kind) {
    case 'body': {
      if (banMarkers.some((marker) => marker.test(outcome.body))) {
        return retryOrFail(leased, settings, { status: outcome.status, reason: 'ban_marker' });
      }
      let yielded: { title: string | null; items: Item[]; requests: FoundRequest[]; found: number };
      try {
        // `auto` only accepted a body whose type has a kind.
        const kind = rule.parse === 'auto' ? bodyKindOf(outcome.contentType)! : rule.parse;
        const document = parseDocument(kind, outcome.body, outcome.finalUrl);
        const context = { request, finalUrl: outcome.finalUrl, depth, maxDepth: settings.maxDepth };
        yielded = applyRule(rule, document, context);
        if (rule.handler) await addHandled(yielded, rule, document, outcome, context, batch);
      } catch (error) {
        if (error instanceof ParseError) return { url, outcome: 'failed', status: outcome.status, reason: 'parse_error', detail: `${rule.name}: ${error.message}` };
        if (error instanceof HandlerError) return { url, outcome: 'failed', status: outcome.status, reason: 'handler_error', detail: error.message };
        throw error;
      }
      const newUrls = yielded.requests.filter((found) => isInScope(found.request.url, scope)).map((found) => newRequest(found.request, found.depth, url));
      return {
        url,
        outcome: 'saved',
        status: outcome.status,
        finalUrl: outcome.finalUrl,
        contentType: outcome.contentType,
        title: yielded.title,
        depth,
        bytes: Buffer.byteLength(outcome.body),
        html: settings.saveHtml ? outcome.body : null,
        linkCount: yielded.found,
        newUrls,
        ...(settings.links === 'all' ? { edges: newUrls.map((entry) => entry.url) } : {}),
        items: yielded.items,
        savePage: rule.save,
        fetchedAt: new Date(),
      };
    }
    case 'skipped':
      return { url, outcome: 'skipped', status: outcome.status, reason: outcome.reason };
    case 'failed': {
      if (outcome.reason === 'redirect_refused' && outcome.detail === queueHop && outcome.location) {
        return redirected(leased, request, outcome.status ?? null, keptTarget(outcome.location, sending), settings, scope);
      }
      const banned = outcome.status !== undefined && settings.banStatuses.includes(outcome.status);
      if (outcome.transient || banned) return retryOrFail(leased, settings, { ...outcome, detail: outcome.message });
      return { url, outcome: 'failed', status: outcome.status ?? null, reason: outcome.reason, detail: outcome.message };
    }
  }
}

/** A rule's handler, run after its declarative parts: what it returns joins what they found. */
async function addHandled(
  yielded: { items: Item[]; requests: FoundRequest[]; found: number },
  rule: CompiledRule,
  document: ParsedDocument,
  outcome: Extract<FetchOutcome, { kind: 'body' }>,
  context: { request: CrawlRequest; depth: number; maxDepth: number },
  { request: batchRequest, settings }: BatchContext,
): Promise<void> {
  const { request, depth } = context;
  const response = { url: request.url, finalUrl: outcome.finalUrl, status: outcome.status, contentType: outcome.contentType, text: outcome.body, json: document.json, $: document.$ };
  const handlerContext = { crawlId: batchRequest.crawlId, label: request.label, depth, request: { method: request.method, url: request.url, body: request.body }, rule: rule.name };
  const handled = await runHandler(rule.handler!, response, handlerContext, settings.fetchTimeoutMs);
  yielded.items.push(...handled.items);
  for (const entry of handled.requests) {
    // A handler's request is made like a follow entry's, its URL the value.
    const { url, method = 'GET', label, body, form, query } = typeof entry === 'string' ? { url: entry } : entry;
    const made = requestFor({ source: {}, method, label, body, form, query }, url, document.baseUrl);
    if (made === null) continue;
    yielded.found++;
    if (depth + 1 <= settings.maxDepth) yielded.requests.push({ request: made, depth: depth + 1 });
  }
}

/**
 * A redirect target as the crawl may store it: a server that echoes the
 * rule's send-time query parameters (an API key) into its Location does not
 * get them into the frontier — they are dropped, and added again when the
 * target is sent. A target with a secret still in it is not kept (null).
 */
function keptTarget(location: string, { query, secrets }: Sending): string | null {
  if (secrets.length === 0 && Object.keys(query).length === 0) return location;
  const url = new URL(location);
  for (const name of Object.keys(query)) url.searchParams.delete(name);
  const kept = canonicalizeUrl(url.href);
  if (kept === null || secrets.some((secret) => kept.includes(secret) || kept.includes(encodeURIComponent(secret)))) return null;
  return kept;
}

/**
 * A redirect: the URL is recorded `redirected` and its target queued at the
 * same depth, one hop further — unless that makes more than maxRedirects hops.
 * A target already in the crawl is not queued again (a loop ends there). The
 * target keeps the request's label; 307 and 308 keep its method and body too
 * (RFC 9110 §15.4), the others become a GET.
 */
function redirected(leased: LeasedUrl, request: CrawlRequest, status: number | null, location: string | null, settings: CrawlSettings, scope: ScopeRules): UrlResult {
  const { url, depth, redirects } = leased;
  if (location === null) return { url, outcome: 'skipped', status, reason: 'redirected', detail: '→ a target with a secret in it (not kept, not queued)' };
  if (redirects >= settings.maxRedirects) {
    return { url, outcome: 'failed', status, reason: 'redirect_limit', detail: `More than ${settings.maxRedirects} redirects (next: ${location})` };
  }
  const inScope = isInScope(location, scope);
  const target: CrawlRequest = status === 307 || status === 308 ? { ...request, url: location } : { method: 'GET', url: location, ...(request.label === undefined ? {} : { label: request.label }) };
  const newUrls = inScope ? [newRequest(target, depth, url, redirects + 1)] : [];
  return { url, outcome: 'skipped', status, reason: 'redirected', detail: inScope ? `→ ${location}` : `→ ${location} (out of scope: not queued)`, newUrls };
}

/** A transient failure goes back to the queue with exponential back-off, until retries run out. */
function retryOrFail(
  leased: LeasedUrl,
  settings: CrawlSettings,
  failure: { status?: number | null; reason: string; retryAfterMs?: number; detail?: string },
): UrlResult {
  const status = failure.status ?? null;
  const { detail } = failure;
  if (leased.attempts >= settings.maxRetries) return { url: leased.url, outcome: 'failed', status, reason: failure.reason, detail };
  const backoffMs = Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** leased.attempts);
  const delayMs = Math.max(backoffMs, failure.retryAfterMs ?? 0);
  return { url: leased.url, outcome: 'retried', status, reason: failure.reason, detail, notBefore: new Date(Date.now() + delayMs), retryAfterMs: failure.retryAfterMs };
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

  /** The busiest `maxReportedHosts` of the hosts this batch queued URLs for, and how many were left out. */
  private reportedDiscoveries(): { discovered: Record<string, number>; omitted: number } {
    const entries = Object.entries(this.discovered);
    if (entries.length <= maxReportedHosts) return { discovered: this.discovered, omitted: 0 };
    const kept = entries.sort(([, a], [, b]) => b - a).slice(0, maxReportedHosts);
    return { discovered: Object.fromEntries(kept), omitted: entries.length - kept.length };
  }

  private count(status: number | null, reason: string | null): void {
    const statusKey = status === null ? 'none' : String(status);
    this.byStatus[statusKey] = (this.byStatus[statusKey] ?? 0) + 1;
    if (reason) this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
  }

  result(gate: RequestGate, hostQueued: number, hostNextDueAtMs: number | null): BatchResult {
    const { discovered, omitted } = this.reportedDiscoveries();
    return {
      leased: this.leased,
      outcomes: this.outcomes,
      byStatus: this.byStatus,
      byReason: this.byReason,
      discovered,
      ...(omitted > 0 ? { discoveredHostsOmitted: omitted } : {}),
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
