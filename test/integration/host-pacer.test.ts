import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Pool } from 'pg';
import { localNowMs } from '../../activities/database-clock';
import { HostPacer, withPacingMargin } from '../../activities/host-pacer';
import { createPool, migrate } from '../../src/infra/database';
import type { HostPacerCrawlArgs } from '../helpers/host-pacer-crawl';
import { maxStartsInWindow, meanRate, minGapMs } from '../helpers/rate-stats';
import { uniqueId } from '../helpers/stack';

const crawlScript = path.resolve(__dirname, '../helpers/host-pacer-crawl.ts');

/** Runs one crawl's reservations in a child process with its own pool; its starts. */
async function crawlInProcess(args: HostPacerCrawlArgs): Promise<number[]> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', crawlScript, JSON.stringify(args)], { env: process.env });
  return JSON.parse(stdout) as number[];
}

/** `n` reservations one after another; when each was granted. */
async function reserveSequentially(pacer: HostPacer, host: string, crawlId: string, intervalMs: number, n: number): Promise<number[]> {
  const starts: number[] = [];
  for (let i = 0; i < n; i++) {
    await pacer.reserve(host, crawlId, intervalMs);
    starts.push(localNowMs());
  }
  return starts;
}

/** Reserves until `stopAtMs`; when each was granted. */
async function reserveUntil(pacer: HostPacer, host: string, crawlId: string, intervalMs: number, stopAtMs: number): Promise<number[]> {
  const starts: number[] = [];
  while (Date.now() < stopAtMs) {
    await pacer.reserve(host, crawlId, intervalMs);
    starts.push(localNowMs());
  }
  return starts;
}

describe('withPacingMargin', () => {
  it('adds 3% and at least a millisecond, and leaves 0 (no pacing) alone', () => {
    assert.deepEqual([0, 10, 100, 1_000].map(withPacingMargin), [0, 11, 103, 1_030]);
  });
});

describe('HostPacer', () => {
  let pool: Pool;
  const pools: Pool[] = [];
  const openPool = () => {
    const opened = createPool(process.env.DATABASE_URL!, 4);
    pools.push(opened);
    return opened;
  };

  before(async () => {
    assert.ok(process.env.DATABASE_URL, 'DATABASE_URL is not set: run the suite with `npm test`, which sets it.');
    pool = openPool();
    await migrate(pool);
  });
  after(async () => {
    await Promise.all(pools.map((opened) => opened.end()));
  });

  it('paces two crawls in two processes on one host together at the slower one’s rate', async (t) => {
    const host = `${uniqueId('h')}.example`;
    const startAtMs = Date.now() + 2_000; // both processes have loaded and connected by then
    const stopAtMs = startAtMs + 5_000;
    const run = (crawlId: string, intervalMs: number) => crawlInProcess({ host, crawlId, intervalMs, startAtMs, stopAtMs, concurrency: 3 });
    const [fast, slow] = await Promise.all([run('fast', 100), run('slow', 250)]);
    // Before the slow crawl's first reservation no one knew it wanted 4/s: count from its first start on.
    const together = [...fast, ...slow].filter((at) => at >= slow[0]).sort((a, b) => a - b);
    assert.ok(together.length >= 18, `${together.length} starts in 5 s`);
    assert.ok(maxStartsInWindow(together, 1000) <= 4, `at most 4 starts in any second, saw ${maxStartsInWindow(together, 1000)}`);
    assert.ok(minGapMs(together) >= 240, `shortest gap ${minGapMs(together).toFixed(1)} ms`);
    const rate = meanRate(together);
    t.diagnostic(`fast ${fast.length} + slow ${slow.length} starts, ${rate.toFixed(2)}/s together, at most ${maxStartsInWindow(together, 1000)} in a second, shortest gap ${minGapMs(together).toFixed(1)} ms`);
    assert.ok(rate >= 3.5 && rate <= 4, `close to 4/s together, was ${rate.toFixed(2)}/s`);
    assert.ok(fast.length >= 5 && slow.length >= 5, `both crawls got starts: fast ${fast.length}, slow ${slow.length}`);
  });

  it('gives a crawl alone on a host its own rate', async (t) => {
    const starts = await reserveSequentially(new HostPacer(pool), `${uniqueId('h')}.example`, 'alone', 100, 21);
    assert.ok(maxStartsInWindow(starts, 1000) <= 10, `at most 10 starts in any second, saw ${maxStartsInWindow(starts, 1000)}`);
    const rate = meanRate(starts);
    t.diagnostic(`${rate.toFixed(2)}/s, shortest gap ${minGapMs(starts).toFixed(1)} ms`);
    // 1000 / 103 ms: the margin; the timer only ever makes the rate lower.
    assert.ok(rate >= 9 && rate <= 9.85, `close to 10/s less the margin, was ${rate.toFixed(2)}/s`);
  });

  it('lets the faster crawl go back to its rate once the slower one’s want has lapsed', async (t) => {
    const host = `${uniqueId('h')}.example`;
    const wantedForMs = 1_000;
    const [fastPacer, slowPacer] = [new HostPacer(openPool(), { wantedForMs }), new HostPacer(openPool(), { wantedForMs })];
    const t0 = Date.now();
    const [fast, slow] = await Promise.all([reserveUntil(fastPacer, host, 'fast', 100, t0 + 4_500), reserveUntil(slowPacer, host, 'slow', 250, t0 + 1_500)]);
    const slowLast = slow[slow.length - 1];
    const lapsedAt = slowLast + withPacingMargin(250) + wantedForMs;
    const whileSlow = fast.filter((at) => at > slow[0] && at <= slowLast);
    const afterLapse = fast.filter((at) => at > lapsedAt + 150);
    assert.ok(meanRate([...whileSlow, ...slow.slice(1)]) <= 4, `4/s or less together while both ran, was ${meanRate([...whileSlow, ...slow.slice(1)]).toFixed(2)}/s`);
    assert.ok(afterLapse.length >= 10, `${afterLapse.length} fast starts after the lapse`);
    const rate = meanRate(afterLapse);
    t.diagnostic(`together ${meanRate([...whileSlow, ...slow.slice(1)]).toFixed(2)}/s while both ran, fast alone ${rate.toFixed(2)}/s after the lapse`);
    assert.ok(rate >= 9 && rate <= 10, `back to about 10/s after the lapse, was ${rate.toFixed(2)}/s`);
    const stillSlow = fast.filter((at) => at > slowLast && at < lapsedAt - 100);
    assert.ok(minGapMs(stillSlow) >= 240, `the slow pace held until its want lapsed: shortest gap ${minGapMs(stillSlow).toFixed(1)} ms`);
  });

  it('slows the very next gap when a slower crawl joins', async () => {
    const host = `${uniqueId('h')}.example`;
    const [fastPacer, slowPacer] = [new HostPacer(pool), new HostPacer(pool)];
    await fastPacer.reserve(host, 'fast', 100);
    const fastAt = localNowMs();
    await slowPacer.reserve(host, 'slow', 1_000);
    const gapMs = localNowMs() - fastAt;
    assert.ok(gapMs >= 1_000, `the slow crawl's first start came ${gapMs.toFixed(1)} ms after the fast one's`);
  });

  it('starts on time when the database’s answer arrives late but before the start', async () => {
    let delayMs = 0;
    const slowAnswers = {
      query: async (...args: unknown[]) => {
        const answer = await (pool.query as (...a: unknown[]) => Promise<unknown>)(...args);
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        return answer;
      },
    } as unknown as Pool;
    const pacer = new HostPacer(slowAnswers);
    const host = `${uniqueId('h')}.example`;
    await pacer.reserve(host, 'slow-answer', 200);
    const firstAt = localNowMs();
    delayMs = 60; // a WAL flush, a busy event loop
    await pacer.reserve(host, 'slow-answer', 200);
    const gapMs = localNowMs() - firstAt;
    assert.ok(gapMs >= 200, `started ${gapMs.toFixed(1)} ms after the first, its slot 206 ms after`);
    // A timer that fires late on a loaded machine gives the start up and reserves again (lateRetries): then the gap is longer by design.
    if (pacer.lateRetries === 0) assert.ok(gapMs < 240, `started ${gapMs.toFixed(1)} ms after the first, its slot 206 ms after: the late answer delayed it`);
  });

  it('gives up a start it would make late, rather than squeeze the gap after it', async () => {
    const pacer = new HostPacer(pool);
    const host = `${uniqueId('h')}.example`;
    await pacer.reserve(host, 'late', 200);
    const firstAt = localNowMs();
    // The second start is due ~206 ms on; its answer is in by 100 ms; the event loop then stalls past the start.
    setTimeout(() => {
      const until = Date.now() + 250;
      while (Date.now() < until);
    }, 100);
    await pacer.reserve(host, 'late', 200);
    const secondAt = localNowMs();
    await pacer.reserve(host, 'late', 200);
    const gapMs = localNowMs() - secondAt;
    // Kept, the late start (~350 ms) would have left ~60 ms before the next slot (412 ms); timers may be a little late.
    assert.ok(gapMs >= 150, `the gap after the late start: ${gapMs.toFixed(1)} ms`);
    assert.ok(secondAt - firstAt >= 400, `the late start moved to the next slot: ${(secondAt - firstAt).toFixed(1)} ms after the first`);
    assert.equal(pacer.lateRetries, 1);
  });

  it('does not make different hosts wait on each other', async () => {
    const pacer = new HostPacer(pool);
    const hosts = Array.from({ length: 5 }, () => `${uniqueId('h')}.example`);
    const started = Date.now();
    const perHost = await Promise.all(hosts.map((host) => reserveSequentially(pacer, host, 'many-hosts', 500, 3)));
    const elapsedMs = Date.now() - started;
    // Each host: 2 gaps of 515 ms. One queue for all would take 14 gaps.
    assert.ok(elapsedMs < 1_400, `5 hosts × 3 starts at 2/s took ${elapsedMs} ms`);
    for (const starts of perHost) assert.ok(minGapMs(starts) >= 480, `shortest gap on a host ${minGapMs(starts).toFixed(1)} ms`);
  });

  it('stops a wait when its signal aborts', async () => {
    const pacer = new HostPacer(pool);
    const host = `${uniqueId('h')}.example`;
    await pacer.reserve(host, 'abort', 5_000);
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    const started = Date.now();
    await assert.rejects(pacer.reserve(host, 'abort', 5_000, stop.signal), { name: 'AbortError' });
    const elapsedMs = Date.now() - started;
    assert.ok(elapsedMs < 1_000, `rejected ${elapsedMs} ms after the call, not after the 5 s wait`);
    await assert.rejects(pacer.reserve(host, 'abort', 5_000, AbortSignal.abort()), { name: 'AbortError' });
  });

  it('makes no query for a crawl with no limit, however slow other crawls are on the host', async () => {
    const host = `${uniqueId('h')}.example`;
    await new HostPacer(pool).reserve(host, 'slow', 10_000);
    const noDatabase = { query: () => assert.fail('queried the database') } as unknown as Pool;
    const started = Date.now();
    await new HostPacer(noDatabase).reserve(host, 'unpaced', 0);
    assert.ok(Date.now() - started < 50);
  });

  it('deletes the rows of hosts no crawl is pacing any more, and only those', async () => {
    const pacer = new HostPacer(pool, { wantedForMs: 300 });
    const [idle, busy] = [`${uniqueId('h')}.example`, `${uniqueId('h')}.example`];
    await pacer.reserve(idle, 'prune', 50);
    await new Promise((resolve) => setTimeout(resolve, 50 + 300 + 100));
    await new HostPacer(pool, { wantedForMs: 60_000 }).reserve(busy, 'prune', 50);
    await pacer.pruneIdleHosts();
    const { rows } = await pool.query<{ host: string }>('SELECT host FROM host_pacer WHERE host = ANY($1)', [[idle, busy]]);
    assert.deepEqual(rows.map((row) => row.host), [busy]);
  });
});
