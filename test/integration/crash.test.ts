import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { startCrawl } from '../../src/client';
import { parseCrawlSpec } from '../../src/spec';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { localSiteDefaults, openStack, uniqueId, type TestStack } from '../helpers/stack';
import { assertSavedExactlyOnce } from '../helpers/saved-once';
import { startChainSite } from '../fixtures/chain-site';
import { kill, runTcrawl, spawnWorkers, waitFor, workerEnv } from '../helpers/worker-processes';

// The two tests run at once: each has its own site, crawl, task queue and worker processes, and most of
// their time is Temporal waiting out the killed worker's heartbeat timeout before it retries its batches.
describe('crash: SIGKILL a worker process mid-crawl', { concurrency: true }, () => {
  let stack: TestStack;
  let site: FixtureSite;
  const workers: ChildProcess[] = [];

  before(async () => {
    stack = await openStack();
    site = await startFixtureSite({ extraPages: 300, delayMs: 20 });
  });

  after(async () => {
    await Promise.all(workers.map(kill));
    await site?.close();
    await stack?.close();
  });

  it('another worker finishes the crawl and every page is saved exactly once', async (t) => {
    const crawlId = uniqueId('crash');
    const taskQueue = uniqueId('tq');
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 10, concurrency: 8 });
    const handle = await startCrawl(stack.client, taskQueue, crawlId, spec);
    const saved = async () => (await stack.pool.query(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId])).rows[0].n as number;

    const [first] = spawnWorkers(stack, taskQueue, 1);
    workers.push(first);
    const leased = async () => (await stack.pool.query(`SELECT count(*)::int AS n FROM frontier WHERE crawl_id = $1 AND state = 'leased'`, [crawlId])).rows[0].n as number;
    // Kill it while it holds leases (work checked out), so that work must be recovered.
    await waitFor('the first worker to save 40 pages while holding leases', async () => (await saved()) >= 40 && (await leased()) > 0, 90_000);
    const leasedAtKill = await leased();
    await kill(first);
    const savedAtKill = await saved();
    assert.ok(savedAtKill < site.expectations.savedPaths.length, 'the worker was killed mid-crawl');

    workers.push(...spawnWorkers(stack, taskQueue, 1));
    const summary = await handle.result();

    await assertSavedExactlyOnce(stack.pool, site, crawlId, summary, leasedAtKill, (line) => t.diagnostic(line));
  });

  it('tcrawl retry-failed on a finished crawl: its re-run survives a SIGKILLed worker, each re-queued URL saved once', async () => {
    const chain = await startChainSite(2, 120, 20);
    try {
      const crawlId = uniqueId('crash-retry');
      const taskQueue = uniqueId('tq');
      const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [chain.url('/')], batchSize: 5, concurrency: 2 });
      const handle = await startCrawl(stack.client, taskQueue, crawlId, spec);
      const [first] = spawnWorkers(stack, taskQueue, 1);
      workers.push(first);
      assert.equal((await handle.result()).failed, 120);
      chain.heal();
      const query = async (sql: string) => (await stack.pool.query(sql, [crawlId])).rows[0].n as number;
      const healed = () => query(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1 AND url LIKE '%/bad/%'`);
      const leased = () => query(`SELECT count(*)::int AS n FROM frontier WHERE crawl_id = $1 AND state = 'leased'`);

      const retry = await runTcrawl(['retry-failed', crawlId, '--status', '404'], workerEnv(stack, taskQueue));
      assert.equal(retry.code, 0, retry.stderr);
      assert.match(retry.stdout, /Re-queued 120 failed URLs \(status 404\) of crawl .* in a new run of the crawl/);
      await waitFor('the re-run to save some re-queued URLs while holding leases', async () => (await healed()) >= 10 && (await leased()) > 0, 90_000);
      const leasedAtKill = await leased();
      await kill(first);
      workers.push(...spawnWorkers(stack, taskQueue, 1));
      const rerun = await stack.client.workflow.getHandle(handle.workflowId).result();
      assert.equal(rerun.failed, 0);
      assert.equal(rerun.run?.requeued, 120);
      assert.equal(await healed(), 120, 'every re-queued URL saved');
      assert.equal(await query(`SELECT count(*)::int AS n FROM frontier WHERE crawl_id = $1 AND state <> 'done'`), 0);
      assert.ok(chain.maxRequestsPerPage() <= 3, 'a bad link is fetched once failing, once healed, and again only if it was leased at the kill');
      assert.ok(leasedAtKill > 0);
    } finally {
      await chain.close();
    }
  });
});
