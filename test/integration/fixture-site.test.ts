import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { request } from 'undici';
import {
  DEFAULT_ROBOTS,
  FLAKY_FAILURES,
  HUGE_BYTES,
  fixtureExpectations,
  startFixtureSite,
  type FixtureSite,
} from '../fixtures/site';

async function get(site: FixtureSite, path: string) {
  const res = await request(site.url(path), { headers: { 'user-agent': 'fixture-test' } });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body };
}

async function withSite(fn: (site: FixtureSite) => Promise<void>, opts?: Parameters<typeof startFixtureSite>[0]) {
  const site = await startFixtureSite(opts);
  try {
    await fn(site);
  } finally {
    await site.close();
  }
}

test('origin is 127.0.0.1 on an ephemeral port and url() resolves paths', () =>
  withSite(async (site) => {
    assert.match(site.origin, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(site.url('/a'), `${site.origin}/a`);
  }));

test('/flaky answers 503 twice, then 200', () =>
  withSite(async (site) => {
    const statuses = [];
    for (let i = 0; i < FLAKY_FAILURES + 2; i++) statuses.push((await get(site, '/flaky')).status);
    assert.deepEqual(statuses, [503, 503, 200, 200]);
    assert.equal(site.requestCount('/flaky'), 4);
  }));

test('/throttled answers 429 with Retry-After: 1 once, then 200', () =>
  withSite(async (site) => {
    const first = await get(site, '/throttled');
    assert.equal(first.status, 429);
    assert.equal(first.headers['retry-after'], '1');
    assert.equal((await get(site, '/throttled')).status, 200);
  }));

test('redirect chain and redirect loop', () =>
  withSite(async (site) => {
    const r1 = await get(site, '/redirect-1');
    assert.equal(r1.status, 301);
    assert.equal(r1.headers.location, '/redirect-2');
    assert.equal((await get(site, '/redirect-2')).headers.location, '/landing');
    const landing = await get(site, '/landing');
    assert.equal(landing.status, 200);
    assert.match(landing.body, new RegExp(`<title>${fixtureExpectations.titles['/landing']}</title>`));
    assert.equal((await get(site, '/loop-a')).headers.location, '/loop-b');
    assert.equal((await get(site, '/loop-b')).headers.location, '/loop-a');
  }));

test('/huge streams 12 MiB of HTML with no content-length', () =>
  withSite(async (site) => {
    const res = await request(site.url('/huge'));
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], undefined);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    let bytes = 0;
    for await (const chunk of res.body) bytes += (chunk as Buffer).length;
    assert.equal(bytes, HUGE_BYTES);
  }));

test('/huge survives a client aborting midway', () =>
  withSite(async (site) => {
    const ac = new AbortController();
    const res = await request(site.url('/huge'), { signal: ac.signal });
    for await (const _ of res.body) {
      ac.abort();
      break;
    }
    assert.equal((await get(site, '/a')).status, 200);
  }));

test('robots.txt disallows /private/ by default, and can be overridden', async () => {
  await withSite(async (site) => {
    const robots = await get(site, '/robots.txt');
    assert.equal(robots.status, 200);
    assert.equal(robots.body, DEFAULT_ROBOTS);
    assert.equal(robots.body, 'User-agent: *\nDisallow: /private/\n');
  });
  await withSite(
    async (site) => assert.equal((await get(site, '/robots.txt')).body, 'User-agent: *\nDisallow: /\n'),
    { robots: 'User-agent: *\nDisallow: /\n' },
  );
});

test('status codes and content types of the other traps', () =>
  withSite(async (site) => {
    assert.equal((await get(site, '/missing')).status, 404);
    const pdf = await get(site, '/file.pdf');
    assert.equal(pdf.status, 200);
    assert.equal(pdf.headers['content-type'], 'application/pdf');
    assert.equal((await get(site, '/private/secret')).status, 200);
  }));

test('home links every trap; products list three items, one without a price', () =>
  withSite(async (site) => {
    const home = (await get(site, '/')).body;
    for (const href of ['b', '/a#section', `${site.origin}/a`, './b?x=1', 'mailto:x@y.z', 'javascript:void(0)',
      'http://offsite.invalid/page', `http://localhost:${new URL(site.origin).port}/other-host`]) {
      assert.ok(home.includes(`href="${href}"`), href);
    }
    const products = (await get(site, '/products')).body;
    assert.equal(products.match(/class="product"/g)?.length, 3);
    assert.equal(products.match(/class="price"/g)?.length, 2);
    assert.match((await get(site, '/deep/10')).body, /<title>Deep 10<\/title>/);
    assert.doesNotMatch((await get(site, '/deep/10')).body, /\/deep\/11/);
  }));

test('every saved path answers 200 HTML with its expected title', () =>
  withSite(async (site) => {
    for (const path of fixtureExpectations.savedPaths) {
      if (path in fixtureExpectations.transientRequests || path in fixtureExpectations.redirects) continue;
      const res = await get(site, path);
      assert.equal(res.status, 200, path);
      assert.ok(res.body.includes(`<title>${fixtureExpectations.titles[path]}</title>`), path);
    }
  }));

test('requests are recorded in order with user agent', () =>
  withSite(async (site) => {
    await get(site, '/a');
    await get(site, '/b?x=1');
    assert.deepEqual(site.requests.map((r) => r.path), ['/a', '/b?x=1']);
    assert.equal(site.requests[0]!.userAgent, 'fixture-test');
    assert.ok(site.requests[0]!.at <= site.requests[1]!.at);
    assert.equal(site.requestCount('/b'), 0);
  }));

test('slow mode delays HTML and extraPages form a graph reachable from /', () =>
  withSite(
    async (site) => {
      const t0 = performance.now();
      await get(site, '/a');
      assert.ok(performance.now() - t0 >= 45);
      assert.ok((await get(site, '/')).body.includes('href="/gen/0"'));
      assert.equal((await get(site, '/gen/99')).status, 200);
      const exp = site.expectations;
      for (let i = 0; i < 100; i++) assert.ok(exp.depths[`/gen/${i}`] !== undefined, `/gen/${i} reachable`);
      assert.equal(exp.savedPaths.length, fixtureExpectations.savedPaths.length + 100);
    },
    { delayMs: 50, extraPages: 100 },
  ));
