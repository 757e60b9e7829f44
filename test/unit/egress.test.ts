import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { afterProblem, afterSuccess, allRoutes, egressKey, healthy, maxRestMs, pickRoute, refusedRouteBans, restMs, routesForHost, type RouteHealth } from '../../src/egress';
import { parseCrawlSpec } from '../../src/spec';
import { EgressHealth, EgressRestingError } from '../../activities/egress-health';

const resting = (untilMs: number, strikes = 1): RouteHealth => ({ strikes, restingUntilMs: untilMs });

describe('egress routes: picking', () => {
  test('the route this worker used least, of those not resting; the first listed of equals', () => {
    const routes = [
      { key: 'a', health: healthy, sent: 3 },
      { key: 'b', health: healthy, sent: 1 },
      { key: 'c', health: healthy, sent: 1 },
    ];
    assert.deepEqual(pickRoute(routes, 0), { key: 'b' });
  });

  test('a resting route is skipped however little it was used; one whose rest is over is back', () => {
    const routes = [
      { key: 'a', health: resting(1000), sent: 0 },
      { key: 'b', health: healthy, sent: 9 },
    ];
    assert.deepEqual(pickRoute(routes, 999), { key: 'b' });
    assert.deepEqual(pickRoute(routes, 1000), { key: 'a' });
  });

  test('every route resting: wait for the first one back', () => {
    const routes = [
      { key: 'a', health: resting(5000), sent: 0 },
      { key: 'b', health: resting(3000), sent: 0 },
    ];
    assert.deepEqual(pickRoute(routes, 100), { waitUntilMs: 3000 });
  });

  test('N requests over N healthy routes go one through each (the pool shares the load)', () => {
    const sent = new Map([['a', 0], ['b', 0], ['c', 0]]);
    for (let i = 0; i < 30; i++) {
      const pick = pickRoute([...sent].map(([key, n]) => ({ key, health: healthy, sent: n })), 0);
      assert.ok('key' in pick);
      sent.set(pick.key, sent.get(pick.key)! + 1);
    }
    assert.deepEqual([...sent.values()], [10, 10, 10]);
  });
});

describe('egress routes: back-off', () => {
  test('rests double with each one in a row, from the base, capped at 30 minutes', () => {
    assert.deepEqual([1, 2, 3, 4].map((n) => restMs(n, 30_000)), [30_000, 60_000, 120_000, 240_000]);
    assert.equal(restMs(20, 30_000), maxRestMs);
  });

  test('a problem while resting keeps the rest it has (answers to requests sent before it began)', () => {
    const first = afterProblem(healthy, 1000, 500);
    assert.deepEqual(first, { strikes: 1, restingUntilMs: 1500 });
    assert.equal(afterProblem(first, 1200, 500), first);
    assert.deepEqual(afterProblem(first, 1500, 500), { strikes: 2, restingUntilMs: 2500 });
  });

  test('a good answer after a rest starts the back-off over; one during a rest changes nothing', () => {
    const rested = { strikes: 3, restingUntilMs: 2000 };
    assert.equal(afterSuccess(rested, 1999), rested);
    assert.deepEqual(afterSuccess(rested, 2000), healthy);
    assert.equal(afterSuccess(healthy, 0), healthy);
  });
});

describe('egress routes: whose ban a ban is', () => {
  const answers = (entries: Record<string, [bans: number, others: number]>) => new Map(Object.entries(entries).map(([key, [bans, others]]) => [key, { bans, others }]));

  test("a route that met only bans while another got pages is refused by the site: its bans are the route's, not the host's", () => {
    assert.equal(refusedRouteBans(answers({ a: [0, 12], b: [0, 11], blocked: [2, 0] })), 2);
  });

  test('a site pushing back on the host: every route meets bans after pages, or nothing but bans anywhere — all count for the host', () => {
    assert.equal(refusedRouteBans(answers({ a: [3, 12], b: [2, 11] })), 0);
    assert.equal(refusedRouteBans(answers({ a: [3, 0], b: [2, 0], blocked: [1, 0] })), 0);
    assert.equal(refusedRouteBans(answers({ a: [4, 9], blocked: [1, 0] })), 1);
    assert.equal(refusedRouteBans(new Map()), 0);
  });
});

describe('egress routes: the spec', () => {
  const spec = parseCrawlSpec({
    seeds: ['http://a.example/'],
    proxies: ['http://p1.example:3128', { url: 'https://p2.example:8443', username: 'u', password: { env: 'P2_PASSWORD' } }, { localAddress: '192.0.2.10' }],
    rateGroups: [
      { name: 'api', hosts: ['*.api.example'], rate: 2, proxies: ['http://p3.example:3128'] },
      { name: 'plain', hosts: ['b.example'], rate: 1 },
    ],
  });

  test("a host takes its rate group's routes when the group has some, else the crawl's", () => {
    assert.deepEqual(routesForHost(spec, 'v1.api.example').map((r) => r.key), ['http://p3.example:3128']);
    assert.deepEqual(routesForHost(spec, 'b.example:8080').map((r) => r.key), ['http://p1.example:3128', 'https://p2.example:8443', 'local:192.0.2.10']);
    assert.deepEqual(routesForHost({ proxies: [], rateGroups: [] }, 'a.example'), []);
  });

  test('names carry no credentials; status lists every route once', () => {
    assert.deepEqual(allRoutes(spec).map((r) => r.key), ['http://p1.example:3128', 'https://p2.example:8443', 'local:192.0.2.10', 'http://p3.example:3128']);
    assert.equal(egressKey('http://p1.example:3128/'), 'http://p1.example:3128');
    // Not a special scheme: no WHATWG origin, but a name all the same.
    assert.equal(egressKey({ url: 'socks5://s.example:1080', username: 'u' }), 'socks5://s.example:1080');
    assert.equal(egressKey('socks5h://s.example'), 'socks5h://s.example');
  });

  test('refused: credentials in the URL, a plain password, SOCKS before 5, a path, a bad address, a route listed twice', () => {
    const problems = (proxies: unknown[]) => {
      try {
        parseCrawlSpec({ seeds: ['http://a.example/'], proxies });
        return '';
      } catch (error) {
        return (error as Error).message;
      }
    };
    assert.match(problems(['http://user:pw@p.example:3128']), /credentials in a proxy URL would be stored/);
    assert.match(problems([{ url: 'http://p.example:3128', username: 'u', password: 'pw' }]), /password: must be a secret \{ env: NAME \}/);
    assert.match(problems([{ url: 'http://p.example:3128', password: { env: 'P' } }]), /a proxy password needs a username/);
    assert.match(problems(['socks4://p.example:1080']), /only SOCKS5 proxies are supported/);
    assert.match(problems(['socks5://u:p@p.example:1080']), /credentials in a proxy URL/);
    assert.equal(problems(['socks5://p.example:1080', 'socks5h://p.example:1081']), '');
    assert.match(problems(['http://p.example:3128/path']), /no path, query or fragment/);
    assert.match(problems([{ localAddress: '10.0.0.300' }]), /must be an IPv4 or IPv6 address/);
    assert.match(problems(['http://p.example:3128', 'http://p.example:3128/']), /http:\/\/p\.example:3128 is listed twice/);
  });
});

describe('egress health in one process (no database)', () => {
  test('ready() waits for the first route back when that is within the window, and gives up with its time when it is not', async () => {
    const health = new EgressHealth(null);
    await health.problem('a', { kind: 'ban', detail: 'HTTP 403' }, 300);
    const startedMs = Date.now();
    await health.ready(['a'], Date.now() + 1000);
    assert.ok(Date.now() - startedMs >= 250, `waited ${Date.now() - startedMs} ms of a 300 ms rest`);
    await health.problem('a', { kind: 'ban', detail: 'HTTP 403' }, 300);
    // The second rest in a row is twice as long, and the window ends before it.
    await assert.rejects(health.ready(['a'], Date.now() + 100), (error: unknown) => error instanceof EgressRestingError && error.untilMs - Date.now() > 500);
  });

  test('a halt ends the wait', async () => {
    const health = new EgressHealth(null);
    await health.problem('a', { kind: 'failure', detail: 'ECONNREFUSED' }, 10_000);
    const halt = new AbortController();
    setTimeout(() => halt.abort(new Error('steered')), 50);
    await assert.rejects(health.ready(['a'], Infinity, halt.signal), { name: 'AbortError' });
  });
});
