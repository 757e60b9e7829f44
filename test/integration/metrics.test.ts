/**
 * `tcrawl worker --metrics-port`: a real worker process crawls the fixture
 * site, and what its Prometheus endpoint says it did matches the rows in
 * Postgres, and its stderr (TCRAWL_LOG_FORMAT=json) is JSON lines naming the
 * crawl, batch and hosts. A host answering 503 and 429 with Retry-After shows
 * in the per-host back-off gauge. A bad or taken port is refused before the worker starts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as http from 'node:http';
import { startCrawl } from '../../src/client';
import { parseCrawlSpec } from '../../src/spec';
import { listenOnLoopback, type LoopbackServer } from '../fixtures/loopback-server';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { localSiteDefaults, openStack, uniqueId, type TestStack } from '../helpers/stack';
import { kill, runTcrawl, spawnWorkers, stderrTail, waitFor, waitForPollers, workerEnv } from '../helpers/worker-processes';

/** One sample of a Prometheus text exposition: `name{labels} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of `name`'s samples whose labels include `where`. */
function total(samples: Sample[], name: string, where: Record<string, string> = {}): number {
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((sum, s) => sum + s.value, 0);
}

async function scrape(port: number): Promise<{ text: string; samples: Sample[] }> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  const text = await response.text();
  return { text, samples: parseExposition(text) };
}

/** A port nothing listens on right now (the OS's pick). */
async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * TCRAWL_LOG_FORMAT=json: every line the worker wrote is one JSON object with a time, a level and a
 * message; every line of a batch after its start names the crawl, the batch and its hosts.
 */
function assertJsonLogs(stderr: string, crawlId: string): void {
  const lines = stderr.split('\n').filter((line) => line !== '');
  const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  for (const entry of entries) {
    assert.match(String(entry.time), /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    assert.ok(typeof entry.level === 'string' && typeof entry.message === 'string', JSON.stringify(entry));
  }
  assert.ok(entries.some((entry) => String(entry.message).startsWith('Worker polling task queue')), 'tcrawl\'s own lines are JSON too');
  const batchLines = entries.filter((entry) => entry.activityType === 'crawlHosts' && entry.message !== 'Activity started');
  process.stderr.write(`[metrics] ${lines.length} JSON log lines (${stderr.length} bytes), ${batchLines.length} of batches after their start, e.g. ${JSON.stringify(batchLines[0])}\n`);
  assert.ok(batchLines.length > 0);
  for (const entry of batchLines) {
    assert.equal(entry.crawlId, crawlId, JSON.stringify(entry));
    assert.match(String(entry.batchId), new RegExp(`^${crawlId}/`), JSON.stringify(entry));
    assert.match(String(entry.hosts), /^127\.0\.0\.1:\d+$/, JSON.stringify(entry));
  }
}

describe('tcrawl worker --metrics-port', () => {
  let stack: TestStack;
  let site: FixtureSite;
  const procs: ChildProcess[] = [];

  before(async () => {
    stack = await openStack();
    // Paced (5 starts/s over ~100 URLs: 20 s): the crawl is still queueing at the worker's second frontier sample.
    site = await startFixtureSite({ extraPages: 80 });
  });

  after(async () => {
    await Promise.all(procs.map(kill));
    await site?.close();
    await stack?.close();
  });

  it('serves the SDK\'s and tcrawl\'s metrics, and tcrawl\'s counts match the pages and frontier tables', { timeout: 180_000 }, async () => {
    const port = await freePort();
    const taskQueue = uniqueId('tq');
    const crawlId = uniqueId('metrics');
    const [worker] = spawnWorkers(stack, taskQueue, 1, { args: ['--metrics-port', String(port)], env: { TCRAWL_LOG_FORMAT: 'json', TCRAWL_LOG_LEVEL: 'DEBUG' } });
    procs.push(worker);
    let stderr = '';
    worker.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await waitForPollers(stack, taskQueue, [worker]);
    const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, rate: 5, concurrency: 2, seeds: [site.url('/')] }));

    // The frontier gauge, sampled every 15 s, sees the crawl's queue while it runs.
    let queuedSeen = 0;
    await waitFor(
      'tcrawl_frontier_queued to show the running crawl',
      async () => {
        queuedSeen = total((await scrape(port)).samples, 'tcrawl_frontier_queued', { crawl_id: crawlId });
        return queuedSeen > 0;
      },
      60_000,
    );
    await handle.result();

    const { text, samples } = await scrape(port);
    process.stderr.write(`[metrics] frontier gauge saw ${queuedSeen} queued; /metrics: ${text.length} chars, ${samples.length} samples\n`);
    assert.match(text, /^temporal_activity_execution_latency/m, 'the SDK\'s own metrics are served');
    const pages = await stack.pool.query<{ status: number; n: string; bytes: string }>('SELECT status, count(*) AS n, sum(bytes) AS bytes FROM pages WHERE crawl_id = $1 GROUP BY status', [crawlId]);
    assert.ok(pages.rows.length > 0);
    for (const row of pages.rows) {
      assert.equal(total(samples, 'tcrawl_pages_saved_total', { crawl_id: crawlId, status: String(row.status) }), Number(row.n), `pages with status ${row.status}`);
    }
    const savedPages = pages.rows.reduce((sum, row) => sum + Number(row.n), 0);
    assert.equal(total(samples, 'tcrawl_pages_saved_total', { crawl_id: crawlId }), savedPages);
    assert.equal(total(samples, 'tcrawl_page_bytes_total', { crawl_id: crawlId }), pages.rows.reduce((sum, row) => sum + Number(row.bytes), 0));

    const frontier = await stack.pool.query<{ state: string; n: string }>(`SELECT state, count(*) AS n FROM frontier WHERE crawl_id = $1 GROUP BY state`, [crawlId]);
    const byState = Object.fromEntries(frontier.rows.map((row) => [row.state, Number(row.n)]));
    assert.deepEqual(Object.keys(byState).sort(), ['done', 'failed', 'skipped'], 'the fixture has URLs of every end state');
    for (const [state, outcome] of [['done', 'saved'], ['failed', 'failed'], ['skipped', 'skipped']]) {
      assert.equal(total(samples, 'tcrawl_url_outcomes_total', { crawl_id: crawlId, outcome }), byState[state], `URLs ${outcome}`);
    }
    assert.ok(total(samples, 'tcrawl_url_outcomes_total', { crawl_id: crawlId, outcome: 'retried' }) >= 1, '/flaky is retried');

    // Every URL fetched once at least (robots.txt apart, which is not a page fetch); every batch timed.
    const fetches = total(samples, 'tcrawl_fetch_latency_seconds_count');
    assert.ok(fetches >= savedPages, `${fetches} fetches timed for ${savedPages} pages`);
    const meanMs = (1000 * total(samples, 'tcrawl_fetch_latency_seconds_sum')) / fetches;
    process.stderr.write(`[metrics] ${savedPages} pages, ${fetches} fetches timed, mean ${meanMs.toFixed(1)} ms; ${total(samples, 'tcrawl_batch_duration_seconds_count')} batches\n`);
    assert.equal(total(samples, 'tcrawl_fetch_latency_seconds_bucket', { le: '+Inf' }), fetches);
    assert.ok(total(samples, 'tcrawl_batch_duration_seconds_count', { result: 'ok' }) >= 1);
    assert.match(text, /^tcrawl_fetch_latency_seconds_bucket\{le="0\.005"\}/m, 'tcrawl\'s own buckets, in seconds');

    await waitFor('tcrawl_frontier_queued to drop to 0 once the crawl is done', async () => total((await scrape(port)).samples, 'tcrawl_frontier_queued', { crawl_id: crawlId }) === 0, 30_000);
    assert.equal(worker.exitCode, null, stderrTail(worker));
    assertJsonLogs(stderr, crawlId);
  });

  it('tcrawl_host_backoff_seconds shows a host that answered 503 and then 429 with Retry-After, and drops to 0 once its batches end unpaused', { timeout: 120_000 }, async () => {
    const retryAfterSecs = 4;
    const host = await startThrottlingHost(retryAfterSecs);
    try {
      const port = await freePort();
      const taskQueue = uniqueId('tq');
      const crawlId = uniqueId('backoff');
      const [worker] = spawnWorkers(stack, taskQueue, 1, { args: ['--metrics-port', String(port)] });
      procs.push(worker);
      await waitForPollers(stack, taskQueue, [worker]);
      const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, seeds: [`${host.origin}/`], maxRetries: 3 }));
      const label = { host: host.origin.replace('http://', '') };

      // Each throttled answer pauses the host: one batch ends asking for Retry-After seconds, and the gauge says so until the next one.
      const seen: number[] = [];
      await waitFor(`tcrawl_host_backoff_seconds{host="${label.host}"} to show both back-offs`, async () => {
        const value = total((await scrape(port)).samples, 'tcrawl_host_backoff_seconds', label);
        if (value > 0 && value !== seen.at(-1)) seen.push(value);
        return host.throttled() === 2 && seen.length >= 2;
      }, 60_000);
      const summary = await handle.result();
      await waitFor('the gauge back to 0 after the crawl', async () => total((await scrape(port)).samples, 'tcrawl_host_backoff_seconds', label) === 0, 30_000);
      process.stderr.write(`[metrics] back-off gauge for ${label.host}: ${seen.map((v) => v.toFixed(2)).join(', ')} s, then 0; crawl saved ${summary.saved}, retried ${summary.retried}\n`);
      for (const value of seen) assert.ok(value > 0 && value <= retryAfterSecs, `${value} s is within the Retry-After of ${retryAfterSecs} s`);
      assert.equal(summary.saved, 3);
      assert.equal(worker.exitCode, null, stderrTail(worker));
    } finally {
      await host.close();
    }
  });

  it('refuses a port that is not one, and one another process holds, before the worker starts', async () => {
    const env = workerEnv(stack, uniqueId('tq'));
    const bad = await runTcrawl(['worker', '--metrics-port', '70000'], env);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /\[TCRAWL_INVALID_METRICS_PORT\]/);

    const holder = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => holder.once('listening', resolve));
    try {
      const taken = await runTcrawl(['worker', '--metrics-port', String((holder.address() as AddressInfo).port)], env);
      assert.equal(taken.code, 1, taken.stderr);
      assert.match(taken.stderr, /Address already in use.*\[TCRAWL_METRICS_PORT_UNAVAILABLE\]/);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });
});

/**
 * A host of three pages that pushes back: `/` answers 503 the first time and `/a` 429 the first time, each
 * with `Retry-After: retryAfterSecs`; then every page answers 200.
 */
async function startThrottlingHost(retryAfterSecs: number): Promise<LoopbackServer & { throttled(): number }> {
  const firstAnswer: Record<string, number> = { '/': 503, '/a': 429 };
  let throttled = 0;
  const server = http.createServer((req, res) => {
    const status = firstAnswer[req.url ?? ''];
    if (status !== undefined) {
      delete firstAnswer[req.url!];
      throttled++;
      res.writeHead(status, { 'retry-after': String(retryAfterSecs), 'content-type': 'text/plain' }).end('slow down');
      return;
    }
    if (req.url === '/robots.txt') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'text/html' }).end(req.url === '/' ? '<a href="/a">a</a> <a href="/b">b</a>' : `<p>${req.url}</p>`);
  });
  return { ...(await listenOnLoopback(server)), throttled: () => throttled };
}
