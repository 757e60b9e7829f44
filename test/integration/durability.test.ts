import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { parseCrawlSpec } from '../../src/spec';
import { startCrawl } from '../../src/client';
import type { BatchResult, WindowBatchRequest, WindowBatchResult } from '../../src/crawl-types';
import { workflowVersion } from '../../workflows/versions';
import { loadHistory, recordedHistories } from '../fixtures/histories';
import type { FixtureSite } from '../fixtures/site';
import { localSiteDefaults, oneBatchRequest, pathOf, startWorker, uniqueId, withStackAndSite, type TestStack } from '../helpers/stack';

describe('durability', () => {
  let stack: TestStack;
  let site: FixtureSite;
  withStackAndSite((opened, fixture) => ([stack, site] = [opened, fixture]));

  it('a batch run twice (a worker died before reporting) leases, fetches and saves nothing twice', async () => {
    const crawlId = uniqueId('twice');
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/a'), site.url('/b')] });
    const { seeds, ...settings } = spec;
    const activities = createActivities({ pool: stack.pool });
    const env = new MockActivityEnvironment();
    await env.run(activities.seedFrontier, { crawlId, seeds, settings });
    const request = oneBatchRequest(spec, { crawlId }, site.origin);
    const first = (await env.run(activities.crawlBatch, request)) as BatchResult;
    const snapshot = async () =>
      (await stack.pool.query(`SELECT url, state, attempts, batch_id FROM frontier WHERE crawl_id = $1 ORDER BY url`, [crawlId])).rows;
    const pagesAfterFirst = (await stack.pool.query(`SELECT url, fetched_at FROM pages WHERE crawl_id = $1 ORDER BY url`, [crawlId])).rows;
    const frontierAfterFirst = await snapshot();
    const requestsAfterFirst = site.requests.length;

    const second = (await env.run(activities.crawlBatch, request)) as BatchResult;

    assert.equal(first.outcomes.saved, 2);
    assert.deepEqual(second.outcomes, first.outcomes, 'the retry reports the same outcomes');
    assert.equal(second.leased, first.leased);
    assert.deepEqual(await snapshot(), frontierAfterFirst, 'the frontier is unchanged');
    assert.deepEqual((await stack.pool.query(`SELECT url, fetched_at FROM pages WHERE crawl_id = $1 ORDER BY url`, [crawlId])).rows, pagesAfterFirst);
    assert.equal(site.requests.length, requestsAfterFirst, 'no page is fetched again');
  });

  it('a window (v3) leases what its paced host’s pages find while it lasts; run twice, it reports what its first attempt did and fetches nothing again', async () => {
    const crawlId = uniqueId('window-twice');
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], rate: 20 });
    const { seeds, ...settings } = spec;
    const activities = createActivities({ pool: stack.pool });
    const env = new MockActivityEnvironment();
    await env.run(activities.seedFrontier, { crawlId, seeds, settings });
    const { host, concurrency, ...rest } = oneBatchRequest(spec, { crawlId }, site.origin);
    const request: WindowBatchRequest = { ...rest, hosts: [{ host, limit: 100, concurrency, startAtMs: Date.now(), intervalMs: 50 }], untilMs: Date.now() + 2000, steeredSeq: 0 };
    const first = (await env.run(activities.crawlHosts, request)) as WindowBatchResult;
    const requestsAfterFirst = site.requests.length;
    const frontierAfterFirst = (await stack.pool.query(`SELECT url, state, attempts, batch_id FROM frontier WHERE crawl_id = $1 ORDER BY url`, [crawlId])).rows;

    assert.ok(first.hosts[host].leased > 1, `the window went on past its seed with the links it found (${first.hosts[host].leased} leased)`);
    const { saved, failed, skipped, retried } = first.outcomes;
    assert.equal(saved + failed + skipped + retried, first.hosts[host].leased, 'every URL it leased has an outcome');
    const second = (await env.run(activities.crawlHosts, request)) as WindowBatchResult;
    if (first.outcomes.retried === 0) {
      assert.deepEqual({ ...second.outcomes, retried: 0 }, { ...first.outcomes, retried: 0 }, 'the retry reports the same final outcomes');
      assert.equal(site.requests.length, requestsAfterFirst, 'no page is fetched again');
      assert.deepEqual((await stack.pool.query(`SELECT url, state, attempts, batch_id FROM frontier WHERE crawl_id = $1 ORDER BY url`, [crawlId])).rows, frontierAfterFirst);
    } else {
      // A URL the first attempt retried (a timeout on a loaded machine) went back to the queue, no longer the
      // batch's: the second attempt may lease and fetch it, and nothing else.
      const { retried } = first.outcomes;
      const finished = (o: WindowBatchResult['outcomes']) => o.saved + o.failed + o.skipped;
      assert.ok(finished(second.outcomes) >= finished(first.outcomes) && finished(second.outcomes) <= finished(first.outcomes) + retried, `outcomes ${JSON.stringify(second.outcomes)} after ${JSON.stringify(first.outcomes)}`);
      assert.ok(site.requests.length <= requestsAfterFirst + retried, `${site.requests.length - requestsAfterFirst} pages fetched again, ${retried} retried`);
    }
  });

  it('continues as new, carrying counters and schedule, and still saves every page once', async () => {
    const crawlId = uniqueId('can');
    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 2 });
    const handle = await startCrawl(stack.client, taskQueue, crawlId, spec, { continueAsNewAfterBatches: 4 });
    const summary = await worker.runUntil(handle.result());
    const runs = await countRuns(handle.workflowId);
    assert.ok(runs >= 3, `expected several runs, got ${runs}`);
    const { rows } = await stack.pool.query(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.deepEqual(rows.map((r) => pathOf(r.url)).sort(), [...site.expectations.savedPaths].sort());
    assert.equal(summary.saved, site.expectations.savedPaths.length, 'counters survive continue-as-new');
  });

  it('replays the recorded history of a crawl against the current workflow code', async () => {
    const crawlId = uniqueId('replay');
    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 4 });
    const handle = await startCrawl(stack.client, taskQueue, crawlId, spec);
    await worker.runUntil(handle.result());
    const history = await handle.fetchHistory();
    assert.ok((history.events?.length ?? 0) > 20);
    await Worker.runReplayHistory({ workflowsPath: require.resolve('../../workflows') }, history, handle.workflowId);
  });

  it('replays every committed history (test/fixtures/histories) against the current workflow code', async () => {
    const histories = recordedHistories();
    const versions = new Set(histories.map(({ version }) => version));
    for (let version = 0; version <= workflowVersion; version++) {
      assert.ok(versions.has(version), `no recorded history of workflow version ${version} (test/fixtures/histories/v${version}-*.json)`);
    }
    // One bundle of the workflow code for all of them; the workflow id names the file.
    const replays = histories.map(({ file }) => ({ workflowId: path.basename(file), history: loadHistory(file) }));
    const failures: string[] = [];
    for await (const { workflowId, error } of Worker.runReplayHistories({ workflowsPath: require.resolve('../../workflows') }, replays)) {
      if (error) failures.push(`${workflowId}: ${error.message}`);
    }
    assert.deepEqual(failures, [], 'every recorded history replays');
  });

  async function countRuns(workflowId: string): Promise<number> {
    let runs = 0;
    for await (const _ of stack.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs++;
    return runs;
  }
});
