/**
 * The promise says "kill anything": these tests SIGKILL the services a crawl
 * depends on — a private Postgres, then a private Temporal dev server — in the
 * middle of a crawl, start them again, and check that every in-scope page is
 * still saved exactly once. Real processes, real kills; set
 * TCRAWL_TEST_VERBOSE=1 to see the timeline.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@temporalio/client';
import type { Pool } from 'pg';
import { pauseCrawl, resumeCrawl, retryFailedInRunningCrawl, startCrawl, workflowIdFor } from '../../src/client';
import { plaintextAccess, runtimeConfig, type RuntimeConfig } from '../../src/config';
import { connectClient, connectWorker } from '../../src/temporal-connection';
import { createPool, migrate } from '../../src/infra/database';
import { ensureEmbeddedPostgres, type EmbeddedPostgres } from '../../src/infra/embedded-postgres';
import { ensureTemporalServer, type TemporalServer } from '../../src/infra/temporal-server';
import { parseCrawlSpec } from '../../src/spec';
import { createCrawlWorker } from '../../src/worker';
import type { crawlWorkflow } from '../../workflows';
import { startChainSite } from '../fixtures/chain-site';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { localSiteDefaults, openStack, uniqueId, type TestStack } from '../helpers/stack';
import { freePort, killAndWait, privateDir } from '../helpers/processes';
import { waitFor } from '../helpers/worker-processes';
import { assertSavedExactlyOnce, frontierStates } from '../helpers/saved-once';

/** Pages saved before the kill: enough that the crawl is well under way, far from done. */
const savedBeforeKill = 40;
const resultTimeoutMs = 120_000;

const t0 = Date.now();
const timeline: string[] = [];
function log(line: string): void {
  const entry = `[service-crash +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`;
  timeline.push(entry);
  if (process.env.TCRAWL_TEST_VERBOSE) process.stderr.write(`${entry}\n`);
}

// The tests run at once: each kills services of its own (a private Postgres, a private Temporal server) under
// a crawl of its own site, and most of their time is the outage and the retries that wait it out.
describe('service crash: SIGKILL Postgres or the Temporal server mid-crawl', { concurrency: true }, () => {
  let stack: TestStack;
  /** Undo steps, run last-registered first. */
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    stack = await openStack();
  });

  after(async () => {
    for (let step = cleanups.pop(); step; step = cleanups.pop()) await step().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
    await stack?.close();
  });

  /** A site of a test's own: its requests are that test's crawl's only. */
  async function busySite(): Promise<FixtureSite> {
    const site = await startFixtureSite({ extraPages: 300, delayMs: 20 });
    cleanups.push(() => site.close());
    return site;
  }

  const crawlSpec = (site: FixtureSite) => parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 10, concurrency: 8 });

  it('Postgres killed: batches fail and are retried until it is back, and every page is saved exactly once', async () => {
    const dataDir = privateDir('tcrawl-pg-kill-');
    cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    const pgOptions = { config: configWith(dataDir), port: await freePort(), detached: false, log };
    let pg: EmbeddedPostgres = await ensureEmbeddedPostgres(pgOptions);
    assert.ok(pg.started, 'a private Postgres was started');
    cleanups.push(() => pg.stop()); // the one running at the end
    const pool = createPool(pg.databaseUrl, 20);
    cleanups.push(() => pool.end());
    await migrate(pool);

    const site = await busySite();
    const crawlId = uniqueId('pgkill');
    const taskQueue = uniqueId('tq');
    let leasedAtKill = 0;
    const worker = await createCrawlWorker({ connection: stack.nativeConnection, namespace: 'default', taskQueue, pool });
    const summary = await worker.runUntil(async () => {
      const handle = await startCrawl(stack.client, taskQueue, crawlId, crawlSpec(site));
      const atKill = await workInFlight(pool, crawlId);
      leasedAtKill = atKill.leased;
      const postmaster = postmasterPid(dataDir);
      await killAndWait(postmaster);
      log(`SIGKILLed the postmaster (pid ${postmaster}); frontier just before: ${JSON.stringify(atKill)}`);
      assert.ok(atKill.done < site.expectations.savedPaths.length, 'Postgres was killed mid-crawl');
      await sleep(3_000);
      pg = await ensureEmbeddedPostgres(pgOptions);
      assert.ok(pg.started, 'Postgres was started again');
      log(`Postgres restarted; frontier: ${JSON.stringify(await frontierStates(pool, crawlId))}`);
      return withTimeout(handle.result(), resultTimeoutMs, 'the crawl result after the Postgres restart', () => frontierStates(pool, crawlId));
    });
    log(`crawl finished: saved ${summary.saved}, retried ${summary.retried}, in ${(summary.elapsedMs / 1000).toFixed(1)}s`);
    await assertSavedExactlyOnce(pool, site, crawlId, summary, leasedAtKill, log);
  });

  it('Postgres killed while tcrawl retry-failed runs in a running crawl: the update waits for it, and the re-queued URLs are crawled once', async () => {
    const dataDir = privateDir('tcrawl-pg-kill-retry-');
    cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    const pgOptions = { config: configWith(dataDir), port: await freePort(), detached: false, log };
    let pg: EmbeddedPostgres = await ensureEmbeddedPostgres(pgOptions);
    cleanups.push(() => pg.stop());
    const pool = createPool(pg.databaseUrl, 20);
    cleanups.push(() => pool.end());
    await migrate(pool);
    const chain = await startChainSite(20, 30, 10);
    cleanups.push(() => chain.close());

    const crawlId = uniqueId('pgkill-retry');
    const taskQueue = uniqueId('tq');
    const worker = await createCrawlWorker({ connection: stack.nativeConnection, namespace: 'default', taskQueue, pool });
    const summary = await worker.runUntil(async () => {
      const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [chain.url('/')], batchSize: 5, concurrency: 2 }));
      await waitFor('the bad links to fail', async () => (await frontierStates(pool, crawlId)).failed === 30, 60_000);
      await pauseCrawl(stack.client, crawlId);
      chain.heal();
      const postmaster = postmasterPid(dataDir);
      await killAndWait(postmaster);
      log(`SIGKILLed the postmaster (pid ${postmaster}) before retry-failed`);
      const retried = retryFailedInRunningCrawl(stack.client, crawlId, { statuses: [404] }, 90_000);
      await sleep(3_000);
      pg = await ensureEmbeddedPostgres(pgOptions);
      log('Postgres restarted');
      assert.deepEqual(await retried, { requeued: 30 });
      await resumeCrawl(stack.client, crawlId);
      return withTimeout(handle.result(), resultTimeoutMs, 'the crawl result after retry-failed', () => frontierStates(pool, crawlId));
    });
    assert.equal(summary.failed, 0);
    assert.equal(summary.saved, 20 + 30);
    assert.equal(summary.run?.requeued, 30);
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.equal(rows[0].n, 50);
    assert.ok(chain.maxRequestsPerPage() <= 2, 'a bad link is fetched once failing and once healed');
  });

  it('Temporal server killed: the worker and the crawl resume when it is back, and every page is saved exactly once', async () => {
    const dataDir = privateDir('tcrawl-temporal-kill-');
    cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    const serverOptions = {
      config: configWith(dataDir),
      port: await freePort(),
      uiPort: await freePort(),
      dbFile: path.join(dataDir, 't.db'),
      detached: false,
      log,
    };
    let server: TemporalServer = await ensureTemporalServer(serverOptions);
    cleanups.push(() => server.stop()); // the one running at the end
    assert.ok(server.started && server.pid !== undefined, 'a private Temporal server was started');
    const connection = await connectClient(server.address, plaintextAccess);
    cleanups.push(() => connection.close());
    const nativeConnection = await connectWorker(server.address, plaintextAccess);
    cleanups.push(() => nativeConnection.close());
    const client = new Client({ connection });

    const site = await busySite();
    const crawlId = uniqueId('tkill');
    const taskQueue = uniqueId('tq');
    let leasedAtKill = 0;
    const worker = await createCrawlWorker({ connection: nativeConnection, namespace: 'default', taskQueue, pool: stack.pool });
    const summary = await worker.runUntil(async () => {
      const handle = await startCrawl(client, taskQueue, crawlId, crawlSpec(site));
      // A client already waiting for the result when the server dies, as `tcrawl crawl --wait` would be.
      const waiting = handle.result().then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      );
      const atKill = await workInFlight(stack.pool, crawlId);
      leasedAtKill = atKill.leased;
      const killed = server;
      await killAndWait(killed.pid!);
      await killed.stop(); // already gone: only unregisters its exit hook
      log(`SIGKILLed the Temporal server (pid ${killed.pid}); frontier just before: ${JSON.stringify(atKill)}`);
      assert.ok(atKill.done < site.expectations.savedPaths.length, 'the Temporal server was killed mid-crawl');
      await sleep(2_000);
      server = await ensureTemporalServer(serverOptions);
      assert.ok(server.started, 'the Temporal server was started again');
      log(`Temporal restarted (pid ${server.pid}); frontier: ${JSON.stringify(await frontierStates(stack.pool, crawlId))}`);

      const diagnose = () => frontierStates(stack.pool, crawlId);
      const first = await withTimeout(waiting, resultTimeoutMs, 'the crawl result on the connection open across the kill', diagnose);
      if (first.ok) {
        log('the result arrived on the client connection that was open across the kill');
        return first.value;
      }
      // The old connection gave up during the outage: wait for the result as a user would, on a new one.
      log(`waiting for the result on the old connection failed (${(first.error as Error).message}); using a fresh connection`);
      const fresh = await connectClient(server.address, plaintextAccess);
      cleanups.push(() => fresh.close());
      const again = new Client({ connection: fresh }).workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId));
      return withTimeout(again.result(), resultTimeoutMs, 'the crawl result on a fresh connection', diagnose);
    });
    log(`crawl finished: saved ${summary.saved}, retried ${summary.retried}, in ${(summary.elapsedMs / 1000).toFixed(1)}s`);
    await assertSavedExactlyOnce(stack.pool, site, crawlId, summary, leasedAtKill, log);
  });
});

function configWith(dataDir: string): RuntimeConfig {
  return { ...runtimeConfig(), dataDir };
}

/** The postmaster's pid: the first line of postmaster.pid in the cluster (`<dataDir>/postgres`, see embedded-postgres.ts). */
function postmasterPid(dataDir: string): number {
  const pid = Number(fs.readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0]);
  assert.ok(Number.isInteger(pid) && pid > 0, `postmaster.pid names a process (${pid})`);
  return pid;
}

/**
 * Waits until the crawl has saved `savedBeforeKill` pages and holds leases
 * (work checked out, so the kill lands on batches in flight); returns the
 * frontier's states at that moment.
 */
async function workInFlight(pool: Pool, crawlId: string): Promise<Record<string, number>> {
  let states: Record<string, number> = {};
  await waitFor(
    `${savedBeforeKill} saved pages while URLs are leased`,
    async () => {
      states = await frontierStates(pool, crawlId);
      return (states.done ?? 0) >= savedBeforeKill && (states.leased ?? 0) > 0;
    },
    60_000,
  );
  return states;
}

/** `promise`, or a failure after `ms` that says what was awaited, with the frontier's state and the timeline. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: string, diagnose: () => Promise<unknown>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void diagnose()
        .catch((err: unknown) => `(unavailable: ${(err as Error).message})`)
        .then((state) => reject(new Error(`timed out after ${ms / 1000}s waiting for ${what}; frontier: ${JSON.stringify(state)}\n${timeline.join('\n')}`)));
    }, ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
