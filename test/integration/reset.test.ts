/**
 * Resetting a crawl's workflow with the `temporal` CLI, as the README tells
 * users to: mid-crawl with batches in flight, and again once it finished.
 * A reset is a new run: its batch ids are new, the reset run's leases are
 * released by the next reconcile, finished rows stay finished, pages are
 * upserted by key, and the new run takes its counts from the frontier. So
 * every page is saved and counted once, and the only URLs fetched twice are
 * ones a batch of the reset run had checked out — each at most twice.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startCrawl } from '../../src/client';
import { runtimeConfig } from '../../src/config';
import { findTemporalCli } from '../../src/infra/temporal-cli';
import { replayCrawl } from '../../src/operate/replay';
import { parseCrawlSpec } from '../../src/spec';
import type { crawlWorkflow } from '../../workflows';
import { crawlOutcome, savedPages } from '../deploy/crawl-outcome';
import { startCountingSite, type CountingSite } from '../fixtures/counting-site';
import { waitFor } from '../helpers/worker-processes';
import { localSiteDefaults, openStack, startWorker, uniqueId, type TestStack } from '../helpers/stack';

const pages = 80;
const execFileAsync = promisify(execFile);

describe("resetting a crawl's workflow", () => {
  let stack: TestStack;
  let site: CountingSite;
  let temporalCli: string;

  before(async () => {
    stack = await openStack();
    // Slow pages: batches are in flight most of the time, so the reset catches some.
    site = await startCountingSite({ hosts: 1, pagesPerHost: pages, latencyMs: 400 });
    temporalCli = await findTemporalCli(runtimeConfig(), () => undefined);
    // Every lease as it is taken, with the batch that took it: which run had checked a URL out.
    await stack.pool.query(`
      CREATE TABLE test_lease_log (crawl_id text, url text, batch_id text);
      CREATE FUNCTION test_log_lease() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN INSERT INTO test_lease_log VALUES (NEW.crawl_id, NEW.url, NEW.batch_id); RETURN NULL; END $$;
      CREATE TRIGGER test_lease_log AFTER UPDATE OF state ON frontier FOR EACH ROW WHEN (NEW.state = 'leased') EXECUTE FUNCTION test_log_lease();`);
  });

  after(async () => {
    await stack?.pool.query('DROP TRIGGER IF EXISTS test_lease_log ON frontier; DROP FUNCTION IF EXISTS test_log_lease; DROP TABLE IF EXISTS test_lease_log');
    await site?.close();
    await stack?.close();
  });

  /** `temporal workflow reset`, as a user runs it; returns the new run's id. */
  async function reset(workflowId: string, type: 'LastWorkflowTask' | 'FirstWorkflowTask'): Promise<string> {
    const args = ['workflow', 'reset', '--address', stack.temporalAddress, '--workflow-id', workflowId, '--type', type, '--reason', `test: ${type}`, '--output', 'json'];
    const { stdout } = await execFileAsync(temporalCli, args, { timeout: 30_000 });
    return (JSON.parse(stdout) as { runId: string }).runId;
  }

  it('mid-crawl and once finished: every page saved and counted once; only URLs a batch of the reset run had checked out are fetched again, once', async (t) => {
    const crawlId = uniqueId('reset');
    const taskQueue = uniqueId('tq');
    const host = site.hosts[0];
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [host.pageUrl(0)], batchSize: 4, concurrency: 4 });
    const handle = await startCrawl(stack.client, taskQueue, crawlId, spec);
    const pageUrls = Array.from({ length: pages }, (_, page) => host.pageUrl(page));
    const fetches = () => pageUrls.map((url) => host.paths.filter((p) => p === new URL(url).pathname).length);
    const leasedNow = async () => (await stack.pool.query(`SELECT 1 FROM frontier WHERE crawl_id = $1 AND state = 'leased'`, [crawlId])).rowCount ?? 0;

    let finishedBeforeReset = new Set<string>();
    let midCrawlRunId = '';
    const worker = await startWorker(stack, taskQueue);
    const afterMidCrawlReset = await worker.runUntil(async () => {
      await waitFor('a quarter of the pages saved, batches in flight', async () => (await savedPages(stack.pool, crawlId)) >= pages / 4 && (await leasedNow()) > 0, 60_000);
      const { rows } = await stack.pool.query<{ url: string }>(`SELECT url FROM frontier WHERE crawl_id = $1 AND state IN ('done', 'failed', 'skipped')`, [crawlId]);
      finishedBeforeReset = new Set(rows.map((row) => row.url));
      midCrawlRunId = await reset(handle.workflowId, 'LastWorkflowTask');
      return resultOf(handle.workflowId, midCrawlRunId);
    });
    const fetchesAfterMidCrawlReset = fetches();
    const requestsAfterMidCrawlReset = host.paths.length;

    const again = await startWorker(stack, taskQueue);
    const finishedRunId = await reset(handle.workflowId, 'FirstWorkflowTask');
    const afterFinishedReset = await again.runUntil(resultOf(handle.workflowId, finishedRunId));

    const { savedUrls, unfinished } = await crawlOutcome(stack.pool, crawlId);
    assert.deepEqual(savedUrls, [...pageUrls].sort(), 'every page saved, one pages row each');
    assert.equal(unfinished, 0, 'nothing left queued or leased');
    for (const summary of [afterMidCrawlReset, afterFinishedReset]) {
      assert.deepEqual([summary.saved, summary.failed, summary.skipped], [savedUrls.length, 0, 0], 'the summary counts the rows');
    }
    assert.ok(finishedBeforeReset.size < pages, 'the first reset came mid-crawl');

    // The guarantee: a URL is fetched again only if a batch of the reset run had checked it out (leased it)
    // and not yet written its result — its lease is released by the new run's reconcile, or its batch,
    // scheduled before the reset point, runs again under the same batch id — and never more than twice.
    const oldRunBatch = `${crawlId}/${handle.firstExecutionRunId}/`;
    const { rows: leases } = await stack.pool.query<{ url: string }>(`SELECT DISTINCT url FROM test_lease_log WHERE crawl_id = $1 AND starts_with(batch_id, $2)`, [
      crawlId,
      oldRunBatch,
    ]);
    const checkedOutByResetRun = new Set(leases.map((row) => row.url));
    const fetchedTwice = pageUrls.filter((_, page) => fetchesAfterMidCrawlReset[page] === 2);
    assert.deepEqual(
      pageUrls.filter((_, page) => fetchesAfterMidCrawlReset[page] < 1 || fetchesAfterMidCrawlReset[page] > 2),
      [],
      'every page fetched once or twice',
    );
    assert.deepEqual(fetchedTwice.filter((url) => finishedBeforeReset.has(url) || !checkedOutByResetRun.has(url)), [], 'fetched twice only if the reset run had it checked out, unfinished');
    assert.equal(host.paths.length, requestsAfterMidCrawlReset, 'resetting the finished crawl fetches nothing, robots.txt included');

    const replay = await replayCrawl(stack.client, crawlId);
    assert.deepEqual(
      replay.executions.map(({ runId, status, resetFromRunId, ok }) => ({ runId, status, resetFromRunId, ok })),
      [
        { runId: handle.firstExecutionRunId, status: 'TERMINATED', resetFromRunId: null, ok: true },
        { runId: midCrawlRunId, status: 'COMPLETED', resetFromRunId: handle.firstExecutionRunId, ok: true },
        { runId: finishedRunId, status: 'COMPLETED', resetFromRunId: midCrawlRunId, ok: true },
      ],
      'the resets replay, in the order they were made',
    );
    t.diagnostic(
      `finished before the reset ${finishedBeforeReset.size} of ${pages}; checked out by the reset run ${checkedOutByResetRun.size}; fetched twice ${fetchedTwice.length}: ${fetchedTwice.map((url) => new URL(url).pathname).join(' ')}`,
    );
  });

  function resultOf(workflowId: string, runId: string) {
    return stack.client.workflow.getHandle<typeof crawlWorkflow>(workflowId, runId).result();
  }
});
