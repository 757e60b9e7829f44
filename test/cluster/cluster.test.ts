/**
 * tcrawl on a real Temporal server, as in production: the official
 * `temporal-server` built from go.temporal.io/server (cached in
 * ~/.cache/tcrawl), its persistence and visibility in Postgres databases of
 * its own set up by `temporal-sql-tool`, run from deploy/temporal/config.yaml.
 * Three `tcrawl worker` processes crawl a local site; one is SIGKILLed and the
 * server is SIGKILLed and started again mid-crawl; every page is saved once.
 * A worker SIGTERMed mid-crawl drains (exits 0 within its drain bound) and a
 * second worker finishes that crawl, every page saved once.
 *
 * The server's ports: TCRAWL_TEST_CLUSTER_PORT and the 9 after it, else 10
 * free ones below 32768. Figures (schema setup, start, restart, crawl) go to stderr.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import { startCrawl, workflowIdFor } from '../../src/client';
import { plaintextAccess, runtimeConfig } from '../../src/config';
import { connectClient } from '../../src/temporal-connection';
import type { CrawlSummary } from '../../src/crawl-types';
import { findTemporalClusterBinaries } from '../../src/infra/temporal-cluster-binaries';
import { setupClusterDatabases, startTemporalCluster, type TemporalCluster, type TemporalClusterOptions } from '../../src/infra/temporal-cluster';
import { parseCrawlSpec } from '../../src/spec';
import { drainBoundMs } from '../../src/worker';
import type { crawlWorkflow } from '../../workflows';
import { searchAttributeTypes } from '../../workflows/search-attributes';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { clusterPorts, dropClusterDatabases, freshClusterDatabases } from '../helpers/cluster';
import { killAndWait, privateDir } from '../helpers/processes';
import { assertSavedExactlyOnce, frontierStates } from '../helpers/saved-once';
import { localSiteDefaults, openStack, uniqueId, type TestStack } from '../helpers/stack';
import { kill, runTcrawl, signalAndWait, spawnWorkers, stderrTail, waitFor, waitForPollers, workerEnv } from '../helpers/worker-processes';

/** Saved pages at which a worker is SIGKILLed, and then the server. */
const savedAtWorkerKill = 100;
const savedAtServerKill = 400;
const resultTimeoutMs = 300_000;
/** Slack on top of the worker's drain bound on a loaded 2-core machine: closing connections, the process's exit. */
const drainMarginMs = 3_000;

const t0 = Date.now();
function log(line: string): void {
  process.stderr.write(`[cluster +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
}

/** How long `fn` took, logged as `what`. */
async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  const value = await fn();
  log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)}s`);
  return value;
}

async function tablesIn(postgresUrl: string, database: string): Promise<string[]> {
  const url = new URL(postgresUrl);
  url.pathname = `/${database}`;
  const client = new PgClient({ connectionString: url.href });
  await client.connect();
  try {
    const { rows } = await client.query<{ t: string }>(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public'`);
    return rows.map((r) => r.t);
  } finally {
    await client.end();
  }
}

describe('a Temporal cluster on Postgres', () => {
  const postgresUrl = process.env.DATABASE_URL!;
  const databases = freshClusterDatabases(postgresUrl, 'test');
  const dataDir = privateDir('tcrawl-cluster-');
  const cleanups: (() => Promise<unknown>)[] = [];
  let options: TemporalClusterOptions;
  let cluster: TemporalCluster;
  let stack: TestStack;
  let site: FixtureSite;

  before(async () => {
    assert.ok(postgresUrl, 'DATABASE_URL is set (run this with npm run test:cluster)');
    cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    const binaries = await timed('build or find the server', () => findTemporalClusterBinaries(runtimeConfig(), log));
    cleanups.push(() => dropClusterDatabases(databases));
    await timed('set up the persistence and visibility schemas', () => setupClusterDatabases(binaries, databases, log));
    await timed('set them up again (nothing to do)', () => setupClusterDatabases(binaries, databases, log));
    options = { binaries, databases, ports: await clusterPorts(), logFile: path.join(dataDir, 'temporal-server.log'), log };
    cluster = await timed('start the server', () => startTemporalCluster(options));
    cleanups.push(() => cluster.stop()); // the one running at the end
    stack = await openStack(cluster.address);
    cleanups.push(() => stack.close());
    site = await startFixtureSite({ extraPages: 1500, delayMs: 20 });
    cleanups.push(() => site.close());
  });

  after(async () => {
    for (let step = cleanups.pop(); step; step = cleanups.pop()) await step().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
  });

  it('keeps its persistence and visibility in Postgres', async () => {
    const persistence = await tablesIn(postgresUrl, databases.persistence);
    for (const table of ['executions', 'current_executions', 'history_node', 'history_tree', 'namespaces', 'shards', 'schema_version']) assert.ok(persistence.includes(table), `${databases.persistence} has ${table}`);
    const visibility = await tablesIn(postgresUrl, databases.visibility);
    for (const table of ['executions_visibility', 'schema_version']) assert.ok(visibility.includes(table), `${databases.visibility} has ${table}`);
    const { serverVersion } = await stack.client.workflowService.getSystemInfo({});
    log(`server ${serverVersion}`);
    assert.equal(`v${serverVersion}`, options.binaries.version);
  });

  it('tcrawl setup registers a namespace the server lacks, then its search attributes', async () => {
    const namespace = uniqueId('tcrawl');
    const env = { ...workerEnv(stack, uniqueId('tq')), TEMPORAL_NAMESPACE: namespace };
    const first = await runTcrawl(['setup'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, `Registered namespace ${namespace} (retention 3 days).\nRegistered ${Object.keys(searchAttributeTypes).join(', ')} in namespace ${namespace}.\n`);
    const again = await runTcrawl(['setup'], env);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^Namespace .* has tcrawl's search attributes already/);
  });

  it('3 worker processes, one SIGKILLed and the server SIGKILLed and restarted mid-crawl: every page saved exactly once', async () => {
    const taskQueue = uniqueId('tq');
    const env = workerEnv(stack, taskQueue);
    const setup = await runTcrawl(['setup'], env);
    assert.equal(setup.code, 0, setup.stderr);
    assert.match(setup.stdout, /Registered TcrawlCrawlId, .* in namespace default/);

    const workers = spawnWorkers(stack, taskQueue, 3);
    cleanups.push(() => Promise.all(workers.map(kill)));
    await waitForPollers(stack, taskQueue, workers);
    const crawlId = uniqueId('cluster');
    const started = Date.now();
    await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 10, concurrency: 8, maxPages: 10_000 }), { searchAttributes: true });
    const total = site.expectations.savedPaths.length;

    const atWorkerKill = await underWay(crawlId, savedAtWorkerKill);
    await kill(workers[0]);
    log(`SIGKILLed worker ${workers[0].pid}; frontier just before: ${JSON.stringify(atWorkerKill)}`);

    const atServerKill = await underWay(crawlId, savedAtServerKill);
    await killAndWait(cluster.pid);
    await cluster.stop(); // already gone: only unregisters its exit hook
    log(`SIGKILLed the Temporal server (pid ${cluster.pid}); frontier just before: ${JSON.stringify(atServerKill)}`);
    assert.ok((atServerKill.done ?? 0) < total, 'the server was killed mid-crawl');
    await sleep(2_000);
    cluster = await timed('restart the server', () => startTemporalCluster(options));

    const summary = await resultOnFreshConnection(crawlId);
    log(`crawl of ${total} pages: ${((Date.now() - started) / 1000).toFixed(1)}s; saved ${summary.saved}, retried ${summary.retried}`);
    for (const worker of workers.slice(1)) assert.equal(worker.exitCode, null, `worker ${worker.pid} is still running:\n${stderrTail(worker)}`);
    await assertSavedExactlyOnce(stack.pool, site, crawlId, summary, (atWorkerKill.leased ?? 0) + (atServerKill.leased ?? 0), log);
    await assertVisible(crawlId, summary);
  });

  it('a worker SIGTERMed mid-crawl drains: exits 0 within its drain bound, and after another worker finishes the crawl every page is saved once', async () => {
    const drainSite = await startFixtureSite({ extraPages: 600, delayMs: 20 });
    cleanups.push(() => drainSite.close());
    const taskQueue = uniqueId('tq');
    const [draining] = spawnWorkers(stack, taskQueue, 1);
    cleanups.push(() => kill(draining));
    await waitForPollers(stack, taskQueue, [draining]);
    const crawlId = uniqueId('drain');
    await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [drainSite.url('/')], batchSize: 10, concurrency: 8, maxPages: 10_000 }), { searchAttributes: true });

    const atSignal = await underWay(crawlId, savedAtWorkerKill);
    const { elapsedMs, code } = await signalAndWait(draining, 'SIGTERM', drainBoundMs + drainMarginMs);
    const afterExit = await frontierStates(stack.pool, crawlId);
    log(`SIGTERMed worker ${draining.pid}: exited ${code} after ${elapsedMs} ms; frontier at the signal ${JSON.stringify(atSignal)}, after its exit ${JSON.stringify(afterExit)}`);
    assert.equal(code, 0, stderrTail(draining));
    assert.match(stderrTail(draining), /Worker stopped: its batches finished or were handed back to Temporal/);
    assert.ok((afterExit.done ?? 0) < drainSite.expectations.savedPaths.length, 'the crawl was not over when the worker left');

    const [finisher] = spawnWorkers(stack, taskQueue, 1);
    cleanups.push(() => kill(finisher));
    const summary = await resultOnFreshConnection(crawlId);
    log(`drained crawl finished by worker ${finisher.pid}: saved ${summary.saved}, retried ${summary.retried}`);
    await assertSavedExactlyOnce(stack.pool, drainSite, crawlId, summary, atSignal.leased ?? 0, log);
  });

  /** Waits until `saved` pages are saved while URLs are leased (work checked out, for a kill to land on); the frontier then. */
  async function underWay(crawlId: string, saved: number): Promise<Record<string, number>> {
    let states: Record<string, number> = {};
    await waitFor(`${saved} saved pages while URLs are leased`, async () => {
      states = await frontierStates(stack.pool, crawlId);
      return (states.done ?? 0) >= saved && (states.leased ?? 0) > 0;
    }, 120_000);
    return states;
  }

  /** The crawl's result, asked on a connection opened after the restart, as a user would. */
  async function resultOnFreshConnection(crawlId: string): Promise<CrawlSummary> {
    const connection = await connectClient(cluster.address, plaintextAccess);
    cleanups.push(() => connection.close());
    const handle = new Client({ connection }).workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => void frontierStates(stack.pool, crawlId).then((s) => reject(new Error(`no result after ${resultTimeoutMs / 1000}s; frontier ${JSON.stringify(s)}`))), resultTimeoutMs);
    });
    try {
      return await Promise.race([handle.result(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The finished crawl is in the visibility database, found by its search attributes through the server's list API. */
  async function assertVisible(crawlId: string, summary: CrawlSummary): Promise<void> {
    const query = `TcrawlCrawlId = "${crawlId}" AND TcrawlPhase = "finished" AND TcrawlSaved = ${summary.saved}`;
    await waitFor(`the list API to find ${query}`, async () => {
      for await (const execution of stack.client.workflow.list({ query })) if (execution.status.name === 'COMPLETED') return true;
      return false;
    }, 30_000);
    const url = new URL(postgresUrl);
    url.pathname = `/${databases.visibility}`;
    const pg = new PgClient({ connectionString: url.href });
    await pg.connect();
    try {
      const { rows } = await pg.query(`SELECT count(*)::int AS n FROM executions_visibility WHERE workflow_id = $1`, [workflowIdFor(crawlId)]);
      assert.ok(rows[0].n >= 1, 'the crawl has a row in executions_visibility');
    } finally {
      await pg.end();
    }
  }
});
