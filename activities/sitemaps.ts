import { setTimeout as sleep } from 'node:timers/promises';
import { Context, log } from '@temporalio/activity';
import type { Pool } from 'pg';
import type { CrawlSettings, SitemapSeedRequest, SitemapSeedResult } from '../src/crawl-types';
import type { RobotsPolicy } from '../src/robots';
import { isInScope, scopeRejection, type ScopeRules } from '../src/scope';
import { parseSitemap } from '../src/sitemap';
import { hostOf } from '../src/url';
import { sharedPacersOf } from '../workflows/host-schedule';
import type { CrawlStore } from './crawl-store';
import type { EgressHealth } from './egress-health';
import { fetchOptionsFor, fetchPage, type FetchOutcome } from './fetch-page';
import { insertUrls } from './frontier-store';
import { MultiPacerGate, type PacerSpacing } from './request-gate';
import type { RobotsCache } from './robots-cache';

/** Sitemap files deep: robots.txt or /sitemap.xml (1) → index entries (2) → their entries (3). */
const maxSitemapDepth = 3;
/** Sitemap files requested per run, whatever their outcome: a site cannot make seeding endless. */
const maxSitemapFiles = 100;
/**
 * Heartbeats carry the walk's progress, so an attempt after a dead worker (or
 * a timeout) resumes where the last one was instead of starting over.
 */
const heartbeatEveryMs = 5_000;

/** A sitemap to fetch, and who pointed at it. */
interface SitemapRef {
  url: string;
  depth: number;
  /** The origin whose robots.txt, index or redirect listed it; null for a guessed `/sitemap.xml`. */
  listedBy: string | null;
}

/**
 * Where a walk stands, as heartbeat details: the sitemaps found so far (at
 * most `maxSitemapFiles` of them are ever kept), how far the walk got, what
 * it queued, and each pacer's next start. Small whatever the site does.
 */
interface SitemapProgress {
  discovered: boolean;
  queue: SitemapRef[];
  next: number;
  requested: number;
  fetched: number;
  queuedByHost: Record<string, number>;
  skipped: Record<string, number>;
  nextStarts: Record<string, number>;
  crawlDelayMsByHost: Record<string, number>;
}

/**
 * `seedFromSitemaps`: queues, as depth-0 seeds, the in-scope URLs of the
 * sitemaps each seed's origin lists in robots.txt (RFC 9309 §2.2.4) and of
 * its `/sitemap.xml`, following sitemap indexes. A missing or broken sitemap
 * is normal: it is logged and counted, never an error. Every request passes
 * the crawl's pacers (host rate and Crawl-delay, rate groups, total rate).
 * Safe to run twice, and resumable: URLs already in the frontier are not
 * queued again, and a new attempt goes on from the last heartbeat.
 * @param robots where robots.txt comes from; shares the crawl's stored copy, so a site's robots.txt is still fetched once per crawl.
 */
export function createSitemapActivities({ pool, robots, crawls, egress }: { pool: Pool; robots: RobotsCache; crawls: CrawlStore; egress?: EgressHealth }) {
  return {
    async seedFromSitemaps(request: SitemapSeedRequest): Promise<SitemapSeedResult> {
      const { settings, scope } = await crawls.load(request, request);
      return new SitemapSeeding(pool, robots, request, settings, scope, egress).run();
    },
  };
}

/** One run of `seedFromSitemaps`: a breadth-first walk over sitemap files, one request at a time. */
class SitemapSeeding {
  private readonly context = Context.current();
  private readonly progress: SitemapProgress;
  private readonly gate: MultiPacerGate;
  private readonly seen: Set<string>;

  constructor(
    private readonly pool: Pool,
    private readonly robots: RobotsCache,
    private readonly request: SitemapSeedRequest,
    private readonly settings: CrawlSettings,
    private readonly scope: ScopeRules,
    private readonly egress?: EgressHealth,
  ) {
    const resumed = this.context.info.heartbeatDetails as SitemapProgress | undefined;
    this.progress = resumed ?? { discovered: false, queue: [], next: 0, requested: 0, fetched: 0, queuedByHost: {}, skipped: {}, nextStarts: {}, crawlDelayMsByHost: {} };
    this.seen = new Set(this.progress.queue.map((ref) => ref.url));
    // A new attempt goes on from the pacers' last known next starts: never a burst to catch up.
    this.gate = new MultiPacerGate((ms) => sleep(ms, undefined, { signal: this.context.cancellationSignal }), this.progress.nextStarts);
  }

  async run(): Promise<SitemapSeedResult> {
    const heartbeat = setInterval(() => this.heartbeat(), heartbeatEveryMs);
    try {
      const progress = this.progress;
      if (!progress.discovered) {
        for (const origin of new Set(this.request.seeds.map(originOf))) await this.discover(origin);
        progress.discovered = true;
      }
      while (progress.next < progress.queue.length && progress.requested < maxSitemapFiles) {
        await this.visit(progress.queue[progress.next]);
        progress.next++;
        this.heartbeat();
      }
      // An index may list 50,000 sitemaps: the ones left over are counted, not logged one by one.
      if (progress.next < progress.queue.length) this.count('file_limit', progress.queue.length - progress.next);
      log.info('Sitemaps read', { crawlId: this.request.crawlId, fetched: progress.fetched, queuedByHost: progress.queuedByHost, skipped: progress.skipped });
      return { queuedByHost: progress.queuedByHost, sitemapsFetched: progress.fetched, ...this.nextRequestAt() };
    } finally {
      clearInterval(heartbeat);
    }
  }

  private heartbeat(): void {
    this.progress.nextStarts = this.gate.nextStarts();
    this.context.heartbeat(this.progress);
  }

  /** The `Sitemap:` lines of the origin's robots.txt (RFC 9309 §2.2.4), then its conventional `/sitemap.xml`. */
  private async discover(origin: string): Promise<void> {
    const policy = await this.policy(origin);
    for (const url of policy?.sitemaps ?? []) this.enqueue({ url, depth: 1, listedBy: origin });
    this.enqueue({ url: `${origin}/sitemap.xml`, depth: 1, listedBy: null });
  }

  /** Keeps at most a few more than can ever be requested (they may be refused without a request); the rest are counted. */
  private enqueue(ref: SitemapRef): void {
    if (this.seen.has(ref.url)) return;
    if (this.progress.queue.length >= 2 * maxSitemapFiles) return this.count('file_limit');
    this.seen.add(ref.url);
    this.progress.queue.push(ref);
  }

  private async visit(ref: SitemapRef): Promise<void> {
    const refusal = await this.refusal(ref);
    if (refusal !== null) return this.skip(ref, refusal);
    this.progress.requested++;
    const outcome = await this.fetch(ref);
    if (outcome.kind !== 'body') return this.skip(ref, outcome.reason, outcome.kind === 'failed' ? outcome.message : undefined);
    this.progress.fetched++;
    this.seen.add(outcome.finalUrl);
    const parsed = parseSitemap(outcome.body, outcome.finalUrl);
    if (parsed.kind === 'index') {
      for (const url of parsed.sitemaps) this.enqueue({ url, depth: ref.depth + 1, listedBy: originOf(outcome.finalUrl) });
    } else {
      await this.queueUrls(ref, parsed.urls);
    }
  }

  /**
   * Why `ref` may not be fetched, or null if it may. A sitemap on another
   * origin than the one listing it (sitemaps.org "Sitemaps & Cross Submits")
   * must be in the crawl's host scope. robots.txt is asked only about
   * sitemaps their own origin did not list: a `Sitemap:` line or an index
   * entry is the site's invitation, a guessed `/sitemap.xml` is not.
   */
  private async refusal(ref: SitemapRef): Promise<string | null> {
    const { settings, scope } = this;
    const origin = originOf(ref.url);
    if (ref.depth > maxSitemapDepth) return 'too_deep';
    // include/exclude are about pages; a sitemap file is judged by its host only.
    if (ref.listedBy !== origin && scopeRejection(ref.url, scope) === 'off_scope') return 'off_scope';
    if (!settings.obeyRobots) return null;
    const policy = await this.policy(origin);
    // RFC 9309 §2.3.1.4: an unreachable robots.txt means complete disallow.
    if (policy === null) return 'robots_unavailable';
    if ((policy.crawlDelaySecs ?? 0) > settings.maxCrawlDelaySecs) return 'crawl_delay_too_long';
    if (ref.listedBy !== origin && !policy.isAllowed(ref.url)) return 'robots_disallowed';
    return null;
  }

  /** The origin's robots.txt, fetched (through its host's pacers) at most once per crawl; null while unreachable. */
  private async policy(origin: string): Promise<RobotsPolicy | null> {
    const { settings } = this;
    const policy = await this.robots.policy(this.request.crawlId, `${origin}/`, settings, (url) => this.pass(url));
    if (policy !== null && settings.obeyRobots) this.progress.crawlDelayMsByHost[hostOf(origin)] = (policy.crawlDelaySecs ?? 0) * 1000;
    return policy;
  }

  private fetch(ref: SitemapRef): Promise<FetchOutcome> {
    const { settings } = this;
    return fetchPage(ref.url, {
      ...fetchOptionsFor(settings, this.egress),
      signal: this.context.cancellationSignal,
      acceptsType: () => true,
      unwrapGzip: true,
      beforeRequest: (url) => this.pass(url),
      // A redirect is the redirecting origin pointing somewhere: the same rules as a listed sitemap.
      checkHop: (hop) => this.refusal({ url: hop, depth: ref.depth, listedBy: originOf(ref.url) }),
    });
  }

  /** Queues a sitemap's in-scope URLs as seeds (depth 0), found on the sitemap. */
  private async queueUrls(ref: SitemapRef, urls: string[]): Promise<void> {
    const inScope = urls.filter((url) => isInScope(url, this.scope));
    // Chunked: a sitemap may list 50,000 URLs, and one statement for all of them would hold its locks long.
    for (let start = 0; start < inScope.length; start += insertChunk) {
      const chunk = inScope.slice(start, start + insertChunk);
      const added = await insertUrls(this.pool, this.request.crawlId, chunk.map((url) => ({ url, depth: 0, foundOn: ref.url })));
      for (const [host, count] of Object.entries(added)) this.progress.queuedByHost[host] = (this.progress.queuedByHost[host] ?? 0) + count;
    }
    log.debug('Sitemap read', { url: ref.url, urls: urls.length, inScope: inScope.length });
  }

  private skip(ref: SitemapRef, reason: string, message?: string): void {
    this.count(reason);
    log.debug('Sitemap skipped', { url: ref.url, reason, ...(message === undefined ? {} : { message }) });
  }

  private count(reason: string, n = 1): void {
    this.progress.skipped[reason] = (this.progress.skipped[reason] ?? 0) + n;
  }

  /** Waits for every pacer the request counts against: its host (rate, Crawl-delay), its rate groups, the crawl's total. */
  private pass(url: string): Promise<void> {
    return this.gate.pass(this.pacersOf(hostOf(url)));
  }

  private pacersOf(host: string): PacerSpacing[] {
    const { rate, totalRate, rateGroups } = this.settings;
    const hostInterval = Math.max(rate > 0 ? 1000 / rate : 0, this.progress.crawlDelayMsByHost[host] ?? 0);
    const shared = sharedPacersOf(host, { totalRate, groups: rateGroups });
    return [{ key: host, intervalMs: hostInterval }, ...shared.map(({ key, rate: sharedRate }) => ({ key, intervalMs: 1000 / sharedRate }))];
  }

  /** Where each pacer would let the next request start: the crawl's pacing goes on from there. */
  private nextRequestAt(): Pick<SitemapSeedResult, 'nextRequestAtByHost' | 'nextRequestAtByPacer'> {
    const nextRequestAtByHost: Record<string, number> = {};
    const nextRequestAtByPacer: Record<string, number> = {};
    for (const [key, atMs] of Object.entries(this.gate.nextStarts())) {
      if (key === 'total' || key.startsWith('group:')) nextRequestAtByPacer[key] = atMs;
      else nextRequestAtByHost[key] = atMs;
    }
    return { nextRequestAtByHost, nextRequestAtByPacer };
  }
}

/** URLs inserted per statement. */
const insertChunk = 5000;

function originOf(url: string): string {
  return new URL(url).origin;
}

