import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowNotFoundError } from '@temporalio/client';
import { startCrawl, workflowIdFor } from '../../src/client';
import { crawlTables, deleteCrawl, type CrawlTable } from '../../src/results/delete';
import { parseCrawlSpec, type CrawlSpecInput } from '../../src/spec';
import { startFixtureSite } from '../fixtures/site';
import { tcrawl } from '../helpers/cli';
import { localSiteDefaults, startWorker, uniqueId, withStackAndSite, type TestStack } from '../helpers/stack';
import { waitFor } from '../helpers/worker-processes';
import type { FixtureSite } from '../fixtures/site';

async function rowCounts(stack: TestStack, crawlId: string): Promise<Record<CrawlTable, number>> {
  const counts = {} as Record<CrawlTable, number>;
  for (const table of crawlTables) counts[table] = (await stack.pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE crawl_id = $1`, [crawlId])).rows[0].n;
  return counts;
}

const noRows: Record<CrawlTable, number> = { items: 0, bodies: 0, pages: 0, links: 0, robots: 0, frontier: 0, crawls: 0 };

async function runIdsOf(stack: TestStack, crawlId: string): Promise<string[]> {
  const runs: string[] = [];
  for await (const execution of stack.client.workflow.list({ query: `WorkflowId = "${workflowIdFor(crawlId)}"` })) runs.push(execution.runId);
  return runs.sort();
}

/** Temporal deletes executions in the background (20–35 s on the dev server here): wait until each run is gone, at most 90 s after `deletedAtMs`. */
async function assertExecutionsGone(stack: TestStack, crawlId: string, runIds: string[], deletedAtMs: number): Promise<void> {
  for (const runId of runIds) {
    await waitFor(
      `run ${runId} of crawl ${crawlId} to be deleted`,
      () =>
        stack.client.workflow.getHandle(workflowIdFor(crawlId), runId).describe().then(
          () => false,
          (error: unknown) => {
            if (error instanceof WorkflowNotFoundError) return true;
            throw error;
          },
        ),
      deletedAtMs + 90_000 - Date.now(),
    );
  }
}

describe('tcrawl delete', () => {
  let stack: TestStack;
  let site: FixtureSite;
  let env: NodeJS.ProcessEnv;

  withStackAndSite((openedStack, openedSite) => {
    stack = openedStack;
    site = openedSite;
    env = { TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl };
  });

  /** Runs a crawl of the fixture site to its end on `taskQueue`. */
  async function crawlToEnd(crawlId: string, taskQueue: string, spec: Partial<CrawlSpecInput> = {}, continueAsNewAfterBatches?: number): Promise<void> {
    const worker = await startWorker(stack, taskQueue);
    const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], ...spec }), { continueAsNewAfterBatches });
    await worker.runUntil(handle.result());
  }

  /**
   * The finished crawl the first test deletes, and its runs: Temporal deletes executions in the background
   * (20–35 s), so the last test checks that they went, while the tests in between run.
   */
  let deleted: { crawlId: string; runIds: string[]; atMs: number } | undefined;

  it('deletes a finished crawl: its rows in every table and every execution (continued as new)', async () => {
    const crawlId = uniqueId('del');
    // An output that keeps bodies, so that every table has rows (the output itself is never written).
    const outputs = [{ type: 'mirror' as const, dir: 'unused' }];
    await crawlToEnd(crawlId, uniqueId('tq'), { batchSize: 2, items: { selector: '.product', fields: { name: '.name' } }, links: 'all', outputs }, 4);
    const runIds = await runIdsOf(stack, crawlId);
    assert.ok(runIds.length >= 3, `several executions, got ${runIds.length}`);
    const before = await rowCounts(stack, crawlId);
    assert.ok(Object.values(before).every((n) => n > 0), `rows in every table: ${JSON.stringify(before)}`);

    const deletedAtMs = Date.now();
    const run = await tcrawl(['delete', crawlId, '--json'], env);
    assert.equal(run.code, 0, run.stderr);
    const deletion = JSON.parse(run.stdout);
    assert.deepEqual(deletion.rows, before);
    assert.deepEqual([...deletion.executions].sort(), runIds);
    assert.equal(deletion.stopped, null);
    assert.match(run.stderr, /Temporal deletes the workflow executions in the background/);
    assert.deepEqual(await rowCounts(stack, crawlId), noRows);
    deleted = { crawlId, runIds, atMs: deletedAtMs };
  });

  it('refuses a running crawl; --force cancels it, waits for its batches, and deletes everything', async () => {
    const slowSite = await startFixtureSite({ extraPages: 400, delayMs: 50 });
    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const running = worker.run();
    try {
      const crawlId = uniqueId('running');
      await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [slowSite.url('/')], rate: 5, batchSize: 5 }));
      await waitFor('the crawl to save pages', async () => (await rowCounts(stack, crawlId)).pages >= 5, 60_000);

      const refused = await tcrawl(['delete', crawlId], env);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(refused.stderr, new RegExp(`Crawl ${crawlId} is running: stop it first with \`tcrawl cancel ${crawlId}\`, or use \`tcrawl delete ${crawlId} --force\``));
      assert.ok((await rowCounts(stack, crawlId)).pages >= 5, 'nothing deleted');

      const runIds = await runIdsOf(stack, crawlId);
      const forced = await tcrawl(['delete', crawlId, '--force', '--json'], env);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stderr, /is running: cancelling it/);
      const deletion = JSON.parse(forced.stdout);
      assert.equal(deletion.stopped, 'cancelled');
      assert.ok(deletion.rows.pages >= 5 && deletion.rows.crawls === 1, JSON.stringify(deletion.rows));
      assert.deepEqual(await rowCounts(stack, crawlId), noRows);
      // That Temporal then deletes the executions asked for is shown once, by the first test (it takes 20–35 s).
      assert.deepEqual([...deletion.executions].sort(), runIds);
      // A batch that was running when the crawl was cancelled must not write rows after the delete:
      // once none runs on the worker (the only one on this queue), whatever one wrote is there to see.
      await waitFor('no batch running on the worker', () => worker.getStatus().numInFlightActivities === 0, 30_000);
      assert.deepEqual(await rowCounts(stack, crawlId), noRows, 'no rows written after the delete');
    } finally {
      worker.shutdown();
      await running;
      await slowSite.close();
    }
  });

  it('--force terminates a crawl whose cancellation no worker processes, and says so', async () => {
    const crawlId = uniqueId('orphaned');
    // No worker on this task queue: the crawl is RUNNING in Temporal and nothing ever runs it.
    const handle = await startCrawl(stack.client, uniqueId('no-worker'), crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')] }));
    const messages: string[] = [];
    const deletion = await deleteCrawl(stack.pool, stack.client, crawlId, { force: true, cancelTimeoutMs: 2_000, log: (line) => messages.push(line) });
    assert.equal(deletion.stopped, 'terminated');
    assert.deepEqual(deletion.executions, [handle.firstExecutionRunId]);
    assert.match(messages.join('\n'), /No worker processed the cancellation within 2 s .*: terminating crawl/);
    assert.equal(deletion.executions.length, 1);
  });

  it('--finished-before picks crawls closed before the date and crawls left only in Postgres created before it; --dry-run deletes nothing', async () => {
    const taskQueue = uniqueId('retention');
    const [older, newer, orphanOld, orphanNew] = ['older', 'newer', 'orphan-old', 'orphan-new'].map((name) => uniqueId(name));
    await crawlToEnd(older, taskQueue, { maxPages: 3 });
    await sleep(50);
    const cutoff = new Date();
    await sleep(50);
    await crawlToEnd(newer, taskQueue, { maxPages: 3 });
    for (const [crawlId, createdAt] of [[orphanOld, new Date(cutoff.getTime() - 3_600_000)], [orphanNew, new Date()]] as const) {
      await stack.pool.query(`INSERT INTO crawls (crawl_id, spec, created_at) VALUES ($1, '{}', $2)`, [crawlId, createdAt]);
      await stack.pool.query(`INSERT INTO frontier (crawl_id, url, host, depth) VALUES ($1, 'http://gone.example/', 'gone.example', 0)`, [crawlId]);
    }
    const retentionEnv = { ...env, TCRAWL_TASK_QUEUE: taskQueue };
    const olderRuns = await runIdsOf(stack, older);
    const olderRows = await rowCounts(stack, older);

    const dryRun = await tcrawl(['delete', '--finished-before', cutoff.toISOString(), '--dry-run', '--json'], retentionEnv);
    assert.equal(dryRun.code, 0, dryRun.stderr);
    const listed = JSON.parse(dryRun.stdout);
    assert.equal(listed.dryRun, true);
    const picked = (result: { crawls: Array<{ crawlId: string; why: string }> }) => Object.fromEntries(result.crawls.filter((c) => [older, newer, orphanOld, orphanNew].includes(c.crawlId)).map((c) => [c.crawlId, c.why]));
    assert.deepEqual(picked(listed), { [older]: 'closed', [orphanOld]: 'no_workflow' });
    assert.deepEqual(listed.crawls.find((c: { crawlId: string }) => c.crawlId === older).rows, olderRows);
    assert.deepEqual(await rowCounts(stack, older), olderRows, 'a dry run deletes nothing');
    assert.deepEqual(await runIdsOf(stack, older), olderRuns);

    const text = await tcrawl(['delete', '--finished-before', cutoff.toISOString()], retentionEnv);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`^Deleted crawl ${older} \\(closed [^)]+\\): rows \\d+ items, 0 bodies, \\d+ pages, 0 links, 1 robots, \\d+ frontier, 1 crawls; 1 workflow execution$`, 'm'));
    assert.match(text.stdout, new RegExp(`^Deleted crawl ${orphanOld} \\(no workflow left; created [^)]+\\): rows 0 items, 0 bodies, 0 pages, 0 links, 0 robots, 1 frontier, 1 crawls; 0 workflow executions$`, 'm'));
    assert.doesNotMatch(text.stdout, new RegExp(`${newer}|${orphanNew}`));
    assert.deepEqual(await rowCounts(stack, older), noRows);
    assert.deepEqual(await rowCounts(stack, orphanOld), noRows);
    assert.ok((await rowCounts(stack, newer)).pages > 0, 'the crawl that finished after the date is kept');
    assert.equal((await rowCounts(stack, orphanNew)).crawls, 1, 'the Postgres-only crawl created after the date is kept');
  });

  it('exits 2 on bad input: an invalid date, neither or both of a crawl id and --finished-before, --force with --finished-before', async () => {
    for (const [args, message] of [
      [['delete', '--finished-before', 'last tuesday'], /"last tuesday" is not an ISO 8601 date/],
      [['delete', '--finished-before', '2025-01-31T10:00'], /not a time with an offset/],
      [['delete'], /a crawl id or --finished-before DATE/],
      [['delete', 'x', '--finished-before', '2025-01-31'], /a crawl id or --finished-before DATE/],
      [['delete', '--finished-before', '2025-01-31', '--force'], /--force goes with a crawl id/],
    ] as const) {
      const run = await tcrawl([...args], env);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, '');
    }
  });

  it('Temporal deletes every execution of the crawl deleted first, and then the crawl is unknown', async () => {
    assert.ok(deleted, 'the first test deleted a crawl');
    await assertExecutionsGone(stack, deleted.crawlId, deleted.runIds, deleted.atMs);

    const again = await tcrawl(['delete', deleted.crawlId], env);
    assert.equal(again.code, 2, 'a deleted crawl is unknown');
    assert.match(again.stderr, /No crawl with id ".*": neither this database nor Temporal knows it/);
  });
});
