/**
 * The chaos run's site: `hosts` servers, one loopback address each
 * (`127.0.0.2`, `127.0.0.3`, …, as in test/fixtures/counting-site.ts), so
 * per-host rate limits apply, plus one more that no seed names (off scope:
 * it must never be asked anything). It counts every request per URL and
 * knows what each URL must come to.
 *
 * Each host serves `/p/0` … `/p/{pagesPerHost-1}`: HTML pages with two
 * `.item`s, linking their children in a 4-ary tree and one pseudo-random page
 * (`pageLinks` of the counting site), and the same page of the next host.
 * Every `trapsEvery`-th page (`/p/{j·trapsEvery+1}`) also links trap set j:
 *
 * | path               | answers                                        | must end as                        |
 * |--------------------|------------------------------------------------|------------------------------------|
 * | `/flaky/j`         | 503 twice, then 200                            | saved                              |
 * | `/throttled/j`     | 429 + `Retry-After: 1` once, then 200          | saved                              |
 * | `/missing/j`       | 404                                            | failed `http_404`                  |
 * | `/redirect/j`      | 301 → `/hop/j` 302 → `/landing/j` 200          | both redirects skipped `redirected`, `/landing/j` saved |
 * | `/loop/j`          | 302 → `/loop-back/j` 302 → `/loop/j` …         | both skipped `redirected`          |
 * | `/huge/j`          | 200 text/html, 2 MiB (above the crawl's 1 MiB cap) | failed `too_large`             |
 * | `/file/j.pdf`      | 200 application/pdf                            | skipped `not_html`                 |
 * | `/private/j`       | (robots.txt disallows `/private/`)             | skipped `robots_disallowed`, never requested |
 * | `/moved/j`         | 301 → next host's `/arrived/j` 200             | skipped `redirected`; `/arrived/j` saved there |
 * | off-scope links    | the unseeded host, `offsite.invalid`           | never queued                       |
 *
 * A redirect is the crawler's to record and its target a URL of its own
 * (queued, fetched once), so every URL here is requested once, bar the
 * retries the site forces.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pageLinks } from '../test/fixtures/counting-site';

export interface ChaosSiteOptions {
  hosts: number;
  pagesPerHost: number;
  /** One trap set per this many pages of a host. @default 250 */
  trapsEvery?: number;
}

export type Outcome = { state: 'done' } | { state: 'failed' | 'skipped'; reason: string };

export interface UrlCount {
  /** Requests that arrived for the URL. */
  requests: number;
  /** Of those, answered 503 or 429: retries the site forced, not duplicates. */
  forced: number;
}

export interface ChaosSite {
  /** `http://127.0.0.2:PORT/p/0` of each host. */
  seeds: string[];
  /** URL -> what its frontier row must end as; every in-scope URL the crawl can find. */
  expected: Map<string, Outcome>;
  /** Every URL requested (absolute, with query), robots.txt and redirect hops included. */
  counts: Map<string, UrlCount>;
  /** URLs that must never be requested: robots-disallowed paths and anything on the unseeded host. */
  mustNotRequest(url: string): boolean;
  close(): Promise<void>;
}

export const FLAKY_FAILURES = 2;
/** The crawl's maxBodyBytes must be below this for `/huge/j` to fail as too large. */
export const HUGE_BYTES = 2 * 1024 * 1024;
export const ROBOTS = 'User-agent: *\nDisallow: /private/\n';

const HUGE_BODY = Buffer.alloc(HUGE_BYTES, '<p>padding</p>\n');
const PDF = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

export async function startChaosSite(opts: ChaosSiteOptions): Promise<ChaosSite> {
  if (opts.hosts < 2) throw new RangeError('the chaos site needs at least 2 hosts (off-host redirects go to the next one)');
  const trapsEvery = opts.trapsEvery ?? 250;
  const counts = new Map<string, UrlCount>();
  const servers = await Promise.all(Array.from({ length: opts.hosts + 1 }, (_, i) => listen(`127.0.0.${2 + i}`)));
  const origins = servers.map(originOf);
  const outside = origins.pop()!;
  const site: SiteShape = { origins, outside, pagesPerHost: opts.pagesPerHost, trapsEvery };
  servers.forEach((server, i) => server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const origin = i < origins.length ? origins[i] : outside;
    const url = origin + (req.url ?? '/');
    const count = counts.get(url) ?? { requests: 0, forced: 0 };
    counts.set(url, count);
    count.requests++;
    // A killed client leaves writes failing: nothing to do about it here.
    res.on('error', () => undefined);
    const response = i < origins.length ? respond(site, i, req.url ?? '/', count.requests) : text(200, 'off scope');
    if (response.status === 503 || response.status === 429) count.forced++;
    res.writeHead(response.status, { 'content-length': response.body.length, ...response.headers }).end(response.body);
  }));
  return {
    seeds: origins.map((o) => `${o}/p/0`),
    expected: expectedOutcomes(site),
    counts,
    mustNotRequest: (url) => url.startsWith(`${outside}/`) || new URL(url).pathname.startsWith('/private/'),
    close: () => Promise.all(servers.map(closeServer)).then(() => undefined),
  };
}

interface SiteShape {
  origins: string[];
  outside: string;
  pagesPerHost: number;
  trapsEvery: number;
}

/** Trap sets of one host: set j hangs off `/p/{j·trapsEvery+1}`. */
function trapSets({ pagesPerHost, trapsEvery }: SiteShape): number {
  return Math.floor((pagesPerHost - 2) / trapsEvery) + 1;
}

function expectedOutcomes(site: SiteShape): Map<string, Outcome> {
  const expected = new Map<string, Outcome>();
  const done: Outcome = { state: 'done' };
  site.origins.forEach((origin, i) => {
    for (let k = 0; k < site.pagesPerHost; k++) expected.set(`${origin}/p/${k}`, done);
    for (let j = 0; j < trapSets(site); j++) {
      const at = (path: string, outcome: Outcome) => expected.set(`${origin}${path}`, outcome);
      const redirected: Outcome = { state: 'skipped', reason: 'redirected' };
      at(`/flaky/${j}`, done);
      at(`/throttled/${j}`, done);
      at(`/missing/${j}`, { state: 'failed', reason: 'http_404' });
      at(`/redirect/${j}`, redirected);
      at(`/hop/${j}`, redirected);
      at(`/landing/${j}`, done);
      at(`/loop/${j}`, redirected);
      at(`/loop-back/${j}`, redirected);
      at(`/huge/${j}`, { state: 'failed', reason: 'too_large' });
      at(`/file/${j}.pdf`, { state: 'skipped', reason: 'not_html' });
      at(`/private/${j}`, { state: 'skipped', reason: 'robots_disallowed' });
      at(`/moved/${j}`, redirected);
      expected.set(`${nextOrigin(site, i)}/arrived/${j}`, done);
    }
  });
  return expected;
}

const nextOrigin = (site: SiteShape, i: number) => site.origins[(i + 1) % site.origins.length];

interface Response {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

const text = (status: number, body: string, headers: Record<string, string> = {}): Response => ({
  status,
  headers: { 'content-type': 'text/plain; charset=utf-8', ...headers },
  body: Buffer.from(body),
});
const html = (title: string, body: string): Response => ({
  status: 200,
  headers: { 'content-type': 'text/html; charset=utf-8' },
  body: Buffer.from(`<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1>${body}</body></html>\n`),
});
const redirect = (status: number, location: string): Response => ({ status, headers: { location }, body: Buffer.alloc(0) });
const links = (hrefs: string[]) => `<ul>${hrefs.map((h) => `<li><a href="${h}">${h}</a></li>`).join('')}</ul>`;

/** Host i's answer to `path`; `nth` counts the requests for this URL, this one included. */
function respond(site: SiteShape, i: number, path: string, nth: number): Response {
  if (path === '/robots.txt') return text(200, ROBOTS);
  const page = /^\/p\/(\d+)$/.exec(path);
  if (page) return Number(page[1]) < site.pagesPerHost ? treePage(site, i, Number(page[1])) : text(404, 'not found');
  const trap = /^\/([a-z-]+)\/(\d+)(\.pdf)?$/.exec(path);
  const j = trap ? Number(trap[2]) : -1;
  if (!trap || j >= trapSets(site)) return text(404, 'not found');
  switch (trap[1] + (trap[3] ?? '')) {
    case 'flaky':
      return nth <= FLAKY_FAILURES ? text(503, 'try again') : html(`Flaky ${j}`, '');
    case 'throttled':
      return nth <= 1 ? text(429, 'slow down', { 'retry-after': '1' }) : html(`Throttled ${j}`, '');
    case 'redirect':
      return redirect(301, `/hop/${j}`);
    case 'hop':
      return redirect(302, `/landing/${j}`);
    case 'landing':
      return html(`Landing ${j}`, '');
    case 'loop':
      return redirect(302, `/loop-back/${j}`);
    case 'loop-back':
      return redirect(302, `/loop/${j}`);
    case 'huge':
      return { status: 200, headers: { 'content-type': 'text/html; charset=utf-8' }, body: HUGE_BODY };
    case 'file.pdf':
      return { status: 200, headers: { 'content-type': 'application/pdf' }, body: PDF };
    case 'moved':
      return redirect(301, `${nextOrigin(site, i)}/arrived/${j}`);
    case 'arrived':
      return html(`Arrived ${j}`, '');
    default:
      return text(404, 'not found');
  }
}

function treePage(site: SiteShape, i: number, k: number): Response {
  const hrefs = [...pageLinks(k, site.pagesPerHost).map((p) => `/p/${p}`), `${nextOrigin(site, i)}/p/${k}`];
  if (k % site.trapsEvery === 1) hrefs.push(...trapLinks(site, (k - 1) / site.trapsEvery));
  const items = [0, 1].map((n) => `<div class="item"><span class="name">Item ${k}.${n}</span></div>`).join('');
  return html(`Host ${i} page ${k}`, items + links(hrefs));
}

function trapLinks(site: SiteShape, j: number): string[] {
  const traps = ['flaky', 'throttled', 'missing', 'redirect', 'loop', 'huge', 'private', 'moved'].map((t) => `/${t}/${j}`);
  return [...traps, `/file/${j}.pdf`, `${site.outside}/p/${j}`, `http://offsite.invalid/${j}`];
}

async function listen(address: string): Promise<http.Server> {
  const server = http.createServer({ keepAlive: true });
  // Idle sockets outlive any client pool's, so no request races a server-side close.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, () => resolve());
  });
  return server;
}

function originOf(server: http.Server): string {
  const { address, port } = server.address() as AddressInfo;
  return `http://${address}:${port}`;
}

async function closeServer(server: http.Server): Promise<void> {
  const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  server.closeAllConnections();
  await closed;
}
