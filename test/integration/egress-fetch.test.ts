/**
 * Fetching through egress routes, one request at a time, against local
 * proxies (test/fixtures/forward-proxy.ts) and a local site: absolute-form
 * and CONNECT, credentials from the environment, the private-address guard
 * through a proxy, a ban or a dead proxy resting the route in the shared
 * table while the others carry on, and when a request is on the wire.
 */
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Pool } from 'pg';
import { EgressHealth } from '../../activities/egress-health';
import { fetchOptionsFor, fetchPage, type FetchOutcome } from '../../activities/fetch-page';
import { RequestGate } from '../../activities/request-gate';
import type { CrawlSettings } from '../../src/crawl-types';
import { createPool, migrate } from '../../src/infra/database';
import { parseCrawlSpec, type CrawlSpecInput } from '../../src/spec';
import { egressStatus } from '../../src/cli/egress-status';
import { selfSignedCertificate } from '../helpers/tls';
import { startForwardProxy, type ForwardProxy } from '../fixtures/forward-proxy';
import { startSocks5Proxy, type Socks5Proxy } from '../fixtures/socks5-proxy';

const HTML = { 'content-type': 'text/html; charset=utf-8' };

let site: { url: string; hits: string[]; close(): Promise<void> };
let pool: Pool;
const proxies: Array<ForwardProxy | Socks5Proxy> = [];

async function proxy(opts: Parameters<typeof startForwardProxy>[0] = {}): Promise<ForwardProxy> {
  const started = await startForwardProxy(opts);
  proxies.push(started);
  return started;
}

async function socks(opts: Parameters<typeof startSocks5Proxy>[0] = {}): Promise<Socks5Proxy> {
  const started = await startSocks5Proxy(opts);
  proxies.push(started);
  return started;
}

function settingsOf(input: Partial<CrawlSpecInput>): CrawlSettings {
  const { seeds: _seeds, ...settings } = parseCrawlSpec({ seeds: ['http://127.0.0.1/'], allowPrivate: true, ...input });
  return settings;
}

function fetchThrough(url: string, settings: CrawlSettings, health: EgressHealth, extra: Parameters<typeof fetchPage>[1] extends infer O ? Partial<O> : never = {}): Promise<FetchOutcome> {
  return fetchPage(url, { ...fetchOptionsFor(settings, health), acceptsType: () => true, ...extra });
}

before(async () => {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url} host=${req.headers.host}`);
    res.writeHead(200, HTML).end('<title>ok</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  site = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, close: () => new Promise((resolve) => server.close(() => resolve())) };
  pool = createPool(process.env.DATABASE_URL ?? '', 4);
  await migrate(pool);
});

after(async () => {
  await Promise.all(proxies.map((p) => p.close()));
  await site.close();
  await pool.end();
});

describe('fetching through egress routes', () => {
  test('an http:// URL goes to the proxy in absolute form, and the site gets the request with its own Host', async () => {
    const p = await proxy();
    const outcome = await fetchThrough(`${site.url}/a?x=1`, settingsOf({ proxies: [p.url] }), new EgressHealth(null));
    assert.equal(outcome.kind, 'body');
    assert.equal(outcome.kind === 'body' && outcome.egress, p.url);
    assert.deepEqual(p.targets, [`GET ${site.url}/a?x=1`]);
    assert.ok(site.hits.includes(`GET /a?x=1 host=${new URL(site.url).host}`), site.hits.join('\n'));
  });

  test('an https:// URL goes through a CONNECT tunnel: TLS is with the site (whose self-signed certificate is refused)', async () => {
    const p = await proxy();
    const server = https.createServer(selfSignedCertificate(), (_req, res) => res.writeHead(200, HTML).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const outcome = await fetchThrough(`https://127.0.0.1:${port}/`, settingsOf({ proxies: [p.url] }), new EgressHealth(null));
      assert.equal(outcome.kind, 'failed');
      assert.equal(outcome.kind === 'failed' && outcome.reason, 'tls');
      assert.match(outcome.kind === 'failed' ? outcome.message : '', /self[- ]signed/i);
      assert.deepEqual(p.targets, [`CONNECT 127.0.0.1:${port}`]);
    } finally {
      server.close();
    }
  });

  test('a proxy refusing the tunnel (403 to CONNECT) fails the URL `egress` (transient) and rests the route', async () => {
    const p = await proxy({ mode: 'forbid' });
    const health = new EgressHealth(null);
    const outcome = await fetchThrough('https://127.0.0.1:9/', settingsOf({ proxies: [p.url] }), health);
    assert.equal(outcome.kind === 'failed' && outcome.reason, 'egress');
    assert.equal(outcome.kind === 'failed' && outcome.transient, true);
    assert.match(outcome.kind === 'failed' ? outcome.message : '', new RegExp(`Through ${p.url}`));
    await waitFor(() => 'waitUntilMs' in health.pick([p.url]));
  });

  test('credentials come from the environment as Proxy-Authorization; the site never sees them; a missing one fails `secret_missing`', async () => {
    const auth = `Basic ${Buffer.from('crawler:s3cret').toString('base64')}`;
    const p = await proxy({ auth });
    const settings = settingsOf({ proxies: [{ url: p.url, username: 'crawler', password: { env: 'TCRAWL_TEST_PROXY_PASSWORD' } }] });
    delete process.env.TCRAWL_TEST_PROXY_PASSWORD;
    const missing = await fetchThrough(`${site.url}/missing`, settings, new EgressHealth(null));
    assert.equal(missing.kind === 'failed' && missing.reason, 'secret_missing');
    process.env.TCRAWL_TEST_PROXY_PASSWORD = 's3cret';
    try {
      const settingsAgain = settingsOf({ proxies: [{ url: p.url, username: 'crawler', password: { env: 'TCRAWL_TEST_PROXY_PASSWORD' } }], connectTimeoutMs: 9_999 });
      const outcome = await fetchThrough(`${site.url}/authed`, settingsAgain, new EgressHealth(null));
      assert.equal(outcome.kind, 'body');
      assert.deepEqual(p.authorizations, [auth]);
      assert.equal(JSON.stringify(settingsAgain).includes('s3cret'), false, 'the settings hold the variable name only');
    } finally {
      delete process.env.TCRAWL_TEST_PROXY_PASSWORD;
    }
  });

  test('a proxy on loopback is refused without allowPrivate, like any private address; so is a target that resolves only to one', async () => {
    const p = await proxy();
    // A public literal: no DNS needed. The proxy's own address is what is refused.
    const outcome = await fetchThrough('http://93.184.215.14/', settingsOf({ proxies: [p.url], allowPrivate: false }), new EgressHealth(null));
    assert.equal(outcome.kind === 'failed' && outcome.reason, 'private_address');
    assert.match(outcome.kind === 'failed' ? outcome.message : '', /127\.0\.0\.1 is a loopback address/);
    // The proxy would resolve `localhost` to its own loopback: refused before it is asked.
    const target = await fetchThrough('http://localhost/', settingsOf({ proxies: ['http://93.184.215.14:3128'], allowPrivate: false }), new EgressHealth(null));
    assert.equal(target.kind === 'failed' && target.reason, 'private_address');
    assert.match(target.kind === 'failed' ? target.message : '', /localhost resolves to/);
    assert.equal(p.received, 0);
  });

  test('a ban through one route rests it in the shared table, and the next request takes another', async () => {
    const [banned, good] = [await proxy({ mode: 'forbid' }), await proxy()];
    const health = new EgressHealth(pool);
    const settings = settingsOf({ proxies: [banned.url, good.url], proxyRestMs: 60_000 });
    const first = await fetchThrough(`${site.url}/b1`, settings, health);
    assert.equal(first.kind === 'failed' && first.status, 403);
    await waitFor(async () => (await pool.query(`SELECT 1 FROM egress_health WHERE egress = $1 AND resting_until > now()`, [banned.url])).rowCount === 1);
    for (const path of ['/b2', '/b3', '/b4']) assert.equal((await fetchThrough(`${site.url}${path}`, settings, health)).kind, 'body');
    assert.equal(banned.received, 1);
    assert.equal(good.received, 3);
    // Another worker's view: a fresh health reads the rest from the table.
    const other = new EgressHealth(pool);
    other.pick([banned.url, good.url]);
    await other.sync();
    assert.ok('waitUntilMs' in other.pick([banned.url]), 'the rest is shared');
    await health.close();
    await pool.query(`INSERT INTO crawls (crawl_id, spec) VALUES ($1, $2)`, [`egress-${good.url}`, JSON.stringify(settings)]);
    const status = await egressStatus(pool, `egress-${good.url}`);
    assert.deepEqual(
      status.map((r) => [r.egress, r.state, r.bans, r.requests]),
      [
        [banned.url, 'resting', 1, 1],
        [good.url, 'ok', 0, 3],
      ],
    );
  });

  test('a dead proxy (connections dropped) is rested and the request after it goes through another', async () => {
    const [dead, good] = [await proxy({ mode: 'block' }), await proxy()];
    const health = new EgressHealth(null);
    const settings = settingsOf({ proxies: [dead.url, good.url] });
    const first = await fetchThrough(`${site.url}/d1`, settings, health);
    assert.equal(first.kind === 'failed' && first.reason, 'connect');
    assert.equal((await fetchThrough(`${site.url}/d2`, settings, health)).kind, 'body');
    assert.equal(good.received, 1);
  });

  test('with every route resting, a request waits for the first one back rather than failing', async () => {
    const p = await proxy({ mode: 'forbid' });
    const health = new EgressHealth(null);
    const settings = settingsOf({ proxies: [p.url], proxyRestMs: 400 });
    await fetchThrough(`${site.url}/w1`, settings, health);
    p.mode = 'forward';
    const startedMs = Date.now();
    const outcome = await fetchThrough(`${site.url}/w2`, settings, health);
    assert.equal(outcome.kind, 'body');
    const waitedMs = Date.now() - startedMs;
    assert.ok(waitedMs >= 300, `waited ${waitedMs} ms for the rest to end`);
  });

  test('the gate counts from when the request reached the proxy (absolute-form requests are watched too)', async () => {
    const p = await proxy();
    const settings = settingsOf({ proxies: [p.url] });
    const gate = new RequestGate(Date.now(), 10, (ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    const sent = await gate.pass();
    let toldMs: number | null | undefined;
    const outcome = await fetchThrough(`${site.url}/gate`, settings, new EgressHealth(null), {
      beforeRequest: async () => (wireStartMs: number | null) => {
        // The first call counts (fetchPage tells null afterwards, a no-op then).
        if (toldMs === undefined) toldMs = wireStartMs;
        sent(wireStartMs);
      },
    });
    assert.equal(outcome.kind, 'body');
    assert.equal(typeof toldMs, 'number', 'the wire start was seen (not null: never sent)');
  });
});

describe('fetching through SOCKS5 proxies', () => {
  test('http:// through socks5:// (and socks5h://): the proxy is asked to CONNECT to the name, which it resolves; the site gets the request', async () => {
    for (const scheme of ['socks5', 'socks5h']) {
      const p = await socks();
      const url = p.url.replace('socks5:', `${scheme}:`);
      const outcome = await fetchThrough(`http://localhost:${new URL(site.url).port}/s?x=1`, settingsOf({ proxies: [url] }), new EgressHealth(null));
      assert.equal(outcome.kind, 'body', JSON.stringify(outcome));
      assert.equal(outcome.kind === 'body' && outcome.egress, url);
      assert.deepEqual(p.targets, [`domain localhost:${new URL(site.url).port}`]);
    }
  });

  test('https:// through SOCKS5: TLS is with the site (whose self-signed certificate is refused)', async () => {
    const p = await socks();
    const server = https.createServer(selfSignedCertificate(), (_req, res) => res.writeHead(200, HTML).end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const outcome = await fetchThrough(`https://127.0.0.1:${port}/`, settingsOf({ proxies: [p.url] }), new EgressHealth(null));
      assert.equal(outcome.kind === 'failed' && outcome.reason, 'tls');
      assert.deepEqual(p.targets, [`ipv4 127.0.0.1:${port}`]);
    } finally {
      server.close();
    }
  });

  test('username/password (RFC 1929) from the environment; a wrong password fails the URL `egress` and rests the route', async () => {
    const p = await socks({ auth: { username: 'crawler', password: 's3cret' } });
    const entry = { url: p.url, username: 'crawler', password: { env: 'TCRAWL_TEST_SOCKS_PASSWORD' } };
    process.env.TCRAWL_TEST_SOCKS_PASSWORD = 's3cret';
    try {
      const outcome = await fetchThrough(`${site.url}/socks-authed`, settingsOf({ proxies: [entry] }), new EgressHealth(null));
      assert.equal(outcome.kind, 'body', JSON.stringify(outcome));
      process.env.TCRAWL_TEST_SOCKS_PASSWORD = 'wrong';
      const health = new EgressHealth(null);
      const refused = await fetchThrough(`${site.url}/socks-refused`, settingsOf({ proxies: [entry], connectTimeoutMs: 9_998 }), health);
      assert.equal(refused.kind === 'failed' && refused.reason, 'egress', JSON.stringify(refused));
      assert.match(refused.kind === 'failed' ? refused.message : '', new RegExp(`Through ${p.url}.*Authentication failed`));
      await waitFor(() => 'waitUntilMs' in health.pick([p.url]));
      assert.deepEqual(p.usernames, ['crawler', 'crawler']);
    } finally {
      delete process.env.TCRAWL_TEST_SOCKS_PASSWORD;
    }
  });

  // undici's agent does not notice a proxy closing the connection mid-handshake: it gives up after its own 5 s.
  test('a proxy refusing the CONNECT, and a dead one, rest the route; the next request takes another', async () => {
    const [refusing, dead, good] = [await socks({ mode: 'refuse' }), await socks({ mode: 'block' }), await socks()];
    const health = new EgressHealth(null);
    const settings = settingsOf({ proxies: [refusing.url, dead.url, good.url] });
    const first = await fetchThrough(`${site.url}/r1`, settings, health);
    assert.equal(first.kind === 'failed' && first.reason, 'egress', JSON.stringify(first));
    const second = await fetchThrough(`${site.url}/r2`, settings, health);
    assert.equal(second.kind === 'failed' && second.reason, 'egress', JSON.stringify(second));
    assert.match(second.kind === 'failed' ? second.message : '', new RegExp(`Through ${dead.url}`));
    assert.equal((await fetchThrough(`${site.url}/r3`, settings, health)).kind, 'body');
    assert.deepEqual([refusing.received, good.forwarded], [1, 1]);
  });

  test('the private-address guard: a SOCKS5 proxy on loopback needs allowPrivate; a target resolving only to loopback is refused before the proxy is asked', async () => {
    const p = await socks();
    const outcome = await fetchThrough('http://93.184.215.14/', settingsOf({ proxies: [p.url], allowPrivate: false }), new EgressHealth(null));
    assert.equal(outcome.kind === 'failed' && outcome.reason, 'private_address');
    const target = await fetchThrough('http://localhost/', settingsOf({ proxies: ['socks5://93.184.215.14:1080'], allowPrivate: false }), new EgressHealth(null));
    assert.equal(target.kind === 'failed' && target.reason, 'private_address');
    assert.equal(p.received, 0);
  });
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

