import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, CrawlCancelledError, type RunningWorker, type TcrawlClient } from '../../src/tcrawl-client';
import { workflowIdFor } from '../../src/client';
import { startChainSite } from '../fixtures/chain-site';
import { localSiteDefaults, quietRuntime, uniqueId } from '../helpers/stack';

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

describe('steering a crawl from the client API: pause, resume, cancel, retry-failed', () => {
  let tcrawl: TcrawlClient;
  let worker: RunningWorker;

  before(async () => {
    quietRuntime();
    // Its own task queue: no other suite's worker may run these crawls.
    tcrawl = await connect({ env: { ...process.env, TCRAWL_TASK_QUEUE: uniqueId('steer') }, log: () => undefined });
    worker = await tcrawl.runWorker();
  });

  after(async () => {
    await worker?.stop();
    await tcrawl?.close();
  });

  const count = async (crawlId: string, sql: string): Promise<number> => Number((await tcrawl.pool.query(sql, [crawlId])).rows[0].n);
  const saved = (crawlId: string) => count(crawlId, 'SELECT count(*) AS n FROM pages WHERE crawl_id = $1');
  const leased = (crawlId: string) => count(crawlId, "SELECT count(*) AS n FROM frontier WHERE crawl_id = $1 AND state = 'leased'");

  it('pause stops new batches (in-flight ones finish), shows in status and search attributes; resume finishes the crawl, every page once', async () => {
    const site = await startChainSite(40, 0, 30);
    try {
      const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 2, concurrency: 1, maxPages: 100 });
      await until('a few pages saved', async () => (await saved(crawl.crawlId)) >= 4);
      const paused = await crawl.pause();
      assert.equal(paused.phase, 'paused');
      await until('in-flight batches finished', async () => (await crawl.progress())?.inFlightBatches === 0);
      const requestsWhenIdle = site.totalRequests();
      const savedWhenIdle = await saved(crawl.crawlId);
      await sleep(1500);
      assert.equal(site.totalRequests(), requestsWhenIdle, 'no request while paused');
      assert.equal(await saved(crawl.crawlId), savedWhenIdle, 'nothing saved while paused');
      assert.equal((await crawl.progress())?.phase, 'paused');
      // Visibility is eventually consistent: the Web UI's filter finds the paused crawl within seconds.
      await until('TcrawlPhase = "paused" in visibility', async () => {
        for await (const execution of tcrawl.temporal.workflow.list({ query: `TcrawlPhase = "paused" AND WorkflowId = "${crawl.workflowId}"` })) return execution;
        return undefined;
      });
      assert.deepEqual(await crawl.resume(), { rerun: false });
      const summary = await crawl.result();
      assert.equal(summary.phase, 'finished');
      assert.equal(summary.saved, 40, '/ and /p/1../p/39');
      assert.equal(await saved(crawl.crawlId), 40);
      assert.equal(site.maxRequestsPerPage(), 1, 'no page fetched twice');
      const description = await tcrawl.temporal.workflow.getHandle(crawl.workflowId).describe();
      assert.equal(description.typedSearchAttributes.get({ name: 'TcrawlPhase', type: 'KEYWORD' }), 'finished');
      assert.equal(description.typedSearchAttributes.get({ name: 'TcrawlSaved', type: 'INT' }), 40);
    } finally {
      await site.close();
    }
  });

  it('pause reaches a paced window in flight within 2 s: it stops starting requests and gives back what it had not started (v3 steering)', async () => {
    const site = await startChainSite(40, 0, 10);
    try {
      // At 2/s a window holds a host for up to 20 s: only steering can stop it sooner.
      const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.url('/')], rate: 2, concurrency: 1, maxPages: 100 });
      await until('a few pages saved', async () => (await saved(crawl.crawlId)) >= 3);
      await crawl.pause();
      const pausedAtMs = Date.now();
      await until('the window stopped', async () => (await crawl.progress())?.inFlightBatches === 0, 5000);
      const stoppedInMs = Date.now() - pausedAtMs;
      assert.ok(stoppedInMs <= 2000, `the window in flight stopped ${stoppedInMs} ms after pause returned`);
      assert.equal(await leased(crawl.crawlId), 0, 'the URLs it had not started are queued again');
      const requestsWhenStopped = site.totalRequests();
      await sleep(1500);
      assert.equal(site.totalRequests(), requestsWhenStopped, 'no request while paused');
      await crawl.resume();
      const summary = await crawl.result();
      assert.equal(summary.saved, 40);
      assert.equal(site.maxRequestsPerPage(), 1, 'no page fetched twice');
    } finally {
      await site.close();
    }
  });

  it('cancel winds the crawl down (no lease left, final summary kept), and resume goes on as a new run that finishes it', async () => {
    const site = await startChainSite(40, 0, 30);
    try {
      const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 2, concurrency: 1, maxPages: 100 });
      await until('a few pages saved', async () => (await saved(crawl.crawlId)) >= 4);
      const summary = await crawl.cancel();
      assert.equal(summary?.phase, 'cancelled');
      const status = await crawl.status();
      assert.equal(status.status, 'CANCELLED');
      assert.equal(status.progress?.phase, 'cancelled', 'status shows the final summary from the memo');
      assert.equal(await leased(crawl.crawlId), 0, 'the wind-down released every lease');
      assert.equal(summary?.saved, await saved(crawl.crawlId), 'the summary counts what the rows hold');
      await assert.rejects(crawl.result(), (error) => error instanceof CrawlCancelledError && error.summary?.phase === 'cancelled');

      assert.deepEqual(await crawl.resume(), { rerun: true });
      const final = await crawl.result();
      assert.equal(final.saved, 40);
      assert.equal(await saved(crawl.crawlId), 40);
      assert.ok(site.maxRequestsPerPage() <= 2, 'only a page in flight at the cancel may be fetched again');
      const runs = [];
      for await (const execution of tcrawl.temporal.workflow.list({ query: `WorkflowId = "${workflowIdFor(crawl.crawlId)}"` })) runs.push(execution.status.name);
      assert.deepEqual(runs.sort(), ['CANCELLED', 'COMPLETED']);
    } finally {
      await site.close();
    }
  });

  it('a re-run goes on from the steering count its crawl left: its paced windows are not halted as steered (v6; every window of a resumed crawl stopped within 500 ms)', async () => {
    const site = await startChainSite(30, 0, 10);
    try {
      const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.url('/')], rate: 4, concurrency: 1, maxPages: 100 });
      await until('a few pages saved', async () => (await saved(crawl.crawlId)) >= 3);
      // Each steers the windows in flight: the crawl's stored count goes up past what a new execution starts from.
      await crawl.setRate(5);
      await crawl.setRate(4);
      await crawl.cancel();
      const steeredSeq = await count(crawl.crawlId, 'SELECT steered_seq AS n FROM crawls WHERE crawl_id = $1');
      assert.ok(steeredSeq >= 2, `steered ${steeredSeq} times before the cancel ended`);
      const savedBefore = await saved(crawl.crawlId);
      assert.deepEqual(await crawl.resume(), { rerun: true });
      const final = await crawl.result();
      assert.equal(final.saved, 30);
      const { events } = await tcrawl.temporal.workflow.getHandle(workflowIdFor(crawl.crawlId)).fetchHistory();
      const windows = (events ?? []).filter((event) => event.activityTaskScheduledEventAttributes?.activityType?.name === 'crawlHosts').length;
      const pages = 30 - savedBefore;
      // A window holds a 4/s host for up to 20 s, leasing what its pages find: a few windows for the rest of the chain, one per page if each is halted.
      assert.ok(windows <= Math.max(3, pages / 4), `the re-run used ${windows} windows for ${pages} pages`);
    } finally {
      await site.close();
    }
  });

  it('retry-failed after the crawl finished re-queues the failed URLs (by status) and crawls them in a new run with its own counts', async () => {
    const site = await startChainSite(3, 5, 0);
    try {
      const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.url('/')] });
      const first = await crawl.result();
      assert.equal(first.failed, 5);
      assert.equal(first.byReason.http_404, 5 + 0);
      assert.deepEqual(await crawl.retryFailed({ statuses: [500] }), { requeued: 0, rerun: false }, 'nothing failed with 500');
      site.heal();
      assert.deepEqual(await crawl.retryFailed({ statuses: [404] }), { requeued: 5, rerun: true });
      const rerun = await crawl.result();
      assert.equal(rerun.failed, 0);
      assert.equal(rerun.saved, first.saved + 5);
      assert.equal(rerun.byReason.http_404, undefined);
      assert.deepEqual({ requeued: rerun.run?.requeued, saved: rerun.run?.saved, failed: rerun.run?.failed }, { requeued: 5, saved: 5, failed: 0 });
      assert.equal(await count(crawl.crawlId, "SELECT count(*) AS n FROM frontier WHERE crawl_id = $1 AND state = 'failed'"), 0);
    } finally {
      await site.close();
    }
  });

  it('retry-failed in a running crawl re-queues into the same run', async () => {
    const site = await startChainSite(30, 4, 20);
    try {
      const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 2, concurrency: 1 });
      await until('the bad links failed', async () => (await crawl.progress())?.failed === 4);
      await crawl.pause();
      site.heal();
      assert.deepEqual(await crawl.retryFailed({ reasons: ['http_404'] }), { requeued: 4, rerun: false });
      assert.equal((await crawl.progress())?.failed, 0, 'the counters no longer count them as failed');
      await crawl.resume();
      const summary = await crawl.result();
      assert.equal(summary.failed, 0);
      assert.equal(summary.saved, 30 + 4);
      assert.equal(summary.run?.requeued, 4);
    } finally {
      await site.close();
    }
  });

  it('refuses steering it cannot do, with the reason', async () => {
    const site = await startChainSite(2, 0, 0);
    try {
      const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.url('/')] });
      await crawl.result();
      await assert.rejects(crawl.pause(), /No running crawl|not running/);
      await assert.rejects(crawl.resume(), (error: Error & { code?: string }) => error.code === 'TCRAWL_NOT_RESUMABLE');
      await assert.rejects(crawl.cancel(), (error: Error & { code?: string }) => error.code === 'TCRAWL_NOT_RUNNING');
      await assert.rejects(tcrawl.crawl('no-such-crawl').pause(), (error: Error & { code?: string }) => error.code === 'TCRAWL_UNKNOWN_CRAWL');
    } finally {
      await site.close();
    }
  });
});
