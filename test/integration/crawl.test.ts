import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { openStack, pathOf, runCrawl, uniqueId, withStackAndSite, type TestStack } from '../helpers/stack';

describe('crawl workflow against the fixture site', () => {
  let stack: TestStack;
  let site: FixtureSite;
  const crawlId = uniqueId('fixture');
  let summary: Awaited<ReturnType<typeof runCrawl>>;

  before(async () => {
    stack = await openStack();
    site = await startFixtureSite();
    summary = await runCrawl(stack, { seeds: [site.url('/')], batchSize: 3 }, crawlId);
  });

  after(async () => {
    await site?.close();
    await stack?.close();
  });

  const rows = async (sql: string) => (await stack.pool.query(sql, [crawlId])).rows;

  it('saves exactly the expected pages, each once', async () => {
    const pages = await rows('SELECT url FROM pages WHERE crawl_id = $1');
    const paths = pages.map((row) => pathOf(row.url)).sort();
    assert.deepEqual(paths, [...site.expectations.savedPaths].sort());
  });

  it('records titles', async () => {
    const pages = await rows('SELECT url, final_url, title, status FROM pages WHERE crawl_id = $1');
    for (const page of pages) {
      assert.equal(page.title, site.expectations.titles[pathOf(page.url)], `title of ${page.url}`);
      assert.equal(page.status, 200);
      assert.equal(page.final_url, page.url);
    }
  });

  it('regression: redirect targets were fetched twice — each redirect hop is a URL of its own, fetched once', async () => {
    const frontier = await rows(`SELECT url, status, detail FROM frontier WHERE crawl_id = $1 AND reason = 'redirected'`);
    const targets = Object.fromEntries(frontier.map((r) => [pathOf(r.url), r.detail]));
    for (const [from, to] of Object.entries(site.expectations.redirects)) {
      assert.equal(targets[from], `→ ${site.url(to)}`, `${from} records where it pointed`);
      assert.equal(site.requestCount(from), 1, `${from} fetched once`);
      assert.equal(site.requestCount(to), 1, `${to} fetched once`);
    }
  });

  it('records failures and skips with their reasons, and nothing else unfinished', async () => {
    const frontier = await rows('SELECT url, state, reason FROM frontier WHERE crawl_id = $1');
    const failed = Object.fromEntries(frontier.filter((r) => r.state === 'failed').map((r) => [pathOf(r.url), r.reason]));
    const skipped = Object.fromEntries(frontier.filter((r) => r.state === 'skipped').map((r) => [pathOf(r.url), r.reason]));
    assert.deepEqual(failed, site.expectations.failed);
    assert.deepEqual(skipped, site.expectations.skipped);
    assert.deepEqual(frontier.filter((r) => r.state === 'queued' || r.state === 'leased'), []);
  });

  it('never requests robots-disallowed or off-scope paths', () => {
    for (const path of site.expectations.neverRequested) assert.equal(site.requestCount(path), 0, path);
    assert.equal(site.requestCount('/robots.txt'), 1, 'robots.txt is fetched once per crawl');
  });

  it('retries transient failures and honours Retry-After', () => {
    for (const [path, count] of Object.entries(site.expectations.transientRequests)) assert.equal(site.requestCount(path), count, path);
    const throttled = site.requests.filter((r) => r.path === '/throttled');
    assert.ok(throttled[1].at - throttled[0].at >= 1000, `retried ${throttled[1].at - throttled[0].at} ms after a 429 with Retry-After: 1`);
  });

  it('extracts nothing without an item spec, and reports counters matching the database', async () => {
    assert.equal((await rows('SELECT count(*)::int AS n FROM items WHERE crawl_id = $1'))[0].n, 0);
    assert.equal(summary.saved, site.expectations.savedPaths.length);
    assert.equal(summary.failed, Object.keys(site.expectations.failed).length);
    assert.equal(summary.skipped, Object.keys(site.expectations.skipped).length);
    assert.equal(summary.queued, 0);
    assert.equal(summary.byReason.http_404, 1);
    assert.equal(summary.phase, 'finished');
  });
});

describe('crawl limits and extraction', () => {
  let stack: TestStack;
  let site: FixtureSite;
  withStackAndSite((opened, fixture) => ([stack, site] = [opened, fixture]));

  it('stops at max-pages and leaves the rest queued', async () => {
    const crawlId = uniqueId('maxpages');
    const summary = await runCrawl(stack, { seeds: [site.url('/')], maxPages: 5, batchSize: 2 }, crawlId);
    assert.equal(summary.saved + summary.failed + summary.skipped, 5);
    const { rows } = await stack.pool.query(`SELECT state, count(*)::int AS n FROM frontier WHERE crawl_id = $1 GROUP BY state`, [crawlId]);
    const byState = Object.fromEntries(rows.map((r) => [r.state, r.n]));
    assert.equal((byState.done ?? 0) + (byState.failed ?? 0) + (byState.skipped ?? 0), 5);
    assert.ok(byState.queued > 0);
  });

  it('follows links no deeper than max-depth, with one-URL batches', async () => {
    const crawlId = uniqueId('depth');
    await runCrawl(stack, { seeds: [site.url('/deep/1')], maxDepth: 3, batchSize: 1 }, crawlId);
    const { rows } = await stack.pool.query(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.deepEqual(rows.map((r) => pathOf(r.url)).sort(), ['/deep/1', '/deep/2', '/deep/3', '/deep/4']);
  });

  it('extracts items with fields from CSS selectors', async () => {
    const crawlId = uniqueId('items');
    await runCrawl(stack, {
      seeds: [site.url('/products')],
      maxDepth: 0,
      items: { selector: '.product', fields: { name: '.name', price: '.price', href: 'a@href' } },
    }, crawlId);
    const { rows } = await stack.pool.query(`SELECT url, position, data FROM items WHERE crawl_id = $1 ORDER BY position`, [crawlId]);
    assert.deepEqual(
      rows.map((r) => r.data),
      site.expectations.items.map((item) => ({ name: item.name, price: item.price ?? null, href: site.url(item.href) })),
    );
    assert.ok(rows.every((r) => pathOf(r.url) === '/products'));
  });

  it('with sitemaps, also crawls the pages /sitemap.xml lists, as seeds', async () => {
    const crawlId = uniqueId('sitemaps');
    await runCrawl(stack, { seeds: [site.url('/')], maxDepth: 0, sitemaps: true }, crawlId);
    const { rows } = await stack.pool.query(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.deepEqual(rows.map((r) => pathOf(r.url)).sort(), ['/', '/a', '/orphan']);
  });

  it('includes and excludes by regex', async () => {
    const crawlId = uniqueId('filters');
    await runCrawl(stack, { seeds: [site.url('/')], maxDepth: 1, include: ['/(a|b)$'], exclude: ['/b$'] }, crawlId);
    const { rows } = await stack.pool.query(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.deepEqual(rows.map((r) => pathOf(r.url)).sort(), ['/', '/a']);
  });
});

describe('robots.txt that is unreachable (RFC 9309 §2.3.1.4)', () => {
  let stack: TestStack;
  let server: http.Server;
  const requests: Array<{ path: string; at: number }> = [];
  let robotsFailures = 2;

  before(async () => {
    stack = await openStack();
    server = http.createServer((req, res) => {
      requests.push({ path: req.url ?? '/', at: Date.now() });
      if (req.url === '/robots.txt') {
        if (robotsFailures-- > 0) return void res.writeHead(503).end();
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end('User-agent: *\nDisallow: /secret\n');
      }
      res.writeHead(200, { 'content-type': 'text/html' }).end('<title>t</title><a href="/a">a</a><a href="/secret">s</a>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await stack?.close();
  });

  it('defers the host until robots.txt answers, then obeys it: no page is fetched blindly', async () => {
    const { port } = server.address() as { port: number };
    const crawlId = uniqueId('robots5xx');
    const summary = await runCrawl(stack, { seeds: [`http://127.0.0.1:${port}/`], retryBaseMs: 300 }, crawlId);
    const firstPage = requests.findIndex((r) => r.path !== '/robots.txt');
    assert.deepEqual(requests.slice(0, firstPage).map((r) => r.path), ['/robots.txt', '/robots.txt', '/robots.txt'], 'robots.txt asked again until it answered, before any page');
    assert.equal(requests.filter((r) => r.path === '/secret').length, 0);
    assert.equal(summary.saved, 2);
    assert.equal(summary.byReason.robots_disallowed, 1);
  });
});

describe('ban body markers (a soft block served as 200)', () => {
  let stack: TestStack;
  let server: http.Server;
  let blocks = 2;

  before(async () => {
    stack = await openStack();
    server = http.createServer((req, res) => {
      if (req.url === '/robots.txt') return void res.writeHead(404).end();
      const body = blocks-- > 0 ? '<title>Sorry</title><p>Access denied: unusual traffic</p>' : '<title>Real page</title>';
      res.writeHead(200, { 'content-type': 'text/html' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });

  after(async () => {
    await new Promise((resolve) => server?.close(resolve));
    await stack?.close();
  });

  it('retries a page that matches a marker instead of saving the block page, and saves the real one', async () => {
    const { port } = server.address() as { port: number };
    const crawlId = uniqueId('marker');
    const summary = await runCrawl(stack, { seeds: [`http://127.0.0.1:${port}/`], banBodyMarkers: ['Access denied'], retryBaseMs: 100 }, crawlId);
    assert.equal(summary.retried, 2);
    const { rows } = await stack.pool.query(`SELECT title FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.deepEqual(rows, [{ title: 'Real page' }]);
  });
});
