/**
 * What the hostile-site example's runner (examples/run.ts) and its test
 * share: the imitation site's settings, starting it with the example's
 * proxies, and the checks of a finished crawl against what the site saw.
 */
import { startForwardProxy, type ForwardProxy } from '../fixtures/forward-proxy';
import { hostileFigures, startHostileSite, type HostileFigures, type HostileSite } from '../fixtures/hostile-site';
import { ARRIVAL_JITTER_MS, readExampleSpec } from './api-examples';

/**
 * The imitation site's side of the example: 9 listing pages of 9 items
 * (90 pages), 84 answers a minute for everyone together (1.4/s, under the
 * spec's rate of 4/s: the budget is spent after about 21 s, and the last
 * pages wait for the minute to pass), and the third proxy's address
 * refused. The proxies leave from addresses of their own, so the site tells
 * them apart.
 */
export const HOSTILE_SITE = {
  pages: 9,
  itemsPerPage: 9,
  budget: { requests: 84, windowMs: 60_000 },
  proxyAddresses: ['127.0.0.2', '127.0.0.3', '127.0.0.4'],
  blocked: '127.0.0.4',
};

export interface HostileExample {
  site: HostileSite;
  /** In the spec's order; each leaves from HOSTILE_SITE.proxyAddresses[i]. */
  proxies: ForwardProxy[];
  close(): Promise<void>;
}

/** The proxy URLs the example spec lists, in order. */
export function exampleProxyUrls(): string[] {
  return readExampleSpec('hostile-site').proxies as string[];
}

/** Starts the site and the example's proxies, on the given ports (0: free ones). */
export async function startHostileExample(ports: { site: number; proxies: number[] }): Promise<HostileExample> {
  const site = await startHostileSite({ ...HOSTILE_SITE, blocked: [HOSTILE_SITE.blocked], port: ports.site });
  const proxies = await Promise.all(HOSTILE_SITE.proxyAddresses.map((localAddress, i) => startForwardProxy({ port: ports.proxies[i], localAddress })));
  return { site, proxies, close: async () => void (await Promise.all([site, ...proxies].map((s) => s.close()))) };
}

export interface Check {
  what: string;
  ok: boolean;
}

/** A route as `tcrawl status --json` lists it. */
export interface EgressRow {
  egress: string;
  state: string;
  requests: number;
  bans: number;
  failures: number;
  restingUntil: string | null;
}

/** What `tcrawl crawl --wait --json` prints. */
export interface CrawlSummary {
  crawlId: string;
  saved: number;
  failed: number;
  skipped: number;
  elapsedMs: number;
}

/**
 * The finished crawl against what the site saw: every page saved once and
 * answered once, nothing failed; the site's budget met (bans came) and kept
 * to afterwards; the blocked proxy rested after a few refusals while the
 * others carried the crawl; and never more starts in a second than the
 * spec's rate, over all proxies together.
 */
export function hostileChecks(example: HostileExample, savedUrls: string[], summary: CrawlSummary, egress: EgressRow[], rate: number): { figures: HostileFigures; checks: Check[] } {
  const { site, proxies } = example;
  const figures = hostileFigures(site.requests);
  const expected = site.pagePaths.map((p) => site.url(p)).sort();
  const saved = [...savedUrls].sort();
  const blocked = proxies[HOSTILE_SITE.proxyAddresses.indexOf(HOSTILE_SITE.blocked)];
  const blockedRoute = egress.find((r) => r.egress === blocked.url);
  const fromBlocked = figures.byRemote[HOSTILE_SITE.blocked]?.requests ?? 0;
  const carriers = proxies.filter((p) => p !== blocked);
  return {
    figures,
    checks: [
      { what: `every page saved exactly once (${saved.length} of ${expected.length}), none failed (${summary.failed})`, ok: JSON.stringify(saved) === JSON.stringify(expected) && summary.failed === 0 },
      { what: `each page answered 200 once by the site (${figures.answeredTwice.length} twice)`, ok: figures.answeredTwice.length === 0 },
      { what: `the budget's bans met and backed off from (${figures.budgetBans} budget 403s)`, ok: figures.budgetBans > 0 },
      { what: `at most ${rate} requests in any second over all proxies (${figures.maxInSecondLessJitter} in any ${1000 - ARRIVAL_JITTER_MS} ms)`, ok: figures.maxInSecondLessJitter <= rate },
      {
        what: `the blocked proxy rested: ${fromBlocked} requests through it, all refused; status: ${blockedRoute?.state ?? '?'}, ${blockedRoute?.bans ?? '?'} bans`,
        // Round robin would send it a third: a rested route gets one request per rest (or one per worker, before they sync).
        // Rests are the fleet's, across crawls: run again soon after, the route may still be resting from the last run.
        ok:
          fromBlocked === figures.blockedBans &&
          fromBlocked <= figures.requests / 10 &&
          blockedRoute !== undefined &&
          blockedRoute.bans >= fromBlocked &&
          (fromBlocked > 0 || blockedRoute.state === 'resting'),
      },
      { what: `the other proxies carried the crawl (${carriers.map((p) => p.forwarded).join(', ')})`, ok: carriers.every((p) => p.forwarded > 10) },
    ],
  };
}

export function describeHostileFigures(f: HostileFigures): string[] {
  const remotes = Object.entries(f.byRemote).map(([remote, r]) => `${remote}: ${r.requests} (${r.perSecond.toFixed(2)}/s, ${r.refused} refused)`);
  return [
    `${f.requests} requests in ${f.spanSecs.toFixed(1)} s, ${f.meanPerSecond.toFixed(2)}/s; statuses ${JSON.stringify(f.byStatus)}`,
    `busiest second: ${f.maxInSecond} (${f.maxInSecondLessJitter} in any ${1000 - ARRIVAL_JITTER_MS} ms)`,
    `per proxy address: ${remotes.join('; ')}`,
    `bans sent: ${f.budgetBans} for the budget, ${f.blockedBans} to the blocked address`,
  ];
}
