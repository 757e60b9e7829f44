import type { Pool } from 'pg';
import type { CrawlSettings } from '../src/crawl-types';
import { withoutNul } from '../src/pg-text';
import { allowAll, parseRobots, robotsUrlFor, type RobotsPolicy } from '../src/robots';
import type { BeforeRequest } from './fetch-page';

export type RobotsVerdict = 'allowed' | 'disallowed' | 'unavailable';

/**
 * What fetching a robots.txt came to: a response (any status); `unreachable`
 * for a 5xx or a transient network failure (RFC 9309 §2.3.1.4); `absent` when
 * asking again cannot help (the host does not exist), so nothing is stored.
 */
export type RobotsFetch = { kind: 'response'; status: number; body: string } | { kind: 'unreachable' } | { kind: 'absent' };
export type RobotsFetcher = (robotsUrl: string, settings: CrawlSettings, beforeRequest?: BeforeRequest) => Promise<RobotsFetch>;

/** Parsed policies kept in memory per process; the database keeps them all. */
const maxCachedPolicies = 10_000;

/**
 * robots.txt fetched once per origin per crawl — whichever worker gets there
 * first stores it in Postgres, the others read it — and parsed once per process.
 */
export class RobotsCache {
  private readonly cache = new Map<string, Promise<RobotsPolicy | null>>();

  constructor(
    private readonly pool: Pool,
    private readonly fetchRobots: RobotsFetcher,
  ) {}

  /**
   * The policy for `url`'s origin, or null while its robots.txt is
   * unreachable. `beforeRequest` paces the robots.txt request when one is made.
   */
  policy(crawlId: string, url: string, settings: CrawlSettings, beforeRequest?: BeforeRequest): Promise<RobotsPolicy | null> {
    const robotsUrl = robotsUrlFor(url);
    const key = `${crawlId} ${robotsUrl}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    if (this.cache.size >= maxCachedPolicies) this.cache.delete(this.cache.keys().next().value as string);
    const policy = this.load(crawlId, robotsUrl, settings, beforeRequest);
    this.cache.set(key, policy);
    // Unreachable is not remembered: the host is paused, and its next batch asks again (RFC 9309 §2.3.1.4).
    policy.then(
      (loaded) => {
        if (loaded === null) this.cache.delete(key);
      },
      () => this.cache.delete(key),
    );
    return policy;
  }

  async verdict(crawlId: string, url: string, settings: CrawlSettings, beforeRequest?: BeforeRequest): Promise<RobotsVerdict> {
    const policy = await this.policy(crawlId, url, settings, beforeRequest);
    if (policy === null) return 'unavailable';
    return policy.isAllowed(url) ? 'allowed' : 'disallowed';
  }

  private async load(crawlId: string, robotsUrl: string, settings: CrawlSettings, beforeRequest?: BeforeRequest): Promise<RobotsPolicy | null> {
    const origin = new URL(robotsUrl).origin;
    const stored = await this.pool.query<{ status: number; body: string }>(
      'SELECT status, body FROM robots WHERE crawl_id = $1 AND origin = $2',
      [crawlId, origin],
    );
    let record = stored.rows[0];
    if (!record) {
      const fetched = await this.fetchRobots(robotsUrl, settings, beforeRequest);
      // RFC 9309 §2.3.1.4: unreachable means "disallow everything for now" — the URLs wait and are retried.
      if (fetched.kind === 'unreachable') return null;
      if (fetched.kind === 'absent') return allowAll;
      record = { status: fetched.status, body: fetched.body };
      await this.pool.query(
        'INSERT INTO robots (crawl_id, origin, status, body) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING',
        [crawlId, origin, record.status, withoutNul(record.body)],
      );
    }
    // RFC 9309 §2.3.1.3: a robots.txt that is unavailable (4xx, or too many redirects) allows everything.
    if (record.status < 200 || record.status >= 300) return allowAll;
    return parseRobots(robotsUrl, record.body, settings.userAgent);
  }
}
