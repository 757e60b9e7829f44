/**
 * A broad crawl over more hosts than one workflow keeps state for: seeded
 * with one host, it finds 3,000 by following links (a tree of hosts on
 * loopback addresses), politely paced, and runs to the end — every page saved
 * once, while no payload in any run's history grows with the number of hosts.
 * The workflow tracks at most 2,000 hosts and a result names at most 1,000;
 * the frontier in Postgres holds the rest until hosts finish and make room.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { temporal } from '@temporalio/proto';
import { startCrawl, workflowIdFor } from '../../src/client';
import { parseCrawlSpec } from '../../src/spec';
import { startCountingSite, type CountingSite } from '../fixtures/counting-site';
import { maxStartsInWindow } from '../helpers/rate-stats';
import { openStack, startWorker, uniqueId, type TestStack } from '../helpers/stack';

const hosts = 3000;
const pagesPerHost = 2;
const rate = 5;
/** Far under Temporal's 2 MiB per payload, and under what state for every host would take. */
const maxEventBytes = 256 * 1024;

describe('many hosts', () => {
  let stack: TestStack;
  let site: CountingSite;

  before(async () => {
    stack = await openStack();
    site = await startCountingSite({ hosts, pagesPerHost, hostTree: 8 });
  });

  after(async () => {
    await site?.close();
    await stack?.close();
  });

  it(`${hosts} hosts found by links run to the end, each page saved once, every history event small`, async (t) => {
    const crawlId = uniqueId('many-hosts');
    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const spec = parseCrawlSpec({ seeds: [site.hosts[0].pageUrl(0)], scope: 'any', rate, maxPages: hosts * pagesPerHost + 10, maxDepth: 100, allowPrivate: true });
    const summary = await worker.runUntil((await startCrawl(stack.client, taskQueue, crawlId, spec)).result());

    assert.equal(summary.saved, hosts * pagesPerHost, 'every page of every host saved');
    const { rows } = await stack.pool.query<{ n: number; urls: number }>('SELECT count(*)::int AS n, count(DISTINCT url)::int AS urls FROM pages WHERE crawl_id = $1', [crawlId]);
    assert.deepEqual(rows[0], { n: hosts * pagesPerHost, urls: hosts * pagesPerHost }, 'each page once');
    for (const host of site.hosts) {
      assert.equal(host.paths.filter((p) => p !== '/robots.txt').length, pagesPerHost, `${host.host} fetched each page once`);
      assert.ok(maxStartsInWindow(host.starts, 1000 - 30) <= rate, `${host.host} stayed at ${rate}/s`);
    }

    let largest = { bytes: 0, type: '' };
    let runs = 0;
    for await (const execution of stack.client.workflow.list({ query: `WorkflowId = "${workflowIdFor(crawlId)}"` })) {
      runs++;
      const history = await stack.client.workflow.getHandle(workflowIdFor(crawlId), execution.runId).fetchHistory();
      for (const event of history.events ?? []) {
        const bytes = temporal.api.history.v1.HistoryEvent.encode(event).finish().length;
        if (bytes > largest.bytes) largest = { bytes, type: temporal.api.enums.v1.EventType[event.eventType ?? 0] ?? '?' };
      }
    }
    t.diagnostic(`${runs} run(s); largest history event ${largest.bytes} bytes (${largest.type})`);
    assert.ok(largest.bytes < maxEventBytes, `largest history event ${largest.bytes} bytes (${largest.type})`);
  });
});
