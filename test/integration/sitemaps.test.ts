import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as zlib from 'node:zlib';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { closeAgents } from '../../activities/http-agent';
import type { SitemapSeedRequest, SitemapSeedResult } from '../../src/crawl-types';
import { scopeRulesFor } from '../../src/scope';
import { parseCrawlSpec, type CrawlSpecInput } from '../../src/spec';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';

// ---------------------------------------------------------------------------
// Local sites: each a table of path -> response, recording every request.

type Reply = { status?: number; type?: string; encoding?: string; body: string | Buffer };

interface Site {
  origin: string;
  host: string;
  url(path: string): string;
  /** Every request, in order, with the time the server saw it. */
  requests: { path: string; atMs: number }[];
  paths(): string[];
  close(): Promise<void>;
}

async function startSite(routes: (site: Site) => Record<string, Reply>): Promise<Site> {
  const server = http.createServer();
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const site: Site = {
    origin: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    url: (path) => `${site.origin}${path}`,
    requests: [],
    paths: () => site.requests.map((r) => r.path),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const table = routes(site);
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = req.url ?? '/';
    site.requests.push({ path, atMs: performance.timeOrigin + performance.now() });
    const reply = table[path] ?? { status: 404, type: 'text/html', body: '<h1>Not found</h1>' };
    const headers: http.OutgoingHttpHeaders = { 'content-type': reply.type ?? 'application/xml' };
    if (reply.encoding) headers['content-encoding'] = reply.encoding;
    res.writeHead(reply.status ?? 200, headers).end(reply.body);
  });
  return site;
}

const NS = 'http://www.sitemaps.org/schemas/sitemap/0.9';
const urlset = (locs: string[]): Reply => ({ body: `<urlset xmlns="${NS}">${locs.map((l) => `<url><loc>${l}</loc></url>`).join('')}</urlset>` });
const sitemapIndex = (locs: string[]): Reply => ({
  body: `<?xml version="1.0"?><sitemapindex xmlns="${NS}">${locs.map((l) => `<sitemap><loc>${l}</loc></sitemap>`).join('')}</sitemapindex>`,
});
const robotsTxt = (lines: string[]): Reply => ({ type: 'text/plain', body: `${lines.join('\n')}\n` });

// ---------------------------------------------------------------------------

describe('seedFromSitemaps', () => {
  let stack: TestStack;
  /** Off scope for every crawl below: nothing may ever be requested from it. */
  let offsite: Site;
  let site: Site;

  before(async () => {
    stack = await openStack();
    offsite = await startSite(() => ({ '/offsite-sitemap.xml': urlset(['/x']), '/other.xml': urlset(['/y']) }));
    site = await startSite((s) => ({
      '/robots.txt': robotsTxt([
        'User-agent: *',
        'Disallow: /private/',
        'Sitemap: /sitemap_index.xml', // relative: resolved against robots.txt
        `Sitemap: ${offsite.url('/offsite-sitemap.xml')}`,
      ]),
      '/sitemap_index.xml': sitemapIndex([
        '/sitemaps/pages.xml',
        s.url('/sitemaps/posts.xml.gz'),
        '/sitemaps/missing.xml',
        offsite.url('/other.xml'),
        '/sitemaps/nested.xml',
        '/sitemaps/garbage.xml',
      ]),
      '/sitemaps/pages.xml': urlset([
        s.url('/'),
        s.url('/a'),
        '/b?x=1&amp;y=2',
        s.url('/a#fragment'),
        s.url('/private/page'),
        s.url('/skip-me'),
        offsite.url('/not-ours'),
        'https://elsewhere.example/page',
      ]),
      // A .gz file is application/x-gzip with no Content-Encoding: the crawler must gunzip it itself.
      '/sitemaps/posts.xml.gz': { type: 'application/x-gzip', body: zlib.gzipSync(urlset([s.url('/posts/1'), s.url('/posts/2')]).body) },
      '/sitemaps/nested.xml': sitemapIndex(['/sitemaps/level3.xml']),
      '/sitemaps/level3.xml': sitemapIndex(['/sitemaps/level4.xml']),
      '/sitemaps/level4.xml': urlset([s.url('/too-deep')]),
      '/sitemaps/garbage.xml': { type: 'text/html', body: '<html><body>Oops <<< & </p>' },
      // Not listed in robots.txt: fetched because robots.txt allows it.
      '/sitemap.xml': { type: 'text/plain', body: `${s.url('/from-root')}\n${s.url('/a')}\n` },
    }));
  });

  after(async () => {
    await Promise.all([site?.close(), offsite?.close()]);
    await closeAgents();
    await stack?.close();
  });

  /** A crawl of `seedSite` (its root as the seed), with settings from `overrides`. */
  /** A crawl started before tokens (no token): its settings ride in the request. */
  function crawlOf(seedSite: Site, overrides: Partial<CrawlSpecInput> = {}): SitemapSeedRequest & Required<Pick<SitemapSeedRequest, 'settings' | 'scope'>> {
    const spec = parseCrawlSpec({ seeds: [seedSite.url('/')], allowPrivate: true, rate: 0, sitemaps: true, exclude: ['skip-me'], ...overrides });
    const { seeds, ...settings } = spec;
    return { crawlId: uniqueId('sitemaps'), seeds, settings, scope: scopeRulesFor(spec) };
  }

  /** Runs the activity as Temporal would, collecting its log and heartbeats. */
  async function seed(request: SitemapSeedRequest) {
    const logs: LogEntry[] = [];
    const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('DEBUG', (entry) => logs.push(entry)) });
    let heartbeats = 0;
    env.on('heartbeat', () => heartbeats++);
    const activities = createActivities({ pool: stack.pool });
    const result = (await env.run(activities.seedFromSitemaps, request)) as SitemapSeedResult;
    const summary = logs.find((entry) => entry.message === 'Sitemaps read');
    return { result, heartbeats, skipped: summary?.meta?.skipped as Record<string, number> | undefined };
  }

  async function frontier(crawlId: string) {
    const { rows } = await stack.pool.query(`SELECT url, host, depth, found_on, state FROM frontier WHERE crawl_id = $1 ORDER BY url`, [crawlId]);
    return rows;
  }

  it('queues the in-scope URLs of robots-listed sitemaps, their index entries (gzip too) and /sitemap.xml, as depth-0 seeds', async () => {
    const request = crawlOf(site);
    const activities = createActivities({ pool: stack.pool });
    await new MockActivityEnvironment().run(activities.seedFrontier, { crawlId: request.crawlId, seeds: request.seeds, settings: request.settings });
    const requestsBefore = site.requests.length;

    const { result, heartbeats, skipped } = await seed(request);

    const row = (path: string, foundOn: string | null) => ({ url: site.url(path), host: site.host, depth: 0, found_on: foundOn && site.url(foundOn), state: 'queued' });
    assert.deepEqual(await frontier(request.crawlId), [
      row('/', null), // the seed, queued by seedFrontier
      row('/a', '/sitemap.xml'), // listed by pages.xml too, but /sitemap.xml was read first
      row('/b?x=1&y=2', '/sitemaps/pages.xml'),
      row('/from-root', '/sitemap.xml'),
      row('/posts/1', '/sitemaps/posts.xml.gz'),
      row('/posts/2', '/sitemaps/posts.xml.gz'),
      // Disallowed pages are queued all the same: the batch applies robots.txt when it fetches them.
      row('/private/page', '/sitemaps/pages.xml'),
    ]);
    assert.deepEqual(result.queuedByHost, { [site.host]: 6 });
    // _index, pages, posts.gz, nested, level3, garbage, /sitemap.xml; not missing (404), not level4 (too deep).
    assert.equal(result.sitemapsFetched, 7);
    assert.deepEqual(site.paths().slice(requestsBefore), [
      '/robots.txt',
      '/sitemap_index.xml',
      '/sitemap.xml',
      '/sitemaps/pages.xml',
      '/sitemaps/posts.xml.gz',
      '/sitemaps/missing.xml',
      '/sitemaps/nested.xml',
      '/sitemaps/garbage.xml',
      '/sitemaps/level3.xml',
    ]);
    assert.deepEqual(offsite.paths(), [], 'off-scope sitemaps are never requested');
    assert.deepEqual(skipped, { off_scope: 2, http_404: 1, too_deep: 1 });
    assert.ok(heartbeats >= 8, `a heartbeat before each fetch (got ${heartbeats})`);
    const last = site.requests.at(-1)?.atMs ?? 0;
    // With no rate the next request may start right after the last one.
    const reported = result.nextRequestAtByHost[site.host];
    assert.ok(reported <= last && last - reported < 1000, `next request allowed at ${reported}, last seen by the server at ${last}`);
    assert.deepEqual(Object.keys(result.nextRequestAtByHost), [site.host]);
  });

  it('is idempotent: a second run queues nothing and leaves the frontier as it was', async () => {
    const request = crawlOf(site);
    const first = await seed(request);
    const rows = await frontier(request.crawlId);
    const robotsFetches = site.paths().filter((p) => p === '/robots.txt').length;

    const second = await seed(request);

    assert.deepEqual(first.result.queuedByHost, { [site.host]: 7 }, 'with no seedFrontier before it, / comes from the sitemap');
    assert.deepEqual(second.result.queuedByHost, {});
    assert.equal(second.result.sitemapsFetched, first.result.sitemapsFetched);
    assert.deepEqual(await frontier(request.crawlId), rows);
    assert.equal(site.paths().filter((p) => p === '/robots.txt').length, robotsFetches, 'robots.txt is fetched once per crawl (stored)');
  });

  it('spaces requests to a host by 1000/rate ms and reports when the next one may start', async () => {
    const request = crawlOf(site, { rate: 20 }); // 50 ms apart
    const from = site.requests.length;
    const started = Date.now();

    const { result } = await seed(request);

    const times = site.requests.slice(from).map((r) => r.atMs);
    assert.equal(times.length, 9);
    // The server sees each start a little after the client made it, by a varying few ms (unpaced, they would be ~1 ms apart).
    for (let i = 1; i < times.length; i++) {
      assert.ok(times[i] - times[i - 1] >= 40, `requests ${i - 1} and ${i} only ${times[i] - times[i - 1]} ms apart`);
    }
    assert.ok(times.at(-1)! - times[0] >= 8 * 50 - 10, `9 requests in ${times.at(-1)! - times[0]} ms`);
    const reported = result.nextRequestAtByHost[site.host];
    assert.ok(reported >= started, `reported ${reported}`);
    assert.ok(reported - times.at(-1)! >= 40 && reported - times.at(-1)! <= 100, `next allowed ${reported - times.at(-1)!} ms after the last request seen`);
  });

  it('paces sitemap requests by the crawl total rate too (--total-rate), and reports where that pacer goes on', async () => {
    const request = crawlOf(site, { rate: 0, totalRate: 20 }); // 50 ms apart across hosts
    const from = site.requests.length;

    const { result } = await seed(request);

    const times = site.requests.slice(from).map((r) => r.atMs);
    for (let i = 1; i < times.length; i++) assert.ok(times[i] - times[i - 1] >= 40, `requests ${i - 1} and ${i} only ${times[i] - times[i - 1]} ms apart`);
    assert.ok(result.nextRequestAtByPacer?.total !== undefined && result.nextRequestAtByPacer.total > times.at(-1)!, 'the total pacer goes on from there');
  });

  it('regression: sitemap reading on a slow host restarted from scratch on every attempt — a new attempt resumes from the last heartbeat', async () => {
    const request = crawlOf(site, { rate: 20 });
    const from = site.requests.length;
    // The first attempt dies after a few sitemap files (as a killed worker or a timeout would end it).
    let lastProgress: unknown;
    const firstAttempt = new MockActivityEnvironment();
    firstAttempt.on('heartbeat', (details: { next?: number }) => {
      lastProgress = details;
      if ((details.next ?? 0) >= 3) firstAttempt.cancel();
    });
    await assert.rejects(firstAttempt.run(createActivities({ pool: stack.pool }).seedFromSitemaps, request));
    const firstPaths = site.paths().slice(from);
    assert.ok(lastProgress !== undefined && firstPaths.length >= 3, `the first attempt got somewhere (${firstPaths.join(' ')})`);

    const secondAttempt = new MockActivityEnvironment({ heartbeatDetails: lastProgress });
    await secondAttempt.run(createActivities({ pool: stack.pool }).seedFromSitemaps, request);

    const fetches = new Map<string, number>();
    for (const path of site.paths().slice(from)) fetches.set(path, (fetches.get(path) ?? 0) + 1);
    const again = [...fetches].filter(([, n]) => n > 1).map(([path]) => path);
    // The file being read when the attempt died may be read again; nothing before it is.
    assert.ok(again.length <= 1, `fetched again: ${again.join(' ')}`);
    const uninterrupted = crawlOf(site, { rate: 20 });
    await seed(uninterrupted);
    const urls = async (crawlId: string) => (await frontier(crawlId)).map((row) => row.url).sort();
    assert.deepEqual(await urls(request.crawlId), await urls(uninterrupted.crawlId), 'the same URLs queued as by one uninterrupted run');
  });

  it('honours allowPrivate: off, a loopback site is never contacted and nothing fails', async () => {
    const request = crawlOf(site, { allowPrivate: false });
    const from = site.requests.length;

    const { result, skipped } = await seed(request);

    assert.deepEqual(result, { queuedByHost: {}, sitemapsFetched: 0, nextRequestAtByHost: {}, nextRequestAtByPacer: {} });
    assert.equal(site.requests.length, from);
    assert.deepEqual(skipped, { private_address: 1 }, 'robots.txt refused (absent), then /sitemap.xml refused');
    assert.deepEqual(await frontier(request.crawlId), []);
  });

  it('fetches an unlisted /sitemap.xml only if robots.txt allows it (or robots are ignored)', async () => {
    const guarded = await startSite((s) => ({
      '/robots.txt': robotsTxt(['User-agent: *', 'Disallow: /sitemap.xml']),
      '/sitemap.xml': urlset([s.url('/hidden')]),
    }));
    try {
      const obeyed = await seed(crawlOf(guarded));
      assert.deepEqual(guarded.paths(), ['/robots.txt']);
      assert.deepEqual(obeyed.skipped, { robots_disallowed: 1 });
      assert.deepEqual(obeyed.result.queuedByHost, {});

      const ignored = await seed(crawlOf(guarded, { obeyRobots: false }));
      assert.deepEqual(guarded.paths(), ['/robots.txt', '/robots.txt', '/sitemap.xml']);
      assert.deepEqual(ignored.result.queuedByHost, { [guarded.host]: 1 });
    } finally {
      await guarded.close();
    }
  });

  it('a site without robots.txt or sitemaps is not an error', async () => {
    const bare = await startSite(() => ({}));
    try {
      const { result, skipped } = await seed(crawlOf(bare));
      assert.deepEqual(bare.paths(), ['/robots.txt', '/sitemap.xml']);
      assert.equal(result.sitemapsFetched, 0);
      assert.deepEqual(result.queuedByHost, {});
      assert.deepEqual(skipped, { http_404: 1 });
    } finally {
      await bare.close();
    }
  });

  it('requests at most 100 sitemap files per run', async () => {
    const many = await startSite((s) => {
      const routes: Record<string, Reply> = {
        '/robots.txt': robotsTxt(['User-agent: *', 'Sitemap: /index.xml']),
        '/index.xml': sitemapIndex(Array.from({ length: 150 }, (_, i) => `/maps/${i}.xml`)),
      };
      for (let i = 0; i < 150; i++) routes[`/maps/${i}.xml`] = urlset([s.url(`/page/${i}`)]);
      return routes;
    });
    try {
      const request = crawlOf(many);
      const { result, skipped } = await seed(request);
      const files = many.paths().filter((p) => p !== '/robots.txt');
      assert.equal(files.length, 100);
      assert.deepEqual(files.slice(0, 3), ['/index.xml', '/sitemap.xml', '/maps/0.xml']);
      assert.equal(result.sitemapsFetched, 99, 'the 404 of /sitemap.xml is requested but not fetched');
      assert.deepEqual(result.queuedByHost, { [many.host]: 98 });
      assert.deepEqual(skipped, { http_404: 1, file_limit: 52 });
    } finally {
      await many.close();
    }
  });
});
