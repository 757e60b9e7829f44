/**
 * SIGINT/SIGTERM to the real bin (`crawl --wait`, `worker`): the process
 * ends within the drain bound, its batches' leases come back through
 * Temporal's retry of the same batch id, and the crawl completes on a fresh
 * worker with every page saved once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { WorkflowHandle } from '@temporalio/client';
import { startCrawl, workflowIdFor } from '../../src/client';
import { isBatchActivity, type CrawlSummary } from '../../src/crawl-types';
import { parseCrawlSpec } from '../../src/spec';
import { drainBoundMs, shutdownGraceMs } from '../../src/worker';
import type { crawlWorkflow } from '../../workflows';
import { localSiteDefaults, openStack, startWorker, uniqueId, type TestStack } from '../helpers/stack';
import { exitOf, kill, signalAndWait, spawnWorkers, stderrTail, tcrawlBin, waitFor, waitForPollers, workerEnv } from '../helpers/worker-processes';

/** Slack on top of a bound for a loaded 2-core machine: process exit, closing connections. */
const marginMs = 3_000;
/** Worker start-up, the drain, Temporal's retry of abandoned batches (heartbeat timeout, back-off), the rest of the crawl. */
const testTimeoutMs = 180_000;

describe('signals: crawl --wait and worker stop within the drain bound', () => {
  let stack: TestStack;
  const procs: ChildProcess[] = [];
  const closers: Array<() => Promise<void>> = [];

  before(async () => {
    stack = await openStack();
  });

  after(async () => {
    await Promise.all(procs.map(kill));
    for (const close of closers.reverse()) await close();
    await stack?.close();
  });

  async function site(opts: SlowSiteOptions): Promise<SlowSite> {
    const s = await startSlowSite(opts);
    closers.push(() => s.close());
    return s;
  }

  // Each of these waits out a bound (the grace time, the drain bound, Postgres' connection timeout) with
  // its own site, crawl, task queue and processes: they wait at once. The two that must exit within the
  // 3 s margin of the signal run after them, alone.
  describe('with a batch in flight to drain', { concurrency: true }, () => {
    it(
      'regression: `crawl --wait` ignored SIGTERM for over three minutes while its batch kept failing (only a second signal ended it)',
      { timeout: testTimeoutMs },
      async () => {
        // Postgres behind a proxy that first drops every connection (each attempt of the batch fails and
        // is retried) and then stops answering (the attempt in flight hangs in a query no cancellation reaches).
        const proxy = await startPostgresProxy(stack.databaseUrl);
        closers.push(() => proxy.close());
        const s = await site({ pages: 30, delayMs: 300 });
        const crawlId = uniqueId('sig-db');
        const taskQueue = uniqueId('tq');
        const crawl = spawnTcrawl(['crawl', s.url('/'), '--allow-private', '--rate', '0', '--batch-size', '5', '--max-depth', '20', '--id', crawlId, '--wait'], {
          ...workerEnv(stack, taskQueue),
          DATABASE_URL: proxy.databaseUrl,
        });
        procs.push(crawl.child);
        await waitFor('the first pages to be saved', async () => (await savedPages(stack, crawlId)) >= 2, 60_000);
        // Cut Postgres while a batch holds leases (with Postgres cut they cannot change), so that batch is the one failing.
        await waitFor(
          'a batch holding leases when Postgres is cut',
          async () => {
            if ((await leasedUrls(stack, crawlId)).length === 0) return false;
            proxy.drop();
            if ((await leasedUrls(stack, crawlId)).length > 0) return true;
            proxy.restore();
            return false;
          },
          30_000,
        );
        const handle = stack.client.workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId));
        await waitFor('a batch to fail and be retried', async () => (await pendingBatches(handle)).some((b) => b.attempt >= 2), 30_000);
        const stalledAtMs = Date.now();
        proxy.stall();
        await waitFor('a retry of the batch to hang on Postgres', async () => (await pendingBatches(handle)).some((b) => b.startedAtMs > stalledAtMs), 30_000);
        const leasedAtSignal = await leasedUrls(stack, crawlId);
        assert.ok(leasedAtSignal.length > 0, 'the failing batch holds leases');

        const { elapsedMs, code } = await signalAndWait(crawl.child, 'SIGTERM', drainBoundMs + marginMs);
        process.stderr.write(`[cli-signals] crawl --wait, batch failing/hung on Postgres: exited ${code} ${elapsedMs} ms after SIGTERM\n`);
        assert.equal(code, 143, crawl.stderr());
        assertLeftRunning(crawl.stderr(), crawlId, taskQueue);
        // Hung in a connect, the batch gives up at the pool's 10 s connection timeout and the drain ends cleanly;
        // hung in a query on an open connection, it is left behind at the drain bound. Either way the process is gone in time.

        await proxy.close();
        const summary = await finishOnFreshWorker(stack, taskQueue, crawlId);
        await assertCompleted(stack, crawlId, summary, s.pagePaths);
        await assertLeasesCameBack(stack, crawlId, leasedAtSignal);
      },
    );

    it('crawl --wait on SIGTERM while its batch waits on a slow site: exits within the grace time, the crawl completes on a fresh worker', { timeout: testTimeoutMs }, async () => {
      const s = await site({ pages: 12, delayMs: 50, stalled: true });
      const crawlId = uniqueId('sig-slow');
      const taskQueue = uniqueId('tq');
      const crawl = spawnTcrawl(['crawl', s.url('/'), '--allow-private', '--rate', '0', '--batch-size', '4', '--max-depth', '20', '--id', crawlId, '--wait'], workerEnv(stack, taskQueue));
      procs.push(crawl.child);
      await waitFor('a batch to wait on the site', () => s.held() >= 1, 60_000);
      const leasedAtSignal = await leasedUrls(stack, crawlId);

      // The batch cannot finish: it is cancelled once the grace time is over, and stops at once.
      const { elapsedMs, code } = await signalAndWait(crawl.child, 'SIGTERM', shutdownGraceMs + marginMs);
      process.stderr.write(`[cli-signals] crawl --wait, batch waiting on the site: exited ${code} ${elapsedMs} ms after SIGTERM\n`);
      assert.equal(code, 143, crawl.stderr());
      assertLeftRunning(crawl.stderr(), crawlId, taskQueue);
      assert.doesNotMatch(crawl.stderr(), /left behind/, 'the cancelled batch stopped in time');

      s.release();
      const summary = await finishOnFreshWorker(stack, taskQueue, crawlId);
      await assertCompleted(stack, crawlId, summary, s.pagePaths);
      await assertLeasesCameBack(stack, crawlId, leasedAtSignal);
    });

    it('`tcrawl worker` on SIGTERM with a batch in flight exits 0 within the bound; the next worker fetches that batch\'s URLs', { timeout: testTimeoutMs }, async () => {
      const s = await site({ pages: 12, delayMs: 50, stalled: true });
      const crawlId = uniqueId('sig-worker');
      const taskQueue = uniqueId('tq');
      const [worker] = spawnWorkers(stack, taskQueue, 1);
      procs.push(worker);
      await waitForPollers(stack, taskQueue, [worker]);
      await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [s.url('/')], batchSize: 4, concurrency: 2 }));
      await waitFor('a batch to wait on the site', () => s.held() >= 1, 60_000);
      const leasedAtSignal = await leasedUrls(stack, crawlId);
      const signalledAtMs = Date.now();

      const { elapsedMs, code } = await signalAndWait(worker, 'SIGTERM', drainBoundMs + marginMs);
      process.stderr.write(`[cli-signals] tcrawl worker, batch in flight: exited ${code} ${elapsedMs} ms after SIGTERM\n`);
      assert.equal(code, 0, stderrTail(worker));
      assert.match(stderrTail(worker), /Worker stopped: its batches finished or were handed back to Temporal/);

      s.release();
      const summary = await finishOnFreshWorker(stack, taskQueue, crawlId);
      await assertCompleted(stack, crawlId, summary, s.pagePaths);
      await assertLeasesCameBack(stack, crawlId, leasedAtSignal);
      const fetchedAfter = new Set(s.requests.filter((r) => r.atMs > signalledAtMs).map((r) => r.path));
      for (const { url } of leasedAtSignal) assert.ok(fetchedAfter.has(new URL(url).pathname), `${url}, leased at the signal, fetched by the next worker`);
    });
  });

  it('crawl --wait beside a fleet (no worker of its own) exits at once on SIGTERM; the fleet completes the crawl', { timeout: testTimeoutMs }, async () => {
    const s = await site({ pages: 12, delayMs: 50, stalled: true });
    const crawlId = uniqueId('sig-fleet');
    const taskQueue = uniqueId('tq');
    const fleet = spawnWorkers(stack, taskQueue, 1);
    procs.push(...fleet);
    await waitForPollers(stack, taskQueue, fleet);
    const crawl = spawnTcrawl(['crawl', s.url('/'), '--allow-private', '--rate', '0', '--batch-size', '4', '--max-depth', '20', '--id', crawlId, '--wait'], workerEnv(stack, taskQueue));
    procs.push(crawl.child);
    await waitFor('a batch of the fleet to wait on the site', () => s.held() >= 1, 60_000);

    // Nothing of its own to drain.
    const { elapsedMs, code } = await signalAndWait(crawl.child, 'SIGTERM', marginMs);
    process.stderr.write(`[cli-signals] crawl --wait beside a fleet: exited ${code} ${elapsedMs} ms after SIGTERM\n`);
    assert.equal(code, 143, crawl.stderr());
    assertLeftRunning(crawl.stderr(), crawlId, taskQueue);

    s.release();
    const summary = await stack.client.workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId)).result();
    await assertCompleted(stack, crawlId, summary, s.pagePaths);
  });

  it('a second signal exits at once', { timeout: testTimeoutMs }, async () => {
    const s = await site({ pages: 12, delayMs: 50, stalled: true });
    const crawlId = uniqueId('sig-twice');
    const taskQueue = uniqueId('tq');
    const [worker] = spawnWorkers(stack, taskQueue, 1);
    procs.push(worker);
    await waitForPollers(stack, taskQueue, [worker]);
    const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [s.url('/')], batchSize: 4, concurrency: 2 }));
    await waitFor('a batch to wait on the site', () => s.held() >= 1, 60_000);

    const exited = exitOf(worker);
    worker.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(worker.exitCode, null, 'still draining after the first signal');
    const { elapsedMs, code } = await signalAndWait(worker, 'SIGINT', marginMs, exited);
    process.stderr.write(`[cli-signals] tcrawl worker, second signal: exited ${code} ${elapsedMs} ms after it\n`);
    assert.equal(code, 130, stderrTail(worker));
    await handle.terminate('test over');
  });
});

/** `tcrawl …args` as a child process, its whole stderr kept. */
function spawnTcrawl(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; stderr(): string } {
  const child = spawn(process.execPath, [tcrawlBin, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (process.env.TCRAWL_TEST_VERBOSE) process.stderr.write(`[tcrawl ${child.pid}] ${chunk}`);
  });
  return { child, stderr: () => stderr };
}

/** What `crawl --wait` must say when a signal ends it: the crawl goes on, and how to follow it. */
function assertLeftRunning(stderr: string, crawlId: string, taskQueue: string): void {
  assert.match(stderr, new RegExp(`crawl ${crawlId} goes on without this process`));
  assert.match(stderr, new RegExp(`tcrawl status ${crawlId}`));
  assert.match(stderr, new RegExp(`task queue "${taskQueue}": tcrawl worker`));
}

async function savedPages(stack: TestStack, crawlId: string): Promise<number> {
  return (await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1', [crawlId])).rows[0].n;
}

async function leasedUrls(stack: TestStack, crawlId: string): Promise<Array<{ url: string; batch_id: string }>> {
  const { rows } = await stack.pool.query<{ url: string; batch_id: string }>(`SELECT url, batch_id FROM frontier WHERE crawl_id = $1 AND state = 'leased'`, [crawlId]);
  return rows;
}

/** The crawl's batch activities Temporal has scheduled or started: their attempt, and when the current one started. */
async function pendingBatches(handle: WorkflowHandle): Promise<Array<{ attempt: number; startedAtMs: number }>> {
  const { raw } = await handle.describe();
  return (raw.pendingActivities ?? [])
    .filter((activity) => isBatchActivity(activity.activityType?.name))
    .map((activity) => ({ attempt: activity.attempt ?? 0, startedAtMs: Number(activity.lastStartedTime?.seconds ?? 0) * 1000 + Math.floor((activity.lastStartedTime?.nanos ?? 0) / 1e6) }));
}

/** Runs the crawl to its end on a new worker in this process (the one that was signalled is gone). */
async function finishOnFreshWorker(stack: TestStack, taskQueue: string, crawlId: string): Promise<CrawlSummary> {
  const worker = await startWorker(stack, taskQueue);
  return worker.runUntil(stack.client.workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId)).result());
}

async function assertCompleted(stack: TestStack, crawlId: string, summary: CrawlSummary, pagePaths: string[]): Promise<void> {
  const { rows } = await stack.pool.query<{ url: string }>('SELECT url FROM pages WHERE crawl_id = $1', [crawlId]);
  assert.deepEqual(rows.map((row) => new URL(row.url).pathname).sort(), [...pagePaths].sort(), 'every page saved');
  assert.equal(summary.saved, pagePaths.length, 'every page counted once');
  const unfinished = await stack.pool.query(`SELECT url, state FROM frontier WHERE crawl_id = $1 AND state IN ('queued', 'leased')`, [crawlId]);
  assert.deepEqual(unfinished.rows, [], 'nothing left leased or queued');
}

/**
 * The URLs leased at the signal were finished under the same batch ids:
 * Temporal retried those batches, and each retry got its lease back.
 */
async function assertLeasesCameBack(stack: TestStack, crawlId: string, leasedAtSignal: Array<{ url: string; batch_id: string }>): Promise<void> {
  const { rows } = await stack.pool.query<{ url: string; batch_id: string; state: string }>(
    'SELECT url, batch_id, state FROM frontier WHERE crawl_id = $1 AND url = ANY($2)',
    [crawlId, leasedAtSignal.map((row) => row.url)],
  );
  assert.deepEqual(
    rows.map((row) => ({ url: row.url, batch_id: row.batch_id, state: row.state })).sort((a, b) => a.url.localeCompare(b.url)),
    leasedAtSignal.map((row) => ({ ...row, state: 'done' })).sort((a, b) => a.url.localeCompare(b.url)),
  );
}

interface SlowSiteOptions {
  /** Pages: `/` and `/p/1` … `/p/<pages - 1>`, page n linking to pages 2n+1 and 2n+2. */
  pages: number;
  /** Every page's latency. */
  delayMs: number;
  /** Pages other than `/` are not answered until `release()`: a batch fetching them cannot finish. */
  stalled?: boolean;
}

interface SlowSite {
  url(path: string): string;
  pagePaths: string[];
  /** Requests in the order they came (robots.txt included). */
  requests: Array<{ path: string; atMs: number }>;
  /** Requests being held by `stalled`. */
  held(): number;
  release(): void;
  close(): Promise<void>;
}

async function startSlowSite({ pages, delayMs, stalled = false }: SlowSiteOptions): Promise<SlowSite> {
  const requests: SlowSite['requests'] = [];
  let held: Array<() => void> = [];
  let stalling = stalled;
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ path, atMs: Date.now() });
    if (path === '/robots.txt') return void res.writeHead(404).end();
    const n = path === '/' ? 0 : Number(/^\/p\/(\d+)$/.exec(path)?.[1] ?? NaN);
    if (!(n >= 0 && n < pages)) return void res.writeHead(404).end();
    const links = [2 * n + 1, 2 * n + 2].filter((child) => child < pages).map((child) => `<a href="/p/${child}">${child}</a>`);
    const answer = () => setTimeout(() => res.writeHead(200, { 'content-type': 'text/html' }).end(`<title>${n}</title>${links.join('')}`), delayMs);
    if (stalling && n > 0) {
      const entry = () => answer();
      held.push(entry);
      // A fetch given up on (its batch cancelled, its process gone) is not held any more.
      res.on('close', () => (held = held.filter((h) => h !== entry)));
    } else {
      answer();
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    pagePaths: Array.from({ length: pages }, (_, n) => (n === 0 ? '/' : `/p/${n}`)),
    requests,
    held: () => held.length,
    release() {
      stalling = false;
      for (const answer of held) answer();
      held = [];
    },
    async close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

interface PostgresProxy {
  databaseUrl: string;
  /** Every connection, open or new, is cut at once: each query fails with "Connection terminated". */
  drop(): void;
  /** Postgres stops answering: open and new connections stay silent, and their queries hang. */
  stall(): void;
  /** New connections reach Postgres again. */
  restore(): void;
  close(): Promise<void>;
}

/** A TCP proxy in front of `databaseUrl`'s Postgres, to make it fail or stop answering on demand. */
async function startPostgresProxy(databaseUrl: string): Promise<PostgresProxy> {
  const target = new URL(databaseUrl);
  let mode: 'forward' | 'drop' | 'stall' = 'forward';
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  };
  const server = net.createServer((client) => {
    track(client);
    if (mode === 'drop') return void client.destroy();
    if (mode === 'stall') return;
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    track(upstream);
    client.on('data', (chunk) => mode === 'forward' && upstream.write(chunk));
    upstream.on('data', (chunk) => mode === 'forward' && client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxied = new URL(databaseUrl);
  proxied.hostname = '127.0.0.1';
  proxied.port = String((server.address() as AddressInfo).port);
  return {
    databaseUrl: proxied.toString(),
    drop() {
      mode = 'drop';
      for (const socket of sockets) socket.destroy();
    },
    stall() {
      mode = 'stall';
    },
    restore() {
      mode = 'forward';
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      if (server.listening) server.close();
    },
  };
}
