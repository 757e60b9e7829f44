import { Context, log } from '@temporalio/activity';
import type { Pool } from 'pg';
import type { SitemapSeedRequest, SitemapSeedResult } from '../src/crawl-types';
import type { RobotsPolicy } from '../src/robots';
import { isInScope, scopeRejection } from '../src/scope';
import { parseSitemap } from '../src/sitemap';
import { hostOf } from '../src/url';
import { fetchOptionsFor, fetchPage, type FetchOutcome } from './fetch-page';
import { insertUrls } from './frontier-store';
import { RequestGate } from './request-gate';
import { RobotsCache } from './robots-cache';
import { fetchRobotsTxt } from './robots-fetch';

/** Sitemap files deep: robots.txt or /sitemap.xml (1) → index entries (2) → their entries (3). */
const maxSitemapDepth = 3;
/** Sitemap files requested per run, whatever their outcome: a site cannot make seeding endless. */
const maxSitemapFiles = 100;
/** Heartbeat at least this often while waiting for a host's next slot (a Crawl-delay may be a minute). */
const heartbeatEveryMs = 5_000;

/** A sitemap to fetch, and who pointed at it. */
interface SitemapRef {
  url: string;
  depth: number;
  /** The origin whose robots.txt, index or redirect listed it; null for a guessed `/sitemap.xml`. */
  listedBy: string | null;
}

/**
 * `seedFromSitemaps`: queues, as depth-0 seeds, the in-scope URLs of the
 * sitemaps each seed's origin lists in robots.txt (RFC 9309 §2.2.4) and of
 * its `/sitemap.xml`, following sitemap indexes. A missing or broken sitemap
 * is normal: it is logged and counted, never an error. Safe to run twice:
 * URLs already in the frontier are not queued again.
 * @param robots where robots.txt comes from; shares the crawl's stored copy, so a site's robots.txt is still fetched once per crawl.
 */
export function createSitemapActivities(pool: Pool, robots = new RobotsCache(pool, fetchRobotsTxt)) {
  return {
    async seedFromSitemaps(request: SitemapSeedRequest): Promise<SitemapSeedResult> {
      return new SitemapSeeding(pool, robots, request).run();
    },
  };
}

/** One run of `seedFromSitemaps`: a breadth-first walk over sitemap files, one request at a time. */
class SitemapSeeding {
  private readonly context = Context.current();
  /** One per host: requests to a host start at least an interval apart (`rate`, widened by Crawl-delay). */
  private readonly gates = new Map<string, RequestGate>();
  private readonly seen = new Set<string>();
  private readonly queue: SitemapRef[] = [];
  private readonly queuedByHost: Record<string, number> = {};
  /** Reason -> sitemaps not fetched or not usable, for the log. */
  private readonly skipped: Record<string, number> = {};
  private requested = 0;
  private fetched = 0;

  constructor(
    private readonly pool: Pool,
    private readonly robots: RobotsCache,
    private readonly request: SitemapSeedRequest,
  ) {}

  async run(): Promise<SitemapSeedResult> {
    for (const origin of new Set(this.request.seeds.map(originOf))) await this.discover(origin);
    let next = 0;
    while (next < this.queue.length && this.requested < maxSitemapFiles) await this.visit(this.queue[next++]);
    // An index may list 50,000 sitemaps: the ones left over are counted, not logged one by one.
    if (next < this.queue.length) this.skipped.file_limit = this.queue.length - next;
    log.info('Sitemaps read', { crawlId: this.request.crawlId, fetched: this.fetched, queuedByHost: this.queuedByHost, skipped: this.skipped });
    return { queuedByHost: this.queuedByHost, sitemapsFetched: this.fetched, nextRequestAtByHost: this.nextRequestAtByHost() };
  }

  /** The `Sitemap:` lines of the origin's robots.txt (RFC 9309 §2.2.4), then its conventional `/sitemap.xml`. */
  private async discover(origin: string): Promise<void> {
    const policy = await this.policy(origin);
    for (const url of policy?.sitemaps ?? []) this.enqueue({ url, depth: 1, listedBy: origin });
    this.enqueue({ url: `${origin}/sitemap.xml`, depth: 1, listedBy: null });
  }

  private enqueue(ref: SitemapRef): void {
    if (this.seen.has(ref.url)) return;
    this.seen.add(ref.url);
    this.queue.push(ref);
  }

  private async visit(ref: SitemapRef): Promise<void> {
    const refusal = await this.refusal(ref);
    if (refusal !== null) return this.skip(ref, refusal);
    this.requested++;
    this.context.heartbeat({ sitemapsFetched: this.fetched });
    const outcome = await this.fetch(ref);
    if (outcome.kind !== 'html') return this.skip(ref, outcome.reason, outcome.kind === 'failed' ? outcome.message : undefined);
    this.fetched++;
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
    const { settings, scope } = this.request;
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

  /** The origin's robots.txt, fetched (through its host's gate) at most once per crawl; null while unreachable. */
  private async policy(origin: string): Promise<RobotsPolicy | null> {
    const { crawlId, settings } = this.request;
    const policy = await this.robots.policy(crawlId, `${origin}/`, settings, (url) => this.pass(url));
    if (policy !== null && settings.obeyRobots) this.gate(hostOf(origin)).slowTo((policy.crawlDelaySecs ?? 0) * 1000);
    return policy;
  }

  private fetch(ref: SitemapRef): Promise<FetchOutcome> {
    const { settings } = this.request;
    return fetchPage(ref.url, {
      ...fetchOptionsFor(settings),
      signal: this.context.cancellationSignal,
      anyContentType: true,
      unwrapGzip: true,
      beforeRequest: (url) => this.pass(url),
      // A redirect is the redirecting origin pointing somewhere: the same rules as a listed sitemap.
      checkHop: (hop) => this.refusal({ url: hop, depth: ref.depth, listedBy: originOf(ref.url) }),
    });
  }

  /** Queues a sitemap's in-scope URLs as seeds (depth 0), found on the sitemap. */
  private async queueUrls(ref: SitemapRef, urls: string[]): Promise<void> {
    const inScope = urls.filter((url) => isInScope(url, this.request.scope));
    const added = await insertUrls(this.pool, this.request.crawlId, inScope.map((url) => ({ url, depth: 0, foundOn: ref.url })));
    for (const [host, count] of Object.entries(added)) this.queuedByHost[host] = (this.queuedByHost[host] ?? 0) + count;
    log.debug('Sitemap read', { url: ref.url, urls: urls.length, inScope: inScope.length, queued: sum(Object.values(added)) });
  }

  private skip(ref: SitemapRef, reason: string, message?: string): void {
    this.skipped[reason] = (this.skipped[reason] ?? 0) + 1;
    log.debug('Sitemap skipped', { url: ref.url, reason, ...(message === undefined ? {} : { message }) });
  }

  private pass(url: string): Promise<void> {
    return this.gate(hostOf(url)).pass();
  }

  private gate(host: string): RequestGate {
    let gate = this.gates.get(host);
    if (gate === undefined) {
      const { rate } = this.request.settings;
      gate = new RequestGate(Date.now(), rate > 0 ? 1000 / rate : 0, (ms) => this.sleep(ms));
      this.gates.set(host, gate);
    }
    return gate;
  }

  /** A cancellable sleep that keeps heartbeating, so a long Crawl-delay does not look like a dead worker. */
  private async sleep(ms: number): Promise<void> {
    for (let left = ms; left > 0; left -= heartbeatEveryMs) {
      this.context.heartbeat({ sitemapsFetched: this.fetched });
      await this.context.sleep(Math.min(left, heartbeatEveryMs));
    }
  }

  /** Where each gate would have let the next request start: the host's pacing goes on from there. */
  private nextRequestAtByHost(): Record<string, number> {
    const next: Record<string, number> = {};
    for (const [host, gate] of this.gates) if (gate.nextStartAtMs !== null) next[host] = gate.nextStartAtMs;
    return next;
  }
}

function originOf(url: string): string {
  return new URL(url).origin;
}

function sum(values: number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
