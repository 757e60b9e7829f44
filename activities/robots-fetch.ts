import type { CrawlSettings } from '../src/crawl-types';
import { routesForHost } from '../src/egress';
import type { EgressHealth } from './egress-health';
import { fetchOptionsFor, fetchPage, type BeforeRequest } from './fetch-page';
import type { RobotsFetch } from './robots-cache';

/** RFC 9309 §2.3.1.2: follow at least five consecutive redirects. */
const robotsRedirects = 5;

/** GETs a robots.txt and sorts the answer into the RFC 9309 §2.3.1 cases. */
export async function fetchRobotsTxt(robotsUrl: string, settings: CrawlSettings, beforeRequest?: BeforeRequest, egress?: EgressHealth): Promise<RobotsFetch> {
  const outcome = await fetchPage(robotsUrl, {
    ...fetchOptionsFor(settings, egress),
    maxRedirects: robotsRedirects,
    acceptsType: () => true,
    beforeRequest,
  });
  if (outcome.kind === 'body') return { kind: 'response', status: outcome.status, body: outcome.body };
  if (outcome.kind === 'skipped') throw new Error('unreachable: acceptsType takes every 2xx body');
  // A proxy's credentials missing on this worker: not an answer about robots.txt; ask again later (another worker may have them).
  if (outcome.transient || outcome.reason === 'secret_missing') return { kind: 'unreachable' };
  // Through a proxy, a ban status may be the proxy's (or the site's answer to the proxy's address), not the
  // site's word on robots.txt (RFC 9309 §2.3.1.3 lets a 4xx allow everything): ask again, through another route.
  if (outcome.status !== undefined && settings.banStatuses.includes(outcome.status) && routesForHost(settings, new URL(robotsUrl).host).length > 0) return { kind: 'unreachable' };
  // A 4xx, or redirects that go nowhere: "unavailable", which allows everything (§2.3.1.3).
  if (outcome.status !== undefined) return { kind: 'response', status: outcome.status, body: '' };
  // No answer that will change by asking again (no such host, refused address):
  // allow, and let each page's own fetch record that failure.
  return { kind: 'absent' };
}
