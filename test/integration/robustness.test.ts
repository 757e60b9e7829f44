/**
 * A crawl never wedges, loses or duplicates: bugs of our own inside a batch,
 * a batch that keeps failing, a worker on the wrong database, a reused crawl
 * id, a reset workflow. Each test names the defect it guards against.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createActivities } from '../../activities';
import { createCrawlBatch } from '../../activities/crawl-batch';
import { CrawlStore } from '../../activities/crawl-store';
import { HostPacer } from '../../activities/host-pacer';
import { RobotsCache, type RobotsVerdict } from '../../activities/robots-cache';
import { fetchRobotsTxt } from '../../activities/robots-fetch';
import { startCrawl, workflowIdFor } from '../../src/client';
import type { CrawlSettings, CrawlSummary, SeedResult } from '../../src/crawl-types';
import { TcrawlError } from '../../src/errors';
import { createPool, migrate } from '../../src/infra/database';
import { parseCrawlSpec, type CrawlSpecInput } from '../../src/spec';
import type { crawlWorkflow } from '../../workflows';
import type { FixtureSite } from '../fixtures/site';
import { localSiteDefaults, oneBatchRequest, pathOf, runCrawl, uniqueId, withStackAndSite, type TestStack } from '../helpers/stack';

describe('robustness', () => {
  let stack: TestStack;
  let site: FixtureSite;
  withStackAndSite((opened, fixture) => ([stack, site] = [opened, fixture]));

  /** Runs a crawl with a worker whose batches use `robots` (a RobotsCache that misbehaves on purpose). */
  async function crawlWithRobots(robots: RobotsCache, spec: Partial<CrawlSpecInput> = {}): Promise<{ crawlId: string; summary: CrawlSummary; workflowId: string }> {
    const crawlId = uniqueId('robust');
    const taskQueue = uniqueId('tq');
    const { pool } = stack;
    const worker = await Worker.create({
      connection: stack.nativeConnection,
      taskQueue,
      workflowsPath: require.resolve('../../workflows'),
      activities: { ...createActivities({ pool }), ...createCrawlBatch({ pool, robots, crawls: new CrawlStore(pool), hostPacer: new HostPacer(pool) }) },
    });
    const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], ...spec }));
    return { crawlId, summary: await worker.runUntil(handle.result()), workflowId: handle.workflowId };
  }

  const frontierRow = async (crawlId: string, path: string) =>
    (await stack.pool.query(`SELECT state, reason, detail, attempts FROM frontier WHERE crawl_id = $1 AND url = $2`, [crawlId, site.url(path)])).rows[0];

  it('regression: a Postgres connection that dies while its pool client is checked out (mid-transaction) no longer crashes the worker process', async () => {
    const pool = createPool(stack.databaseUrl, 2);
    try {
      const client = await pool.connect();
      await client.query('BEGIN');
      // As a SIGKILLed postmaster leaves it (seen in the service-crash suite): the socket ends with no word from the server.
      const ended = new Promise((resolve) => client.once('end', resolve));
      (client as unknown as { connection: { stream: Socket } }).connection.stream.destroy();
      await ended;
      await assert.rejects(client.query('SELECT 1'), 'the next query fails, as the activity that made it is retried');
      client.release(true);
      assert.equal((await pool.query<{ one: number }>('SELECT 1 AS one')).rows[0].one, 1, 'the pool goes on with a new connection');
    } finally {
      await pool.end();
    }
  });

  it('a URL whose processing throws (a bug of ours) fails with reason internal and its message; its host and the crawl go on', async () => {
    class PoisonedRobots extends RobotsCache {
      override verdict(crawlId: string, url: string, settings: CrawlSettings, beforeRequest?: (url: string) => Promise<void>): Promise<RobotsVerdict> {
        if (pathOf(url) === '/b') throw new TypeError('boom: a bug in our own code');
        return super.verdict(crawlId, url, settings, beforeRequest);
      }
    }
    const { crawlId, summary } = await crawlWithRobots(new PoisonedRobots(stack.pool, fetchRobotsTxt), { maxRetries: 2 });

    const row = await frontierRow(crawlId, '/b');
    assert.equal(row.state, 'failed');
    assert.equal(row.reason, 'internal');
    assert.match(row.detail, /boom: a bug in our own code/);
    assert.equal(row.attempts, 2, 'retried within maxRetries, then failed');
    const saved = (await stack.pool.query(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId])).rows.map((r) => pathOf(r.url));
    assert.deepEqual(saved.sort(), site.expectations.savedPaths.filter((p) => p !== '/b').sort(), 'every other page saved');
    assert.equal(summary.byReason.internal, 1);
  });

  it('a batch that fails every attempt fails for good: its leases come back, the failure is in status, and the crawl completes', async () => {
    let failuresLeft = 5;
    class BrokenRobots extends RobotsCache {
      override policy(...args: Parameters<RobotsCache['policy']>): ReturnType<RobotsCache['policy']> {
        if (failuresLeft-- > 0) throw new TypeError('robots exploded');
        return super.policy(...args);
      }
    }
    const { crawlId, summary, workflowId } = await crawlWithRobots(new BrokenRobots(stack.pool, fetchRobotsTxt));

    assert.ok(failuresLeft <= 0, 'the first batch failed all its attempts');
    const failure = summary.batchFailures?.[0];
    assert.equal(failure?.code, 'TCRAWL_BATCH_FAILED');
    assert.match(failure!.message, /robots exploded/);
    const saved = await stack.pool.query(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.equal(saved.rows[0].n, site.expectations.savedPaths.length, 'every page saved');
    assert.equal(summary.saved, saved.rows[0].n, 'counters equal the rows');
    assert.equal((await frontierRow(crawlId, '/')).attempts >= 1, true, 'the released seed was counted as an attempt');
    const history = await stack.client.workflow.getHandle(workflowId).fetchHistory();
    assert.ok(history.events?.some((e) => e.markerRecordedEventAttributes?.markerName === 'core_patch'), 'the v1 failure handling ran behind its patch');
  });

  it('regression: workers on one task queue pointed at different databases split a crawl — an activity on the wrong database fails naming both', async () => {
    const otherName = `tcrawl_other_${randomUUID().slice(0, 8)}`;
    await stack.pool.query(`CREATE DATABASE ${otherName}`);
    const otherUrl = new URL(stack.databaseUrl);
    otherUrl.pathname = `/${otherName}`;
    const otherPool = createPool(otherUrl.href, 2);
    try {
      await migrate(otherPool);
      const crawlId = uniqueId('wrongdb');
      const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')] });
      const { seeds, ...settings } = spec;
      const env = new MockActivityEnvironment();
      const token = randomUUID();
      const seeded = (await env.run(createActivities({ pool: stack.pool }).seedFrontier, { crawlId, token, seeds, settings })) as SeedResult;
      const request = oneBatchRequest(spec, { crawlId, token, database: seeded.database }, site.origin);
      const other = createActivities({ pool: otherPool });
      const refused = (error: unknown) => {
        assert.ok(error instanceof ApplicationFailure, String(error));
        assert.equal(error.type, 'TCRAWL_WRONG_DATABASE');
        assert.equal(error.nonRetryable, true);
        assert.ok(error.message.includes(otherName), `names this worker's database: ${error.message}`);
        assert.ok(error.message.includes(seeded.database!), `names the crawl's database: ${error.message}`);
        return true;
      };
      await assert.rejects(env.run(other.crawlBatch, request), refused);
      await assert.rejects(env.run(other.reconcileFrontier, request), refused);
      // The same id in the other database, but another crawl (another token): refused too.
      await env.run(other.seedFrontier, { crawlId, token: randomUUID(), seeds, settings });
      await assert.rejects(env.run(other.crawlBatch, request), refused);
      const leased = await otherPool.query(`SELECT count(*)::int AS n FROM frontier WHERE crawl_id = $1 AND state <> 'queued'`, [crawlId]);
      assert.equal(leased.rows[0].n, 0, 'nothing was leased in the wrong database');
    } finally {
      await otherPool.end();
      await stack.pool.query(`DROP DATABASE IF EXISTS ${otherName} WITH (FORCE)`);
    }
  });

  it('settings carried by a crawl started before tokens get the defaults of keys added since (fetchTimeoutMs)', async () => {
    const spec = parseCrawlSpec({ seeds: [site.url('/')], fetchTimeoutMs: 5000 });
    const { settings, scope } = oneBatchRequest(spec, { crawlId: uniqueId('old') }, site.origin);
    const { fetchTimeoutMs: _dropped, ...older } = settings;
    const loaded = await new CrawlStore(stack.pool).load({ crawlId: uniqueId('old') }, { settings: older as CrawlSettings, scope });
    assert.equal(loaded.settings.fetchTimeoutMs, 120_000);
    assert.equal(loaded.settings.userAgent, spec.userAgent, 'the rest as carried');
  });

  it('regression: reusing --id of a crawl started a run that saved 0 — a used crawl id is refused, naming retry-failed', async () => {
    const crawlId = uniqueId('reuse');
    const taskQueue = uniqueId('tq-nobody');
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')] });
    const first = await startCrawl(stack.client, taskQueue, crawlId, spec);
    try {
      await assert.rejects(startCrawl(stack.client, taskQueue, crawlId, spec), (error) => {
        assert.ok(error instanceof TcrawlError);
        assert.equal(error.code, 'TCRAWL_CRAWL_EXISTS');
        assert.match(error.message, /retry-failed/);
        return true;
      });
    } finally {
      await first.terminate('test over');
    }
    await assert.rejects(startCrawl(stack.client, taskQueue, crawlId, spec), /is taken/, 'a closed crawl keeps its id too');
  });

  it('regression: a finished crawl reset to its first workflow task reported 0 pages saved — a new execution reports the true totals and fetches nothing again', async () => {
    const crawlId = uniqueId('reset');
    const first = await runCrawl(stack, { seeds: [site.url('/')] }, crawlId);
    const requestsBefore = site.requests.length;
    const workflowId = workflowIdFor(crawlId);
    const handle = stack.client.workflow.getHandle<typeof crawlWorkflow>(workflowId);
    const history = await handle.fetchHistory();
    const firstTask = history.events!.find((e) => e.workflowTaskCompletedEventAttributes)!;
    const description = await handle.describe();
    const reset = await stack.client.workflowService.resetWorkflowExecution({
      namespace: 'default',
      workflowExecution: { workflowId, runId: description.runId },
      reason: 'test: reset to the first workflow task',
      workflowTaskFinishEventId: firstTask.eventId,
      requestId: randomUUID(),
    });
    const worker = await Worker.create({
      connection: stack.nativeConnection,
      taskQueue: description.taskQueue,
      workflowsPath: require.resolve('../../workflows'),
      activities: createActivities({ pool: stack.pool }),
    });
    const again = await worker.runUntil(stack.client.workflow.getHandle<typeof crawlWorkflow>(workflowId, reset.runId!).result());

    assert.equal(again.saved, first.saved, 'the reset run counts what is in the frontier');
    assert.equal(again.failed, first.failed);
    assert.equal(again.skipped, first.skipped);
    assert.deepEqual(
      site.requests.slice(requestsBefore).map((r) => r.path),
      [],
      'nothing fetched again',
    );
    const pages = await stack.pool.query(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.equal(pages.rows[0].n, first.saved);
  });
});
