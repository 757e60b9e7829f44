/**
 * Politeness that holds across a fleet: real `tcrawl worker` processes crawl
 * the counting site, and every limit is checked from the *site's* side — the
 * request start times each host recorded — not from what the crawler reports.
 *
 * What counts as a request start: every request a host received, robots.txt
 * included. The site cannot tell a robots.txt fetch from a page fetch, the
 * scheduler counts it as a start too, and a limit that exempted it would let
 * the first second of every host burst one over.
 *
 * Timing allowance: times are taken where requests *arrive*, so a scheduler
 * that starts requests exactly 1/rate apart is seen with jitter either way:
 * a worker's event loop busy parsing another page between passing its gate
 * and writing the request, a robots.txt lookup in Postgres before the fetch,
 * a new connection's handshake — 10–25 ms on a loaded two-core machine.
 * Windows and gaps are therefore checked `jitterMs` short of their nominal
 * length. That cannot hide a real violation: one request over a limit of R/s
 * puts R + 1 starts within 1000 − 1000/R ms (a grant overlapping the previous
 * one, a burst to catch up, a robots.txt fetch not counted), ≥ 100 ms short
 * at every rate used here. The exact figures, and the tightest bunch of
 * starts, are printed as test diagnostics either way.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { WorkflowHandle } from '@temporalio/client';
import { startCrawl } from '../../src/client';
import { isBatchActivity, type CrawlSummary } from '../../src/crawl-types';
import { parseCrawlSpec, type CrawlSpecInput } from '../../src/spec';
import type { crawlWorkflow } from '../../workflows';
import { pageLinks, startCountingSite, type CountingHost, type CountingSite, type CountingSiteOptions } from '../fixtures/counting-site';
import { maxStartsInWindow, meanRate, minGapMs } from '../helpers/rate-stats';
import { localSiteDefaults, openStack, pathOf, uniqueId, type TestStack } from '../helpers/stack';
import { kill, runTcrawl, spawnWorkers, stderrTail, waitFor, waitForPollers, workerEnv } from '../helpers/worker-processes';

/** Arrival-time jitter allowed on each side of a measured window or gap (see the file comment). */
const jitterMs = 30;
/** Workers in the fleet. */
const fleetSize = 3;

/** Most starts in any window of one second, allowing for arrival jitter. */
const maxPerSecond = (starts: number[]) => maxStartsInWindow(starts, 1000 - jitterMs);
const pageStarts = (h: CountingHost) => h.starts.filter((_, k) => h.paths[k] !== '/robots.txt');

interface Arrival {
  at: number;
  host: string;
  path: string;
}

/** Every request to these hosts, in arrival order; `keep` filters by arrival time. */
function arrivals(hosts: CountingHost[], keep: (at: number) => boolean = () => true): Arrival[] {
  return hosts
    .flatMap((h) => h.starts.map((at, k) => ({ at, host: h.host, path: h.paths[k] })))
    .filter((r) => keep(r.at))
    .sort((x, y) => x.at - y.at);
}

/** Where `count` consecutive arrivals came closest together: the index of the first. */
function tightest(requests: Arrival[], count: number): { index: number; spanMs: number } {
  let best = { index: -1, spanMs: Infinity };
  for (let i = 0; i + count - 1 < requests.length; i++) {
    const spanMs = requests[i + count - 1].at - requests[i].at;
    if (spanMs < best.spanMs) best = { index: i, spanMs };
  }
  return best;
}

/**
 * At most `limit` starts in any second (less `jitterMs`). The tightest
 * `limit + 1` starts go to the diagnostics either way, listed one by one when
 * they fit in a second, so a failure shows which requests bunched.
 */
function assertAtMostPerSecond(t: TestContext, what: string, requests: Arrival[], limit: number): void {
  const { index, spanMs } = tightest(requests, limit + 1);
  t.diagnostic(`${what}: ${limit + 1} starts within ${spanMs.toFixed(1)} ms at the tightest (a limit of ${limit}/s needs ≥ 1000 ms)`);
  if (spanMs < 1000) {
    const bunch = requests.slice(index, index + limit + 1);
    t.diagnostic(`  ${bunch.map((r) => `+${(r.at - bunch[0].at).toFixed(1)} ms ${r.host}${r.path}`).join(', ')}`);
  }
  const starts = requests.map((r) => r.at);
  assert.ok(maxPerSecond(starts) <= limit, `${what}: ${limit + 1} starts within ${spanMs.toFixed(1)} ms, over ${limit}/s`);
}

function describeHost(h: CountingHost): string {
  const statuses: Record<number, number> = {};
  for (const s of h.statuses) statuses[s] = (statuses[s] ?? 0) + 1;
  return (
    `${h.host}: ${h.starts.length} requests, max ${maxStartsInWindow(h.starts)} in any 1 s (${maxPerSecond(h.starts)} in ${1000 - jitterMs} ms), ` +
    `mean ${meanRate(h.starts).toFixed(2)}/s, min gap ${minGapMs(h.starts).toFixed(1)} ms ` +
    `(pages only: ${minGapMs(pageStarts(h)).toFixed(1)} ms), statuses ${JSON.stringify(statuses)}`
  );
}

describe('politeness across a fleet of worker processes', () => {
  let stack: TestStack;
  const taskQueue = uniqueId('tq-polite');
  let fleet: ChildProcess[] = [];
  const sites: CountingSite[] = [];

  before(async () => {
    stack = await openStack();
    fleet = spawnWorkers(stack, taskQueue, fleetSize);
    await waitForPollers(stack, taskQueue, fleet);
  });

  after(async () => {
    await Promise.all(fleet.map(kill));
    await Promise.all(sites.map((s) => s.close()));
    await stack?.close();
  });

  async function site(opts: CountingSiteOptions): Promise<CountingSite> {
    const started = await startCountingSite(opts);
    sites.push(started);
    return started;
  }

  interface Crawl {
    crawlId: string;
    handle: WorkflowHandle<typeof crawlWorkflow>;
    /** The crawl's result; the workflow is terminated if it does not finish in time, so it cannot disturb the next test. */
    finished(timeoutMs?: number): Promise<CrawlSummary>;
  }

  /** Starts a crawl of `hosts`; `finished()` prints what each host saw, whether or not the crawl finished. */
  async function crawl(t: TestContext, hosts: CountingHost[], spec: Partial<CrawlSpecInput> & { seeds: string[] }): Promise<Crawl> {
    const crawlId = uniqueId('polite');
    const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, ...spec }));
    return {
      crawlId,
      handle,
      async finished(timeoutMs = 60_000) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`crawl ${crawlId} did not finish within ${timeoutMs} ms`)), timeoutMs);
        });
        try {
          return await Promise.race([handle.result(), timeout]);
        } catch (error) {
          await handle.terminate('test over').catch(() => {});
          const logs = fleet.map((w) => `--- worker ${w.pid} stderr (tail):\n${stderrTail(w).slice(-1500)}`).join('\n');
          throw new Error(`${(error as Error).message}\n${logs}`, { cause: error });
        } finally {
          clearTimeout(timer);
          report(t, hosts);
        }
      },
    };
  }

  /** Every page of every host saved exactly once, nothing failed or left queued. */
  async function assertAllSaved(crawlId: string, hosts: CountingHost[], pagesPerHost: number): Promise<void> {
    const { rows } = await stack.pool.query<{ url: string }>(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    const expected = hosts.flatMap((h) => Array.from({ length: pagesPerHost }, (_, p) => h.pageUrl(p))).sort();
    assert.deepEqual(rows.map((r) => r.url).sort(), expected);
    const { rows: unfinished } = await stack.pool.query(
      `SELECT url, state, reason FROM frontier WHERE crawl_id = $1 AND state <> 'done' ORDER BY url`,
      [crawlId],
    );
    assert.deepEqual(unfinished, [], 'no URL failed, was skipped or is left queued');
  }

  function report(t: TestContext, hosts: CountingHost[]): void {
    for (const h of hosts) t.diagnostic(describeHost(h));
  }

  it('(a) rate 5 on 2 hosts with 3 workers: never more than 5 starts a second per host, and close to 5 while work is queued', async (t) => {
    const pagesPerHost = 80;
    const { hosts } = await site({ hosts: 2, pagesPerHost, latencyMs: 10 });
    const run = await crawl(t, hosts, { seeds: hosts.map((h) => h.pageUrl(0)), rate: 5, concurrency: 2, batchSize: 5 });
    await run.finished();
    for (const h of hosts) {
      assertAtMostPerSecond(t, h.host, arrivals([h]), 5);
      // batchSize 5 makes each window one second long, so windows move between the 3 workers; each hand-over costs a round trip.
      assert.ok(meanRate(h.starts) >= 0.9 * 5, `${h.host}: mean rate ${meanRate(h.starts).toFixed(2)}/s while work was queued`);
    }
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });

  it('(b) rate 5 on 2 hosts holds while one of 3 workers is SIGKILLed mid-crawl', async (t) => {
    const pagesPerHost = 80;
    const { hosts } = await site({ hosts: 2, pagesPerHost, latencyMs: 10 });
    const run = await crawl(t, hosts, { seeds: hosts.map((h) => h.pageUrl(0)), rate: 5, concurrency: 2, batchSize: 5 });
    await waitFor('20 page requests', () => hosts.reduce((n, h) => n + h.starts.length, 0) >= 20, 60_000);
    const victim = await workerRunningABatch(run.handle);
    const killedAtMs = Date.now();
    await kill(victim);
    t.diagnostic(`killed worker ${victim.pid} (running a batch) at ${new Date(killedAtMs).toISOString()}`);
    fleet = fleet.filter((w) => w !== victim);
    const replacement = spawnWorkers(stack, taskQueue, 1);
    fleet.push(...replacement);

    await run.finished(90_000);
    for (const h of hosts) {
      assertAtMostPerSecond(t, h.host, arrivals([h]), 5);
      // The dead worker's batch is only retried after its heartbeat times out: that stall is recovery, not pacing.
      const { rate, stalledMs } = pacedRate(h.starts, 1000);
      t.diagnostic(`${h.host}: ${rate.toFixed(2)}/s outside stalls; ${(stalledMs / 1000).toFixed(1)} s in gaps over 1 s`);
      // batchSize 5 makes each window one second long: the hand-over to the next window costs a round trip each second.
      assert.ok(rate >= 0.9 * 5, `${h.host}: ${rate.toFixed(2)}/s outside stalls`);
    }
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
    for (const h of hosts) {
      const fetches = new Map<string, number>();
      for (const p of h.paths) fetches.set(p, (fetches.get(p) ?? 0) + 1);
      const twice = [...fetches].filter(([p, n]) => p !== '/robots.txt' && n > 2);
      assert.deepEqual(twice, [], `${h.host}: no page fetched more than twice`);
    }
    await waitForPollers(stack, taskQueue, replacement);
  });

  /** The worker process whose identity Temporal shows on a pending batch of this crawl. */
  async function workerRunningABatch(handle: WorkflowHandle): Promise<ChildProcess> {
    let found: ChildProcess | undefined;
    await waitFor(
      'a worker of the fleet to run a batch',
      async () => {
        const { raw } = await handle.describe();
        for (const activity of raw.pendingActivities ?? []) {
          const pid = activity.lastWorkerIdentity?.split('@')[0];
          found = fleet.find((w) => String(w.pid) === pid && isBatchActivity(activity.activityType?.name));
          if (found) return true;
        }
        return false;
      },
      20_000,
    );
    return found!;
  }

  it('(c) a 429 with Retry-After: 2 pauses the whole host for 2 s', async (t) => {
    const pagesPerHost = 30;
    const { hosts } = await site({
      hosts: 1,
      pagesPerHost,
      latencyMs: 20,
      // The 6th page request, when several URLs are queued and two are in flight.
      behaviour: () => ({ tooManyRequests: { after: 5, count: 1, retryAfterSecs: 2 } }),
    });
    const [h] = hosts;
    const run = await crawl(t, hosts, { seeds: [h.pageUrl(0)], rate: 0, concurrency: 2, batchSize: 10 });
    await run.finished();
    const k = h.statuses.indexOf(429);
    assert.ok(k >= 0, 'the host answered 429');
    const answeredAt = h.answeredAt[k];
    // Requests already on the wire when the 429 was answered may still arrive just after it.
    const onTheWireMs = 50;
    const during = h.starts.filter((at) => at > answeredAt + onTheWireMs && at < answeredAt + 2000 - jitterMs);
    const next = h.starts.find((at) => at > answeredAt + onTheWireMs);
    t.diagnostic(`next request ${next === undefined ? 'never' : `${(next - answeredAt).toFixed(0)} ms`} after the 429 was answered`);
    assert.deepEqual(
      during.map((at) => `${(at - answeredAt).toFixed(0)} ms`),
      [],
      'no request started within 2 s of the 429 (times after it was answered)',
    );
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });

  it('(d) robots.txt Crawl-delay: 0.5 with rate 0 keeps every request 500 ms apart', async (t) => {
    const pagesPerHost = 12;
    const { hosts } = await site({ hosts: 1, pagesPerHost, robots: () => 'User-agent: *\nCrawl-delay: 0.5\nAllow: /\n' });
    const [h] = hosts;
    const run = await crawl(t, hosts, { seeds: [h.pageUrl(0)], rate: 0, concurrency: 4 });
    await run.finished();
    assert.ok(minGapMs(h.starts) >= 500 - jitterMs, `${h.host}: min gap ${minGapMs(h.starts).toFixed(1)} ms (robots.txt included)`);
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });

  it('(i) adaptive throttle with no rate limit: once latency is known, requests are about latency / targetConcurrency apart', async (t) => {
    const pagesPerHost = 16;
    const { hosts } = await site({ hosts: 1, pagesPerHost, latencyMs: 200 });
    const [h] = hosts;
    const run = await crawl(t, hosts, { seeds: [h.pageUrl(0)], rate: 0, concurrency: 4, throttle: 'adaptive', targetConcurrency: 1 });
    await run.finished();
    // The first (probe) batch learns the latency; from the second on, starts are paced by it.
    const probe = Math.min(4, h.starts.length);
    const later = h.starts.slice(probe + 1);
    assert.ok(later.length >= 8);
    assert.ok(minGapMs(later) >= 200 - jitterMs, `${h.host}: min gap ${minGapMs(later).toFixed(1)} ms after the probe batch`);
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });

  it('(d) robots.txt Crawl-delay: 120 above maxCrawlDelaySecs 60 skips the host: no page requested, URLs skipped crawl_delay_too_long', async (t) => {
    const { hosts } = await site({ hosts: 1, pagesPerHost: 10, robots: () => 'User-agent: *\nCrawl-delay: 120\nAllow: /\n' });
    const [h] = hosts;
    const run = await crawl(t, hosts, { seeds: [h.pageUrl(0), h.pageUrl(1)], rate: 0, maxCrawlDelaySecs: 60 });
    const summary = await run.finished();
    assert.deepEqual([...new Set(h.paths)], ['/robots.txt'], 'only robots.txt was requested');
    const { rows } = await stack.pool.query<{ url: string; state: string; reason: string | null }>(
      `SELECT url, state, reason FROM frontier WHERE crawl_id = $1 ORDER BY url`,
      [run.crawlId],
    );
    assert.deepEqual(
      rows.map((r) => ({ path: pathOf(r.url), state: r.state, reason: r.reason })),
      ['/p/0', '/p/1'].map((path) => ({ path, state: 'skipped', reason: 'crawl_delay_too_long' })),
    );
    assert.equal(summary.saved, 0);
    assert.equal(summary.byReason.crawl_delay_too_long, 2);
  });

  it('(e) a host that bans (403) above 4 requests/s is backed off from rate 10, and every page is still saved', async (t) => {
    const pagesPerHost = 70;
    const { hosts } = await site({ hosts: 1, pagesPerHost, latencyMs: 10, behaviour: () => ({ banAbovePerSec: 4 }) });
    const [h] = hosts;
    const run = await crawl(t, hosts, { seeds: [h.pageUrl(0)], rate: 10, concurrency: 2, batchSize: 10 });
    await run.finished(90_000);
    const bans = h.statuses.filter((s) => s === 403).length;
    assert.ok(bans > 0, 'the ban trap was sprung (else this test shows nothing)');
    const first = h.starts[0];
    const last = h.starts[h.starts.length - 1];
    const middle = (first + last) / 2;
    const laterHalf = meanRate(h.starts, middle);
    const laterBans = h.statuses.filter((s, k) => s === 403 && h.starts[k] >= middle).length;
    t.diagnostic(`${bans} bans in all, ${laterBans} in the later half; rate ${meanRate(h.starts, first, middle).toFixed(2)}/s then ${laterHalf.toFixed(2)}/s`);
    assert.ok(laterHalf <= 5, `the later half ran at ${laterHalf.toFixed(2)}/s, above half the configured 10/s`);
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });

  it('(f) totalRate 4 over 3 hosts with rate 0: never more than 4 starts a second across the crawl', async (t) => {
    const pagesPerHost = 25;
    const { hosts } = await site({ hosts: 3, pagesPerHost, latencyMs: 10 });
    const run = await crawl(t, hosts, { seeds: hosts.map((h) => h.pageUrl(0)), rate: 0, totalRate: 4, concurrency: 2, batchSize: 5 });
    await run.finished();
    const all = arrivals(hosts);
    t.diagnostic(`all hosts: mean ${meanRate(all.map((r) => r.at)).toFixed(2)}/s`);
    assertAtMostPerSecond(t, 'all hosts', all, 4);
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });

  it('(g) a rate group of 2 hosts at rate 3 shares one limit; a host outside it is not held to it', async (t) => {
    const pagesPerHost = 24;
    const { hosts } = await site({ hosts: 3, pagesPerHost, latencyMs: 10 });
    const [a, b, outside] = hosts;
    const run = await crawl(t, hosts, {
      seeds: hosts.map((h) => h.pageUrl(0)),
      rate: 0,
      concurrency: 2,
      batchSize: 5,
      rateGroups: [{ name: 'pair', hosts: [a.host, b.host], rate: 3 }],
    });
    await run.finished();
    const group = arrivals([a, b]);
    t.diagnostic(`group: mean ${meanRate(group.map((r) => r.at)).toFixed(2)}/s`);
    assertAtMostPerSecond(t, 'the group', group, 3);
    assert.ok(maxStartsInWindow(outside.starts) > 3, 'the host outside the group ran unlimited');
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });

  it('(j) two crawls of one host at once share its limit: together never more than the lower rate, 2/s, and close to it; each saves every page once', async (t) => {
    const pagesPerHost = 20;
    const { hosts } = await site({ hosts: 1, pagesPerHost, latencyMs: 10 });
    const seeds = [hosts[0].pageUrl(0)];
    const slow = await crawl(t, hosts, { seeds, rate: 2, concurrency: 2 });
    // The slower crawl's want is known to the fleet from its first request on: the faster one starts after it.
    await waitFor('the slower crawl to start', () => hosts[0].starts.length >= 1, 30_000);
    const fast = await crawl(t, hosts, { seeds, rate: 8, concurrency: 2 });
    await Promise.all([slow.finished(90_000), fast.finished(90_000)]);
    const both = arrivals(hosts);
    assertAtMostPerSecond(t, 'both crawls', both, 2);
    t.diagnostic(`both crawls: ${both.length} requests, mean ${meanRate(both.map((r) => r.at)).toFixed(2)}/s`);
    assert.equal(both.length, 2 * (pagesPerHost + 1), 'each crawl fetched robots.txt and every page once');
    assert.ok(meanRate(both.map((r) => r.at)) >= 0.85 * 2, 'the two crawls together keep the host close to its limit');
    await assertAllSaved(slow.crawlId, hosts, pagesPerHost);
    await assertAllSaved(fast.crawlId, hosts, pagesPerHost);
  });

  it('(k) set-rate lowers the default rate from 8/s to 1/s within 2 s: the window in flight is steered to stop', async (t) => {
    const pagesPerHost = 60;
    const { hosts } = await site({ hosts: 1, pagesPerHost, latencyMs: 10 });
    const [h] = hosts;
    const run = await crawl(t, hosts, { seeds: [h.pageUrl(0)], rate: 8, concurrency: 2 });
    const env = workerEnv(stack, taskQueue);
    await waitFor('10 requests at 8/s', () => h.starts.length >= 10, 30_000);
    const lowered = await runTcrawl(['set-rate', run.crawlId, '1'], env);
    assert.equal(lowered.code, 0, lowered.stderr);
    await new Promise((resolve) => setTimeout(resolve, 7000));
    // Measured: lift the limit so the rest of the site takes no time.
    const lifted = await runTcrawl(['set-rate', run.crawlId, '0'], env);
    assert.equal(lifted.code, 0, lifted.stderr);
    await run.finished();
    const slow = arrivals([h], (at) => at >= lowered.exitedAtMs + 2000 && at < lifted.startedAtMs);
    t.diagnostic(`from 2 s after set-rate 1 returned (${lowered.exitedAtMs - lowered.startedAtMs} ms) until it was lifted: ${slow.length} starts, mean ${meanRate(slow.map((r) => r.at)).toFixed(2)}/s`);
    assertAtMostPerSecond(t, 'from 2 s after set-rate 1', slow, 1);
    assert.ok(slow.length >= 3, `${slow.length} starts at 1/s: the host went on at the new rate`);
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });

  it('(h) set-rate raises a host from 2/s to 8/s within about 2 s, and status --json shows hostStates', async (t) => {
    const pagesPerHost = 80;
    const { hosts } = await site({ hosts: 1, pagesPerHost, latencyMs: 10 });
    const [h] = hosts;
    const run = await crawl(t, hosts, { seeds: [h.pageUrl(0)], rate: 2, concurrency: 2 });
    const env = workerEnv(stack, taskQueue);
    await waitFor('8 requests at 2/s', () => h.starts.length >= 8, 30_000);

    const setRate = await runTcrawl(['set-rate', run.crawlId, '--host', h.host, '8'], env);
    assert.equal(setRate.code, 0, `set-rate exited ${setRate.code}: ${setRate.stderr}`);
    const status = await runTcrawl(['status', run.crawlId, '--json'], env);
    assert.equal(status.code, 0, status.stderr);

    await run.finished();
    const before = arrivals([h], (at) => at < setRate.startedAtMs);
    const after = arrivals([h], (at) => at >= setRate.startedAtMs);
    // The command returns once the workflow has taken the new rate; allow it ~2 s to show at the site.
    const settled = after.filter((r) => r.at >= setRate.exitedAtMs + 2000).map((r) => r.at);
    t.diagnostic(`set-rate ran for ${setRate.exitedAtMs - setRate.startedAtMs} ms`);
    t.diagnostic(`before: ${meanRate(before.map((r) => r.at)).toFixed(2)}/s; from 2 s after set-rate returned: ${meanRate(settled).toFixed(2)}/s over ${settled.length} starts`);
    assertAtMostPerSecond(t, 'before set-rate', before, 2);
    assertAtMostPerSecond(t, 'after set-rate', after, 8);
    assert.ok(settled.length >= 10, `${settled.length} requests from 2 s after set-rate: too few to measure (the site is too small)`);
    assert.ok(meanRate(settled) >= 0.9 * 8, `${meanRate(settled).toFixed(2)}/s from 2 s after set-rate returned`);

    const progress = JSON.parse(status.stdout).progress;
    assert.ok(Array.isArray(progress?.hostStates), `status --json has progress.hostStates: ${status.stdout}`);
    const state = progress.hostStates.find((s: { host: string }) => s.host === h.host);
    assert.ok(state, `hostStates has ${h.host}: ${JSON.stringify(progress.hostStates)}`);
    assert.equal(state.ratePerSec, 8);
    for (const key of ['queued', 'inFlight', 'ratePerSec', 'backoffFactor', 'pausedUntilMs', 'reason']) assert.ok(key in state, `hostStates entry has ${key}`);
    await assertAllSaved(run.crawlId, hosts, pagesPerHost);
  });
});

/**
 * The pace between stalls: gaps longer than `stallMs` (recovery from a dead
 * worker) are left out, the rest averaged as `meanRate` does.
 */
function pacedRate(starts: number[], stallMs: number): { rate: number; stalledMs: number } {
  let paced = 0;
  let pacedMs = 0;
  let stalledMs = 0;
  for (let i = 1; i < starts.length; i++) {
    const gap = starts[i] - starts[i - 1];
    if (gap > stallMs) stalledMs += gap;
    else {
      paced++;
      pacedMs += gap;
    }
  }
  return { rate: pacedMs > 0 ? (paced * 1000) / pacedMs : 0, stalledMs };
}

describe('counting site fixture', () => {
  let fixture: CountingSite;

  after(async () => {
    await fixture?.close();
  });

  it('serves each host on its own loopback address, links every page from /p/0, and records each request', async () => {
    fixture = await startCountingSite({
      hosts: 3,
      pagesPerHost: 50,
      crossHostLinks: true,
      robots: (i) => `User-agent: *\nCrawl-delay: ${i}\n`,
      behaviour: (i) => (i === 1 ? { tooManyRequests: { after: 1, count: 2, retryAfterSecs: 7 } } : i === 2 ? { banAbovePerSec: 3 } : undefined),
    });
    const [h0, h1, h2] = fixture.hosts;
    assert.deepEqual(fixture.hosts.map((h) => new URL(h.origin).hostname), ['127.0.0.2', '127.0.0.3', '127.0.0.4']);
    assert.equal(h0.host, new URL(h0.origin).host);

    assert.equal(await (await fetch(`${h1.origin}/robots.txt`)).text(), 'User-agent: *\nCrawl-delay: 1\n');
    const page = await fetch(h0.pageUrl(0));
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<title>Host 0 page 0<\/title>/);
    assert.ok(html.includes(`href="${h1.pageUrl(0)}"`), 'links to the next host');
    assert.equal((await fetch(`${h0.origin}/p/50`)).status, 404);

    // Behaviour: page requests 2 and 3 of host 1 answer 429 with Retry-After.
    const statuses1 = [];
    for (let i = 0; i < 4; i++) {
      const res = await fetch(h1.pageUrl(i));
      statuses1.push(res.status);
      if (res.status === 429) assert.equal(res.headers.get('retry-after'), '7');
      await res.arrayBuffer();
    }
    assert.deepEqual(statuses1, [200, 429, 429, 200]);
    assert.deepEqual(h1.statuses, [200, 200, 429, 429, 200], 'robots.txt first, then the pages');
    assert.deepEqual(h1.paths, ['/robots.txt', '/p/0', '/p/1', '/p/2', '/p/3']);

    // The ban trap: the 4th request within a second is banned.
    const statuses2 = await Promise.all(Array.from({ length: 5 }, (_, i) => fetch(h2.pageUrl(i)).then(async (r) => (await r.arrayBuffer(), r.status))));
    assert.deepEqual(statuses2.sort(), [200, 200, 200, 403, 403]);

    for (const h of fixture.hosts) {
      assert.equal(h.starts.length, h.paths.length);
      assert.ok(h.starts.every((at, k) => k === 0 || at >= h.starts[k - 1]), 'starts ascend');
      assert.ok(h.answeredAt.every((at, k) => at >= h.starts[k]), 'answered after arrival');
      assert.ok(Math.abs(h.starts[0] - Date.now()) < 5000, 'starts are epoch ms');
    }
  });

  it('links form a graph breadth-first search covers in a few hops', () => {
    for (const pages of [1, 2, 12, 80, 1000]) {
      const depth = new Map([[0, 0]]);
      for (const [page, d] of depth) for (const next of pageLinks(page, pages)) if (!depth.has(next)) depth.set(next, d + 1);
      assert.equal(depth.size, pages, `all ${pages} pages reachable`);
      assert.ok(Math.max(...depth.values()) <= Math.ceil(Math.log(pages * 3 + 1) / Math.log(4)), `${pages} pages within log4 hops`);
    }
  });
});
