/**
 * Crawls through a pool of local proxies (test/fixtures/forward-proxy.ts,
 * socks5-proxy.ts) and from local source addresses, with 3 real worker
 * processes, checked from the site's side: the counting site records every
 * request that reaches it, whichever proxy carried it.
 *
 * What must hold: proxies never multiply a host's rate (the host sees at
 * most its rate however many proxies carry it), a proxy that answers 403 to
 * everything is rested fleet-wide while the others carry the crawl (and
 * `tcrawl status` says so), a host whose every route rests pauses and goes
 * on when one is back, a rate group's own routes carry its hosts alone, and
 * every page is saved exactly once.
 *
 * Arrival jitter is allowed as in politeness.test.ts (see its comment): a
 * window is checked 30 ms short of a second. A proxy adds a hop between the
 * worker's wire and the site, a few ms on loopback.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { queryProgress, startCrawl } from '../../src/client';
import { parseCrawlSpec, type CrawlSpecInput } from '../../src/spec';
import { startCountingSite, type CountingHost, type CountingSite } from '../fixtures/counting-site';
import { startForwardProxy, type ForwardProxy } from '../fixtures/forward-proxy';
import { startHostileSite, type HostileSite } from '../fixtures/hostile-site';
import { startSocks5Proxy, type Socks5Proxy } from '../fixtures/socks5-proxy';
import { maxStartsInWindow, meanRate, minGapMs } from '../helpers/rate-stats';
import { localSiteDefaults, openStack, uniqueId, type TestStack } from '../helpers/stack';
import { kill, runTcrawl, spawnWorkers, stderrTail, waitForPollers, workerEnv } from '../helpers/worker-processes';

const jitterMs = 30;
const socksLogin = { username: 'crawler', password: 'socks-s3cret' };
const maxPerSecond = (starts: number[]) => maxStartsInWindow(starts, 1000 - jitterMs);

describe('crawling through a proxy pool with a fleet of 3 worker processes', () => {
  let stack: TestStack;
  const taskQueue = uniqueId('tq-proxies');
  let fleet: ChildProcess[] = [];
  const sites: Array<CountingSite | HostileSite> = [];
  const proxies: Array<ForwardProxy | Socks5Proxy> = [];

  before(async () => {
    stack = await openStack();
    // The SOCKS5 proxy's password, as a fleet would have it: in every worker's environment.
    fleet = spawnWorkers(stack, taskQueue, 3, { env: { TCRAWL_TEST_SOCKS_PASSWORD: socksLogin.password } });
    await waitForPollers(stack, taskQueue, fleet);
  });

  after(async () => {
    await Promise.all(fleet.map(kill));
    await Promise.all([...sites, ...proxies].map((s) => s.close()));
    await stack?.close();
  });

  async function pool(modes: Array<'forward' | 'forbid'>): Promise<ForwardProxy[]> {
    const started = await Promise.all(modes.map((mode) => startForwardProxy({ mode })));
    proxies.push(...started);
    return started;
  }

  async function crawl(t: TestContext, host: CountingHost, spec: Partial<CrawlSpecInput>, whileRunning?: (crawlId: string) => Promise<void>): Promise<string> {
    const crawlId = uniqueId('proxies');
    const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [host.pageUrl(0)], ...spec }));
    const watching = whileRunning?.(crawlId);
    const timeout = setTimeout(() => void handle.terminate('test over').catch(() => undefined), 90_000);
    try {
      await handle.result();
      await watching;
    } catch (error) {
      const logs = fleet.map((w) => `--- worker ${w.pid} stderr (tail):\n${stderrTail(w).slice(-1500)}`).join('\n');
      throw new Error(`${(error as Error).message}\n${logs}`, { cause: error });
    } finally {
      clearTimeout(timeout);
      t.diagnostic(`${host.host}: ${host.starts.length} requests, max ${maxStartsInWindow(host.starts)} in any 1 s, mean ${meanRate(host.starts).toFixed(2)}/s, min gap ${minGapMs(host.starts).toFixed(1)} ms`);
    }
    return crawlId;
  }

  async function assertAllSavedOnce(crawlId: string, host: CountingHost, pages: number): Promise<void> {
    const { rows } = await stack.pool.query<{ url: string }>(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.deepEqual(rows.map((r) => r.url).sort(), Array.from({ length: pages }, (_, p) => host.pageUrl(p)).sort(), 'every page saved, once');
    const { rows: unfinished } = await stack.pool.query(`SELECT url, state, reason FROM frontier WHERE crawl_id = $1 AND state <> 'done'`, [crawlId]);
    assert.deepEqual(unfinished, [], 'no URL failed, was skipped or is left queued');
  }

  it('3 proxies never multiply the rate: the host sees at most 5 starts a second, and each proxy carries a share', async (t) => {
    const pages = 60;
    const { hosts: [host] } = await startCountingSite({ hosts: 1, pagesPerHost: pages, latencyMs: 10 }).then((s) => (sites.push(s), s));
    const carriers = await pool(['forward', 'forward', 'forward']);
    const crawlId = await crawl(t, host, { rate: 5, concurrency: 4, batchSize: 5, proxies: carriers.map((p) => p.url) });
    t.diagnostic(`carried: ${carriers.map((p) => p.forwarded).join(', ')} (of ${host.starts.length} the site saw)`);
    assert.ok(maxPerSecond(host.starts) <= 5, `${maxPerSecond(host.starts)} starts within ${1000 - jitterMs} ms, over 5/s`);
    assert.equal(carriers.reduce((n, p) => n + p.forwarded, 0), host.starts.length, 'every request the site saw came through a proxy');
    for (const p of carriers) assert.ok(p.forwarded >= 5, `${p.url} carried ${p.forwarded}: each proxy takes a share`);
    await assertAllSavedOnce(crawlId, host, pages);
  });

  it('one of 3 proxies answers 403 to everything: it is rested (status shows it), the other two carry the crawl, every page saved once, the rate holds', async (t) => {
    const pages = 40;
    const { hosts: [host] } = await startCountingSite({ hosts: 1, pagesPerHost: pages, latencyMs: 10 }).then((s) => (sites.push(s), s));
    const [banned, ...good] = await pool(['forbid', 'forward', 'forward']);
    const crawlId = await crawl(t, host, { rate: 4, concurrency: 2, batchSize: 5, proxies: [banned.url, ...good.map((p) => p.url)], proxyRestMs: 120_000 });
    t.diagnostic(`received: banned ${banned.received}, good ${good.map((p) => p.received).join(', ')}`);
    // Each worker may send through it until it reads the rest another wrote (synced each second): a few bans, not one per page.
    assert.ok(banned.received >= 1 && banned.received <= 6, `the 403 proxy got ${banned.received} requests`);
    assert.equal(banned.forwarded, 0);
    assert.equal(good.reduce((n, p) => n + p.forwarded, 0), host.starts.length, 'the site saw only what the good proxies carried');
    // A 403 through the banned proxy is no answer about robots.txt (which would allow everything): it was asked again, of the site.
    assert.ok(host.paths.includes('/robots.txt'), 'robots.txt reached the site');
    // The bans never reached the site, but each counted for the host's back-off: the rate only went down.
    assert.ok(maxPerSecond(host.starts) <= 4, `${maxPerSecond(host.starts)} starts within ${1000 - jitterMs} ms, over 4/s`);
    await assertAllSavedOnce(crawlId, host, pages);

    const status = await runTcrawl(['status', crawlId, '--json'], workerEnv(stack, taskQueue));
    assert.equal(status.code, 0, status.stderr);
    const { egress } = JSON.parse(status.stdout) as { egress: Array<{ egress: string; state: string; bans: number; requests: number; restingUntil: string | null }> };
    t.diagnostic(JSON.stringify(egress));
    assert.deepEqual(egress.map((r) => r.egress), [banned.url, ...good.map((p) => p.url)]);
    assert.equal(egress[0].state, 'resting');
    assert.equal(egress[0].bans, banned.received);
    assert.ok(Date.parse(egress[0].restingUntil!) > Date.now(), 'resting until a time to come');
    for (const r of egress.slice(1)) assert.deepEqual([r.state, r.bans], ['ok', 0]);
    assert.equal(egress.slice(1).reduce((n, r) => n + r.requests, 0), host.starts.length, 'requests counted per proxy add up to what the site saw');

    const table = await runTcrawl(['status', crawlId], workerEnv(stack, taskQueue));
    assert.match(table.stdout, new RegExp(`${banned.url.replace(/[.:/]/g, '\\$&')}\\s+resting\\s+${banned.received}\\s+${banned.received}\\s+0\\s+\\d{4}-`));
  });

  it('every route of the host resting past the window: the host pauses (proxies resting), goes on when one is back, and no URL fails', async (t) => {
    const pages = 15;
    const { hosts: [host] } = await startCountingSite({ hosts: 1, pagesPerHost: pages, latencyMs: 10 }).then((s) => (sites.push(s), s));
    const pool2 = await pool(['forbid', 'forbid']);
    // A rest well past a batch's window (20 s from its grant, which may come a few seconds after the first ban):
    // the URLs go back to the queue and the host waits, not the batch.
    const restMs = 30_000;
    const reasons = new Set<string>();
    let fixedAtMs = 0;
    const crawlId = await crawl(t, host, { rate: 5, concurrency: 2, batchSize: 5, obeyRobots: false, proxies: pool2.map((p) => p.url), proxyRestMs: restMs }, async (id) => {
      for (;;) {
        const progress = await queryProgress(stack.client, id).catch(() => null);
        if (progress?.phase === 'finished') return;
        for (const h of progress?.hostStates ?? []) if (h.reason) reasons.add(h.reason);
        // Both have refused once (so both rest): from now on they carry requests, once back.
        if (fixedAtMs === 0 && pool2.every((p) => p.received > 0)) {
          for (const p of pool2) p.mode = 'forward';
          fixedAtMs = Date.now();
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    });
    t.diagnostic(`reasons seen: ${[...reasons].join(', ')}; refused ${pool2.map((p) => p.received - p.forwarded).join(', ')}; first page at the site ${((host.starts[0] - fixedAtMs) / 1000).toFixed(1)} s after both refused`);
    assert.ok(reasons.has('proxies resting'), `status said ${[...reasons].join(', ')}`);
    assert.ok(host.starts[0] - fixedAtMs >= restMs - 2000, 'nothing reached the site before a route was back');
    await assertAllSavedOnce(crawlId, host, pages);
  });

  it('local source addresses: the site sees the requests leave from 127.0.0.2 and 127.0.0.3, each a share', async () => {
    const site = await startHostileSite({ pages: 3, itemsPerPage: 6, budget: { requests: 100_000 }, latencyMs: 5 });
    sites.push(site);
    const crawlId = uniqueId('proxies-local');
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/list?page=1')], rate: 20, concurrency: 2, proxies: [{ localAddress: '127.0.0.2' }, { localAddress: '127.0.0.3' }] });
    await (await startCrawl(stack.client, taskQueue, crawlId, spec)).result();
    const remotes = new Map<string, number>();
    for (const r of site.requests) remotes.set(r.remote, (remotes.get(r.remote) ?? 0) + 1);
    assert.deepEqual([...remotes.keys()].sort(), ['127.0.0.2', '127.0.0.3']);
    for (const [remote, n] of remotes) assert.ok(n >= 5, `${remote} sent ${n} of ${site.requests.length}`);
    const { rows } = await stack.pool.query<{ url: string }>(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.deepEqual(rows.map((r) => r.url).sort(), site.pagePaths.map((p) => site.url(p)).sort());
  });

  it("a rate group's own proxies carry its hosts alone; the crawl's carry the rest", async () => {
    const pages = 8;
    const { hosts: [grouped, other] } = await startCountingSite({ hosts: 2, pagesPerHost: pages, latencyMs: 5 }).then((s) => (sites.push(s), s));
    const [own, crawls] = await pool(['forward', 'forward']);
    const crawlId = uniqueId('proxies-group');
    const spec = parseCrawlSpec({
      ...localSiteDefaults,
      seeds: [grouped.pageUrl(0), other.pageUrl(0)],
      rate: 10,
      proxies: [crawls.url],
      rateGroups: [{ name: 'own', hosts: [grouped.host], rate: 10, proxies: [own.url] }],
    });
    await (await startCrawl(stack.client, taskQueue, crawlId, spec)).result();
    assert.ok(own.targets.length >= pages && own.targets.every((target) => target.includes(grouped.origin)), own.targets.join('\n'));
    assert.ok(crawls.targets.length >= pages && crawls.targets.every((target) => target.includes(other.origin)), crawls.targets.join('\n'));
    const { rows } = await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.equal(rows[0].n, 2 * pages);
  });

  it('SOCKS5: a crawl through two SOCKS5 proxies, one with a login from the workers\' environment — the rate holds, each carries a share, every page once', async (t) => {
    const pages = 30;
    const { hosts: [host] } = await startCountingSite({ hosts: 1, pagesPerHost: pages, latencyMs: 10 }).then((s) => (sites.push(s), s));
    const [authed, open] = await Promise.all([startSocks5Proxy({ auth: socksLogin }), startSocks5Proxy()]);
    proxies.push(authed, open);
    const crawlId = await crawl(t, host, {
      rate: 5,
      concurrency: 2,
      batchSize: 5,
      proxies: [{ url: authed.url, username: socksLogin.username, password: { env: 'TCRAWL_TEST_SOCKS_PASSWORD' } }, open.url.replace('socks5:', 'socks5h:')],
    });
    t.diagnostic(`SOCKS5 connections: ${authed.forwarded} (login), ${open.forwarded}`);
    assert.ok(maxPerSecond(host.starts) <= 5, `${maxPerSecond(host.starts)} starts within ${1000 - jitterMs} ms, over 5/s`);
    assert.ok(authed.forwarded >= 1 && open.forwarded >= 1, 'each carried a share');
    assert.ok(authed.usernames.length >= 1 && authed.usernames.every((u) => u === socksLogin.username));
    await assertAllSavedOnce(crawlId, host, pages);
    const status = await runTcrawl(['status', crawlId, '--json'], workerEnv(stack, taskQueue));
    const { egress } = JSON.parse(status.stdout) as { egress: Array<{ egress: string; requests: number; bans: number; failures: number }> };
    assert.deepEqual(egress.map((r) => [r.egress, r.bans, r.failures]), [[authed.url, 0, 0], [open.url.replace('socks5:', 'socks5h:'), 0, 0]]);
    assert.equal(egress.reduce((n, r) => n + r.requests, 0), host.starts.length, 'every request counted against a route');
  });
});
