import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import { startCrawl } from '../../src/client';
import { parseCrawlSpec } from '../../src/spec';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { localSiteDefaults, openStack, pathOf, uniqueId, type TestStack } from '../helpers/stack';

const bin = path.resolve(__dirname, '../../bin/tcrawl.js');

/** A real `tcrawl worker` process on its own task queue. */
function spawnWorker(stack: TestStack, taskQueue: string): ChildProcess {
  const child = spawn(process.execPath, [bin, 'worker', '--concurrency', '4'], {
    env: { ...process.env, TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl, TCRAWL_TASK_QUEUE: taskQueue },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (process.env.TCRAWL_TEST_VERBOSE) process.stderr.write(`[worker ${child.pid}] ${chunk}`);
  });
  return child;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('crash: SIGKILL a worker process mid-crawl', () => {
  let stack: TestStack;
  let site: FixtureSite;
  const workers: ChildProcess[] = [];

  before(async () => {
    stack = await openStack();
    site = await startFixtureSite({ extraPages: 300, delayMs: 20 });
  });

  after(async () => {
    for (const worker of workers) if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL');
    await site?.close();
    await stack?.close();
  });

  it('another worker finishes the crawl and every page is saved exactly once', async () => {
    const crawlId = uniqueId('crash');
    const taskQueue = uniqueId('tq');
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 10, concurrency: 8 });
    const handle = await startCrawl(stack.client, taskQueue, crawlId, spec);
    const saved = async () => (await stack.pool.query(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId])).rows[0].n as number;

    const first = spawnWorker(stack, taskQueue);
    workers.push(first);
    const leased = async () => (await stack.pool.query(`SELECT count(*)::int AS n FROM frontier WHERE crawl_id = $1 AND state = 'leased'`, [crawlId])).rows[0].n as number;
    // Kill it while it holds leases (work checked out), so that work must be recovered.
    await waitFor('the first worker to save 40 pages while holding leases', async () => (await saved()) >= 40 && (await leased()) > 0, 90_000);
    const leasedAtKill = await leased();
    first.kill('SIGKILL');
    await once(first, 'exit');
    const savedAtKill = await saved();
    assert.ok(savedAtKill < site.expectations.savedPaths.length, 'the worker was killed mid-crawl');

    workers.push(spawnWorker(stack, taskQueue));
    const summary = await handle.result();

    const { rows } = await stack.pool.query(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    assert.deepEqual(rows.map((r) => pathOf(r.url)).sort(), [...site.expectations.savedPaths].sort());
    assert.equal(summary.saved, site.expectations.savedPaths.length, 'no page counted twice');
    const unfinished = await stack.pool.query(`SELECT url FROM frontier WHERE crawl_id = $1 AND state IN ('queued', 'leased')`, [crawlId]);
    assert.deepEqual(unfinished.rows, []);
    // Only work checked out by the dead worker may have been fetched twice.
    const counts = new Map<string, number>();
    for (const request of site.requests) counts.set(request.path, (counts.get(request.path) ?? 0) + 1);
    const refetched = [...counts].filter(([p, n]) => n > (site.expectations.transientRequests[p] ?? 1) && p !== '/robots.txt');
    assert.ok(refetched.length <= leasedAtKill, `${refetched.length} URLs fetched twice, but only ${leasedAtKill} were leased at the kill`);
  });
});
