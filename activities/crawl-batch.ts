import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { Context, log } from '@temporalio/activity';
import type { Pool } from 'pg';
import {
  maxReportedHosts,
  type BatchRequest,
  type BatchResult,
  type CrawlRef,
  type CrawlSettings,
  type HostGrant,
  type ShardRef,
  type UrlOutcome,
  type WindowBatchRequest,
  type WindowBatchResult,
} from '../src/crawl-types';
import { bodyKindOf } from '../src/decode';
import { keepsBodies } from '../src/output-spec';
import { applyRule, requestFor, scanRule, type FoundRequest, type Item } from '../src/rules/apply';
import { ruleFor, type CompiledRule, type CompiledRules } from '../src/rules/compile';
import { ParseError, parseDocument, type ParsedDocument } from '../src/rules/document';
import type { CrawlRequest } from '../src/rules/request';
import { shardOfHost } from '../src/shard';
import { canonicalizeUrl } from '../src/url';
import { inParallel } from '../src/in-parallel';
import type { ScopeRules } from '../src/scope';
import { isInScope } from '../src/scope';
import { batchErrorVerdict, isDatabaseUnavailable, permanentBatchFailure } from './batch-failure';
import type { CrawlStore } from './crawl-store';
import { CrawlMetrics } from './crawl-metrics';
import { describeError } from './fetch-errors';
import { fetchOptionsFor, fetchPage, type FetchOutcome } from './fetch-page';
import { noOutcome, type GrantOutcome } from '../workflows/host-schedule';
import {
  batchRows,
  batchRowsByHost,
  leaseMore,
  newRequest,
  releaseFailedBatch,
  releaseUnstarted,
  requestOf,
  type FinishedUrl,
  type HostQueue,
  type HostWant,
  type Lease,
  type LeasedUrl,
} from './frontier-store';
import { HandlerError, runHandler } from './handlers';
import { saveResults, type UrlResult } from './page-store';
import type { HostPacer } from './host-pacer';
import { HostQueueCounter } from './host-queues';
import { RequestGate, type RequestSent } from './request-gate';
import { EgressHealth, EgressRestingError } from './egress-health';
import { refusedRouteBans, routesForHost, type RouteAnswers } from '../src/egress';
import type { RobotsCache } from './robots-cache';
import { MissingSecretError, resolveValues, scrubSecrets } from './secrets';

/** Results are written in groups of this many, or after this long, whichever comes first. */
const flushEvery = 50;
const flushAfterMs = 500;
const heartbeatEveryMs = 1000;
/** A paced host leases more once what it holds lasts less than this: about what a refill takes on a busy worker. */
const refillLeadMs = 2000;
/** How often a windowed batch looks for a steering change (set-rate, pause, cancel): well inside the 2 s a change may take. */
const steeringPollMs = 500;

export interface CrawlBatchDeps {
  pool: Pool;
  robots: RobotsCache;
  crawls: CrawlStore;
  /** Paces each host across crawls, fleet-wide. */
  hostPacer: HostPacer;
  /** Egress routes' health, fleet-wide. @default this process's own */
  egress?: EgressHealth;
  /** Where pages, fetches, batches and back-offs are counted. @default counted nowhere */
  metrics?: CrawlMetrics;
}

/** A batch as it runs: one or more hosts; a v2 batch is one host with no window and no steering. */
interface RunRequest extends CrawlRef {
  batchId: string;
  hosts: HostGrant[];
  untilMs: number | null;
  steeredSeq: number | null;
  settings?: CrawlSettings;
  scope?: ScopeRules;
}

/** What every host of a batch shares: the crawl's settings, where results go, and the signals that stop it. */
interface BatchContext {
  pool: Pool;
  request: RunRequest;
  settings: CrawlSettings;
  scope: ScopeRules;
  rules: CompiledRules;
  /** settings.banBodyMarkers, compiled once per batch. */
  banMarkers: RegExp[];
  robots: RobotsCache;
  hostPacer: HostPacer;
  egress: EgressHealth;
  metrics: CrawlMetrics;
  writer: ResultWriter;
  refills: BatchRefills;
  /** Aborted when the activity is cancelled or one of the batch's own steps fails: every fetch and paced sleep listens. */
  signal: AbortSignal;
  /** Aborted when the workflow steers (set-rate, pause, cancel, continue-as-new) or `signal` aborts: no request starts after it, URLs not started go back. */
  halt: AbortSignal;
}

/**
 * The batch activities. `crawlHosts` (workflow v3) takes a window of several
 * hosts, each paced on its own; `crawlBatch` is the single-host batch of
 * earlier workflows, kept for crawls that still hand them out — both run the
 * same code, one host being a window of one with no end.
 */
export function createCrawlBatch(deps: CrawlBatchDeps) {
  const run = createBatchRunner(deps);
  return {
    /**
     * Leases URLs of several hosts and fetches them on the schedule the
     * workflow granted each (starts at least `intervalMs` apart from
     * `startAtMs`, at most `concurrency` at once), parses and saves them. A
     * paced host goes on, leasing URLs its pages found, until its next start
     * would be after `untilMs`. May run twice for one batch id: the leases
     * come back the same and finished URLs are reported, not fetched again.
     */
    async crawlHosts(request: WindowBatchRequest): Promise<WindowBatchResult> {
      return run(request);
    },

    /** One host, as workflows before v3 hand out: `limit` URLs leased at the start, none after. */
    async crawlBatch(request: BatchRequest): Promise<BatchResult> {
      const { batchId, host, limit, concurrency, startAtMs, intervalMs, ...ref } = request;
      const { hosts, ...counts } = await run({ ...ref, batchId, hosts: [{ host, limit, concurrency, startAtMs, intervalMs }], untilMs: null, steeredSeq: null });
      return { ...counts, ...hosts[host] };
    },
  };
}

function createBatchRunner({ pool, robots, crawls, hostPacer, egress = new EgressHealth(null), metrics = new CrawlMetrics() }: CrawlBatchDeps) {
  const hostQueueCounter = new HostQueueCounter(pool);
  return async function runBatch(request: RunRequest): Promise<WindowBatchResult> {
    const context = Context.current();
    const startedMs = Date.now();
    let ended: 'ok' | 'error' = 'error';
    const { settings, scope, rules } = await crawls.load(request, request);
    const { crawlId, batchId } = request;
    // A retry holds the leases its first attempt took; a first attempt leases now.
    let leases = await batchRowsByHost(pool, crawlId, batchId);
    if (Object.keys(leases).length === 0) {
      const leased = await leaseMore(pool, crawlId, batchId, request.hosts.map((grant) => ({ host: grant.host, limit: firstLease(grant, request.untilMs), dueByMs: grant.startAtMs })));
      leases = Object.fromEntries(Object.entries(leased).map(([host, pending]) => [host, { pending, finished: [] }]));
    }
    const stop = new AbortController();
    const halt = new AbortController();
    const cancelled = () => stop.abort(context.cancellationSignal.reason);
    // Whatever stops the batch halts it too: a wait that a halt ends, a stop ends.
    stop.signal.addEventListener('abort', () => halt.abort(stop.signal.reason), { once: true });
    context.cancellationSignal.addEventListener('abort', cancelled, { once: true });
    // Every request in flight and every paced sleep listens.
    const concurrency = request.hosts.reduce((sum, grant) => sum + grant.concurrency, 0);
    setMaxListeners(2 * concurrency + 10, stop.signal);
    setMaxListeners(2 * concurrency + 10, halt.signal);
    const banMarkers = settings.banBodyMarkers.map((marker) => new RegExp(marker));
    const writer = new ResultWriter(pool, crawlId, batchId, metrics);
    const refills = new BatchRefills(pool, crawlId, batchId, writer);
    const batch: BatchContext = { pool, request, settings, scope, rules, banMarkers, robots, hostPacer, egress, metrics, writer, refills, signal: stop.signal, halt: halt.signal };
    const runs = request.hosts.map((grant) => new HostRun(grant, leases[grant.host] ?? { pending: [], finished: [] }, batch));
    const heartbeat = setInterval(() => context.heartbeat({ done: runs.reduce((sum, host) => sum + host.tally.done, 0) }), heartbeatEveryMs);
    const steering = request.steeredSeq === null ? undefined : watchSteering(crawls, request, request.steeredSeq, halt);
    try {
      await inParallel(runs, runs.length, stop, (host) => host.run());
      await writer.flush();
      await releaseUnstarted(pool, crawlId, batchId, runs.flatMap((host) => host.unstarted()));
      const queues = await hostQueueCounter.queuesOf(crawlId, request.hosts.map((grant) => grant.host));
      const hosts: Record<string, GrantOutcome> = {};
      for (const host of runs) hosts[host.name] = host.outcome(queues[host.name]);
      for (const [host, outcome] of Object.entries(hosts)) metrics.hostPaused(host, outcome.pauseHostUntilMs);
      ended = 'ok';
      return { ...sumCounts(runs.map((host) => host.tally)), ...writer.reportedDiscoveries(request.shard), hosts };
    } catch (error) {
      const { attempt } = context.info;
      if (context.cancellationSignal.aborted || batchErrorVerdict(error, attempt) === 'retry') throw error;
      // Given back with an attempt counted, so a URL that breaks every batch it is in ends failed `internal`.
      const released = await releaseFailedBatch(pool, crawlId, batchId, { detail: describeError(error), ...settings });
      log.error('Batch failed for good', { batchId, hosts: request.hosts.map((grant) => grant.host).join(' '), attempt, error: describeError(error), ...released });
      // What the batch reports is what its rows say, not what it meant to write: the workflow's counters equal the rows.
      const written = new HostTally(settings.banStatuses);
      for (const finished of (await batchRows(pool, crawlId, batchId)).finished) written.addFinished(finished);
      written.outcomes.retried += released.requeued;
      // Shaped for either workflow: a v2 one reads the host's fields (none learnt), a v3 one the counts.
      const report: BatchResult & WindowBatchResult = { ...noOutcome, ...sumCounts([written]), discovered: {}, hosts: {} };
      throw permanentBatchFailure(error, attempt, report);
    } finally {
      metrics.batchEnded(Date.now() - startedMs, ended);
      clearInterval(heartbeat);
      steering?.stop();
      context.cancellationSignal.removeEventListener('abort', cancelled);
    }
  };
}

/** What a host's first lease asks for: a v2 batch its whole limit; a paced window the starts that fit in it, more as they come due. */
function firstLease(grant: HostGrant, untilMs: number | null): number {
  if (untilMs === null || grant.intervalMs <= 0) return grant.limit;
  return Math.min(grant.limit, startsWithin(grant.startAtMs, untilMs, grant.intervalMs));
}

/** Request starts `intervalMs` apart that fit from `fromMs` to `untilMs` (at least one). */
function startsWithin(fromMs: number, untilMs: number, intervalMs: number): number {
  return Math.max(1, Math.floor((untilMs - fromMs) / intervalMs) + 1);
}

/** Polls the crawl's steering count; aborts `halt` once it is above the one the batch was granted at. */
function watchSteering(crawls: CrawlStore, { crawlId, shard }: CrawlRef, grantedSeq: number, halt: AbortController): { stop(): void } {
  let polling = false;
  const timer = setInterval(() => {
    if (polling || halt.signal.aborted) return;
    polling = true;
    crawls
      .steeredSeq(crawlId, shard)
      .then((seq) => {
        if (seq > grantedSeq) halt.abort(new Error('steered'));
      })
      // A database that is down now is met by the batch's own writes, which say so.
      .catch(() => undefined)
      .finally(() => (polling = false));
  }, steeringPollMs);
  return { stop: () => clearInterval(timer) };
}

/**
 * The refills of a batch's hosts, made together: hosts that ask while one
 * refill is being made wait for the next, which writes the results they wait
 * for once and leases for all of them in one statement — a window of a
 * hundred hosts that run dry at once makes a few round trips, not a hundred.
 */
class BatchRefills {
  private waiting: { want: HostWant; resolve: (leased: LeasedUrl[]) => void; reject: (error: unknown) => void }[] = [];
  private running = false;

  constructor(
    private readonly pool: Pool,
    private readonly crawlId: string,
    private readonly batchId: string,
    private readonly writer: ResultWriter,
  ) {}

  /** Leases up to `want.limit` of the host's queued URLs, once the host's results so far are written. */
  lease(want: HostWant): Promise<LeasedUrl[]> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ want, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.waiting.length > 0) {
        // The hosts that ask in the same turn of the event loop share the first refill too.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const group = this.waiting.splice(0);
        try {
          await Promise.all(group.map(({ want }) => this.writer.written(want.host)));
          const leased = await leaseMore(this.pool, this.crawlId, this.batchId, group.map(({ want }) => want));
          for (const { want, resolve } of group) resolve(leased[want.host] ?? []);
        } catch (error) {
          for (const { reject } of group) reject(error);
        }
      }
    } finally {
      this.running = false;
    }
  }
}

/**
 * A halt met a URL before its request started: the URL goes back to the
 * queue as if never leased.
 */
class Halted extends Error {
  constructor() {
    super('The batch was steered to stop before this request started');
  }
}

/**
 * One host's part of a batch: its lease, its gate, its tally. URLs are taken
 * one by one while the window lasts; a halt while one waits at the gate
 * leaves it unstarted, and the rest with it (they go back to the queue). A
 * paced host in a window that runs out of URLs waits for what its own
 * requests found, and leases more while the window allows.
 */
class HostRun {
  readonly name: string;
  readonly tally: HostTally;
  private readonly gate: RequestGate;
  private queue: LeasedUrl[];
  private taken: number;
  private inFlight = 0;
  private idle: Array<() => void> = [];
  private refilling: Promise<void> | undefined;
  /** URLs taken whose first request has not passed the gate yet. */
  private awaitingStart = 0;
  /** `tally.done` when a refill ahead last found nothing. */
  private foundNothingAtDone = -1;
  private exhausted = false;

  constructor(
    private readonly grant: HostGrant,
    lease: Lease,
    private readonly batch: BatchContext,
  ) {
    this.name = grant.host;
    this.tally = new HostTally(batch.settings.banStatuses);
    for (const finished of lease.finished) this.tally.addFinished(finished);
    this.queue = [...lease.pending];
    this.taken = lease.pending.length + lease.finished.length;
    // A retried batch starts its window again from now, never in a burst to catch up.
    this.gate = new RequestGate(Math.max(grant.startAtMs, Date.now()), grant.intervalMs, (ms, signal) =>
      sleep(ms, undefined, { signal: signal ?? batch.signal }),
    );
  }

  private get paced(): boolean {
    return this.grant.intervalMs > 0 && this.batch.request.untilMs !== null;
  }

  async run(): Promise<void> {
    if (this.queue.length === 0) await this.refill(true);
    if (this.queue.length === 0) return;
    try {
      this.queue = await this.applyRobots(this.queue);
    } catch (error) {
      if (error instanceof Halted) return;
      throw error;
    }
    await inParallel(Array.from({ length: this.grant.concurrency }), this.grant.concurrency, new AbortController(), async () => {
      for (let leased = await this.take(); leased !== undefined; leased = await this.take()) {
        let result: UrlResult;
        const passed = this.awaitStart();
        const { beforeRequest, ...pacing } = this.pacing;
        try {
          result = await settleUrl(leased, this.batch, { ...pacing, beforeRequest: () => beforeRequest().finally(passed) });
        } catch (error) {
          if (!(error instanceof Halted)) throw error;
          this.queue.unshift(leased);
          return;
        } finally {
          passed();
          if (--this.inFlight === 0) for (const wake of this.idle.splice(0)) wake();
        }
        this.tally.add(result);
        await this.batch.writer.add(result, this.name);
      }
    });
    // A refill ahead still out would lease URLs after the batch has given back those it did not start.
    while (this.refilling) await this.refilling;
  }

  /**
   * What a URL's requests pass: a usable egress route, when the host has
   * routes; the host's gate (this batch's spacing, counted from when the
   * request before was on the wire) and, in the gate's last moments before
   * the start, the fleet's pacer of the host (every crawl's wants), for that
   * start: the query adds nothing to the gap, and a halt leaves no start of
   * the host reserved far ahead (each delays its next window's first start
   * by an interval). The wait for a route comes first,
   * so a request that waits for one holds no slot of the host's pace, and
   * the route itself is picked after the gate (by the dispatcher): proxies
   * change where a request leaves from, never when. A halt during any wait
   * means nothing started ({@link Halted}); so does a wait for a route that
   * would outlast the window: the host then pauses until the first is back.
   */
  private get pacing(): HostPacing {
    const { gate, tally, batch, name } = this;
    const routes = routesForHost(batch.settings, name).map((route) => route.key);
    return {
      name,
      tally,
      beforeRequest: async () => {
        try {
          if (routes.length > 0) await batch.egress.ready(routes, batch.request.untilMs ?? Infinity, batch.halt);
          return await gate.pass(batch.halt, (startAtMs) => batch.hostPacer.reserve(name, batch.request.crawlId, gate.spacingMs, batch.halt, startAtMs));
        } catch (error) {
          if (error instanceof EgressRestingError) {
            tally.pause(error.untilMs, 'proxies resting');
            throw new Halted();
          }
          if (batch.halt.aborted && !batch.signal.aborted) throw new Halted();
          throw error;
        }
      },
    };
  }

  /** The next URL to fetch; undefined when the host is done (halted, out of window, out of URLs). */
  private async take(): Promise<LeasedUrl | undefined> {
    for (;;) {
      if (this.batch.halt.aborted || this.batch.signal.aborted || this.windowOver()) return undefined;
      const leased = this.queue.shift();
      if (leased !== undefined) {
        this.inFlight++;
        this.refillAhead();
        return leased;
      }
      if (!this.paced || this.exhausted || this.taken >= this.grant.limit) return undefined;
      // What the host's own requests in flight find may be for it: wait for them before asking.
      if (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
      while (this.refilling) await this.refilling;
      if (this.queue.length > 0) continue;
      await this.refill(true);
      if (this.queue.length === 0) return undefined;
    }
  }

  /**
   * A paced host whose queue runs low leases more while its requests are
   * still in flight, so its next start does not wait for a write and a lease
   * (a second or more when a hundred hosts of a window run dry at once).
   */
  private refillAhead(): void {
    if (!this.paced || this.exhausted || this.refilling || this.taken >= this.grant.limit) return;
    if (this.queue.length * this.gate.spacingMs >= refillLeadMs || this.tally.done === this.foundNothingAtDone) return;
    // A failure here is met again by the refill the host makes when it runs dry, which reports it.
    this.refill(false).catch(() => undefined);
  }

  /**
   * Past the window: the next start would be after its end — behind the
   * URLs taken and still waiting for their start, so that a host fetching
   * several at once does not start one after the end (the whole window's
   * batch would end that much later, and every host of it be granted late).
   */
  private windowOver(): boolean {
    const { untilMs } = this.batch.request;
    return this.paced && untilMs !== null && this.gate.startAfter(this.awaitingStart) > untilMs;
  }

  /** Counts a URL taken as waiting for its start; what it returns ends the wait (once: at its first request, or when it is done without one). */
  private awaitStart(): () => void {
    this.awaitingStart++;
    let over = false;
    return () => {
      if (over) return;
      over = true;
      this.awaitingStart--;
    };
  }

  /**
   * Leases more of the host's URLs, as many as the window still fits after
   * those queued. `last`: nothing of the host is in flight and its results
   * are written, so if none comes there are none (until the next window).
   */
  private refill(last: boolean): Promise<void> {
    this.refilling ??= this.leaseMore(last).finally(() => (this.refilling = undefined));
    return this.refilling;
  }

  private async leaseMore(last: boolean): Promise<void> {
    const { untilMs } = this.batch.request;
    if (untilMs === null || this.exhausted || this.taken >= this.grant.limit) return;
    const nextStartMs = Math.max(this.gate.startAfter(this.awaitingStart + this.queue.length), Date.now());
    if (nextStartMs > untilMs) return;
    const limit = Math.min(this.grant.limit - this.taken, startsWithin(nextStartMs, untilMs, this.grant.intervalMs));
    const leased = await this.batch.refills.lease({ host: this.name, limit, dueByMs: nextStartMs });
    this.taken += leased.length;
    this.queue.push(...leased);
    if (leased.length === 0) {
      if (last) this.exhausted = true;
      // Asking again before another of the host's results is in would find nothing new.
      else this.foundNothingAtDone = this.tally.done;
    }
  }

  /** URLs leased and never started: they go back to the queue. */
  unstarted(): string[] {
    return this.queue.map((leased) => leased.url);
  }

  outcome(queue: HostQueue | undefined): GrantOutcome {
    return this.tally.outcome(this.taken - this.queue.length, this.gate, queue?.queued ?? 0, queue?.nextDueAtMs ?? null);
  }

  /**
   * Settles robots.txt for the host before any page: its fetch is a
   * request like any other (it passes the gate), its Crawl-delay widens the
   * spacing, and a Crawl-delay over the maximum skips the host's URLs.
   * Returns the URLs still to fetch.
   */
  private async applyRobots(pending: LeasedUrl[]): Promise<LeasedUrl[]> {
    const { settings, robots, request } = this.batch;
    if (!settings.obeyRobots || pending.length === 0) return pending;
    const policy = await robots.policy(request.crawlId, requestOf(pending[0]).url, settings, this.pacing.beforeRequest);
    if (policy === null) {
      // Unreachable: nothing of the host is fetched; the URLs wait with the host, and robots.txt is asked again then.
      this.exhausted = true;
      await this.finishAll(pending, (leased) => retryOrFail(leased, settings, { status: null, reason: 'robots_unavailable' }));
      return [];
    }
    const crawlDelayMs = (policy.crawlDelaySecs ?? 0) * 1000;
    this.tally.crawlDelayMs = crawlDelayMs;
    if (crawlDelayMs <= settings.maxCrawlDelaySecs * 1000) {
      this.gate.slowTo(crawlDelayMs);
      return pending;
    }
    this.exhausted = true;
    this.tally.pause(null, 'crawl_delay_too_long');
    await this.finishAll(pending, (leased) => ({ url: leased.url, outcome: 'skipped', status: null, reason: 'crawl_delay_too_long' }));
    return [];
  }

  /** Records an outcome for every URL without fetching any. */
  private async finishAll(pending: LeasedUrl[], outcome: (leased: LeasedUrl) => UrlResult): Promise<void> {
    for (const leased of pending) {
      const result = outcome(leased);
      this.tally.add(result);
      await this.batch.writer.add(result, this.name);
    }
  }
}

/**
 * One URL's outcome, whatever happens: an error of our own (a bug, a parser
 * choking on a page) is that URL's `internal` failure, retried within
 * maxRetries, never the batch's. Only stopping and an unavailable database
 * escape — neither is the URL's fault.
 */
async function settleUrl(leased: LeasedUrl, batch: BatchContext, host: HostPacing): Promise<UrlResult> {
  try {
    return await crawlUrl(leased, batch, host);
  } catch (error) {
    if (batch.signal.aborted || error instanceof Halted || isDatabaseUnavailable(error)) throw error;
    log.warn('URL failed with an internal error', { host: host.name, url: leased.url, error: describeError(error), stack: (error as Error).stack });
    return retryOrFail(leased, batch.settings, { status: null, reason: 'internal', detail: describeError(error) });
  }
}

/** A host's pacing as one URL's fetch sees it: what each request passes first, and where its latency is told. */
interface HostPacing {
  /** The host, as the batch was granted it (`host[:port]`). */
  name: string;
  beforeRequest: () => Promise<RequestSent>;
  tally: HostTally;
}

async function crawlUrl(leased: LeasedUrl, batch: BatchContext, { beforeRequest, tally }: HostPacing): Promise<UrlResult> {
  const { settings, robots, signal, rules } = batch;
  const request = requestOf(leased);
  if (settings.obeyRobots) {
    const verdict = await robots.verdict(batch.request.crawlId, request.url, settings, beforeRequest);
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
  // A fetch is timed from the (last) pass of the gate to its outcome: the request, not the host's pacing
  // (counted, an adaptive host's own waits would widen its spacing, batch after batch).
  let passedMs = Date.now();
  const outcome = await fetchPage(request.url, {
    ...fetchOptionsFor(settings, batch.egress),
    method: request.method,
    body: request.body,
    headers: sending.headers,
    secretQuery: sending.query,
    acceptsType: rule.parse === 'auto' ? (contentType) => bodyKindOf(contentType) !== null : () => true,
    signal,
    beforeRequest: async () => {
      const sent = await beforeRequest();
      passedMs = Date.now();
      return sent;
    },
    // Not followed inline: the target is queued as a URL of its own (see toResult), so it is fetched
    // once per crawl, on its own host's schedule, after its own robots.txt and scope checks.
    checkHop: async () => queueHop,
  });
  const latencyMs = Date.now() - passedMs;
  tally.latency(latencyMs);
  batch.metrics.fetched(latencyMs);
  const result = await toResult(leased, request, rule, outcome, batch, sending);
  if (outcome.kind !== 'skipped' && outcome.egress !== undefined) tally.via(outcome.egress, result);
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
        // A ban page is a ban of the route it came through as much as a status would be.
        if (outcome.egress !== undefined) await batch.egress.problem(outcome.egress, { kind: 'ban', detail: 'ban marker in the body' }, settings.proxyRestMs).catch(() => undefined);
        return retryOrFail(leased, settings, { status: outcome.status, reason: 'ban_marker' });
      }
      // A binary rule reads nothing: the body is kept as received (the schema allows it no follow, items or handler).
      let yielded: { title: string | null; items: Item[]; requests: FoundRequest[]; found: number } = { title: null, items: [], requests: [], found: 0 };
      try {
        // `auto` only accepted a body whose type has a kind.
        const kind = rule.parse === 'auto' ? bodyKindOf(outcome.contentType)! : rule.parse;
        const context = { request, finalUrl: outcome.finalUrl, depth, maxDepth: settings.maxDepth };
        const scanned = kind === 'html' ? scanRule(rule, outcome.body, context) : null;
        if (scanned !== null) yielded = scanned;
        else if (kind !== 'binary') {
          const document = parseDocument(kind, outcome.body, outcome.finalUrl);
          yielded = applyRule(rule, document, context);
          if (rule.handler) await addHandled(yielded, rule, document, outcome, context, batch);
        }
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
        bytes: rule.parse === 'binary' ? outcome.bytes.length : Buffer.byteLength(outcome.body),
        html: settings.saveHtml && rule.parse !== 'binary' ? outcome.body : null,
        rawBody: keepsBodies(settings) ? outcome.bytes : null,
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

/**
 * Buffers results and writes them in groups, so a killed worker loses at most
 * one group of fetches. One write runs at a time; the next takes whatever
 * arrived while it waited, so many hosts waiting for their results to be
 * written (to lease what their pages found) share one write, not one each.
 */
class ResultWriter {
  private buffer: UrlResult[] = [];
  /** host -> results of it in the buffer. */
  private readonly buffered = new Map<string, number>();
  private lastFlushMs = Date.now();
  /** The write that took the latest group: once it lands, every result taken so far is written. */
  private writing: Promise<void> = Promise.resolve();
  /** The write queued behind `writing`, which takes the buffer when it starts. */
  private next: Promise<void> | undefined;
  private readonly discovered: Record<string, number> = {};

  constructor(
    private readonly pool: Pool,
    private readonly crawlId: string,
    private readonly batchId: string,
    private readonly metrics: CrawlMetrics,
  ) {}

  async add(result: UrlResult, host: string): Promise<void> {
    this.buffer.push(result);
    this.buffered.set(host, (this.buffered.get(host) ?? 0) + 1);
    if (this.buffer.length >= flushEvery || Date.now() - this.lastFlushMs >= flushAfterMs) await this.flush();
  }

  /** Resolves once every result of `host` added so far is written (the links its pages found are in the frontier). */
  written(host: string): Promise<void> {
    return this.buffered.has(host) ? this.flush() : this.writing;
  }

  /** Resolves once everything added so far is written. Writes land in order, and a failure reaches every caller waiting for it. */
  flush(): Promise<void> {
    this.next ??= this.writing.then(() => this.writeGroup());
    return this.next;
  }

  private async writeGroup(): Promise<void> {
    const group = this.buffer;
    this.buffer = [];
    this.buffered.clear();
    this.lastFlushMs = Date.now();
    this.writing = this.next!;
    this.next = undefined;
    if (group.length === 0) return;
    const discovered = await saveResults(this.pool, this.crawlId, this.batchId, group);
    this.metrics.written(this.crawlId, group);
    for (const [host, count] of Object.entries(discovered)) this.discovered[host] = (this.discovered[host] ?? 0) + count;
  }

  /**
   * The busiest `maxReportedHosts` of the hosts this batch queued URLs for
   * (of the shard's, for a shard's batch: the other shards' workflows find
   * theirs in the frontier), and how many were left out.
   */
  reportedDiscoveries(shard?: ShardRef): { discovered: Record<string, number>; discoveredHostsOmitted?: number } {
    const entries = Object.entries(this.discovered).filter(([host]) => !shard || shardOfHost(host, shard.count) === shard.index);
    if (shard && entries.length <= maxReportedHosts) return { discovered: Object.fromEntries(entries) };
    if (entries.length <= maxReportedHosts) return { discovered: this.discovered };
    const kept = entries.sort(([, a], [, b]) => b - a).slice(0, maxReportedHosts);
    return { discovered: Object.fromEntries(kept), discoveredHostsOmitted: entries.length - kept.length };
  }
}

/** What one host's part of a batch did: the crawl's counts and what the scheduler learns about the host. */
class HostTally {
  readonly outcomes: Record<UrlOutcome, number> = { saved: 0, failed: 0, skipped: 0, retried: 0 };
  readonly byStatus: Record<string, number> = {};
  readonly byReason: Record<string, number> = {};
  private pauseHostUntilMs: number | null = null;
  private pauseReason: string | null = null;
  private banned = 0;
  /** Per egress route of the host: its answers in this batch, bans and others. */
  private readonly routes = new Map<string, RouteAnswers>();
  private latencyTotalMs = 0;
  private latencies = 0;
  crawlDelayMs: number | null = null;
  done = 0;

  constructor(private readonly banStatuses: number[]) {}

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
    if (this.isBan(result)) this.banned++;
    if (result.outcome === 'retried') {
      if (result.retryAfterMs !== undefined) this.pause(result.notBefore.getTime(), 'retry_after');
      if (result.reason === 'robots_unavailable') this.pause(result.notBefore.getTime(), 'robots_unreachable');
      return;
    }
    this.count(result.status, result.outcome === 'saved' ? null : result.reason);
  }

  /** A response `result` came through `route`: what tells the site's refusal of one route from its pushing back on the host. */
  via(route: string, result: UrlResult): void {
    const answers = this.routes.get(route) ?? { bans: 0, others: 0 };
    if (this.isBan(result)) answers.bans++;
    else answers.others++;
    this.routes.set(route, answers);
  }

  private isBan(result: UrlResult): boolean {
    return (result.status !== null && this.banStatuses.includes(result.status)) || (result.outcome === 'retried' && result.reason === 'ban_marker');
  }

  addFinished(finished: FinishedUrl): void {
    const outcome = finished.state === 'done' ? 'saved' : finished.state;
    this.outcomes[outcome]++;
    this.done++;
    this.count(finished.status, finished.reason);
  }

  private count(status: number | null, reason: string | null): void {
    const statusKey = status === null ? 'none' : String(status);
    this.byStatus[statusKey] = (this.byStatus[statusKey] ?? 0) + 1;
    if (reason) this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
  }

  outcome(leased: number, gate: RequestGate, hostQueued: number, hostNextDueAtMs: number | null): GrantOutcome {
    return {
      leased,
      hostQueued,
      hostNextDueAtMs,
      pauseHostUntilMs: this.pauseHostUntilMs,
      pauseReason: this.pauseReason,
      requests: gate.requests,
      firstStartMs: gate.firstStartMs,
      lastStartMs: gate.lastStartMs,
      nextStartAtMs: gate.nextStartAtMs,
      // A route the site refuses outright is rested (EgressDispatcher); its refusals do not slow the host.
      banned: this.banned - refusedRouteBans(this.routes),
      meanLatencyMs: this.latencies > 0 ? this.latencyTotalMs / this.latencies : null,
      crawlDelayMs: this.crawlDelayMs,
    };
  }
}

/** The crawl's counts over several hosts' tallies. */
function sumCounts(tallies: HostTally[]): Pick<WindowBatchResult, 'outcomes' | 'byStatus' | 'byReason'> {
  const sum: Pick<WindowBatchResult, 'outcomes' | 'byStatus' | 'byReason'> = { outcomes: { saved: 0, failed: 0, skipped: 0, retried: 0 }, byStatus: {}, byReason: {} };
  for (const tally of tallies) {
    for (const outcome of Object.keys(sum.outcomes) as UrlOutcome[]) sum.outcomes[outcome] += tally.outcomes[outcome];
    for (const [key, n] of Object.entries(tally.byStatus)) sum.byStatus[key] = (sum.byStatus[key] ?? 0) + n;
    for (const [key, n] of Object.entries(tally.byReason)) sum.byReason[key] = (sum.byReason[key] ?? 0) + n;
  }
  return sum;
}
