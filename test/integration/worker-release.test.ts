/**
 * A worker that stops lets go of what its fetches held. Regression: the
 * shared HTTP agents and egress dispatchers (closeAgents,
 * closeEgressDispatchers) were never closed, so a worker run in a library
 * user's process (TcrawlClient.runWorker, runWorkerUntil) kept its pooled
 * connections to sites and proxies open after it stopped, and the requests
 * counted since the egress health's last sync were never written.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startCrawl } from '../../src/client';
import { parseCrawlSpec } from '../../src/spec';
import { runWorkerUntil } from '../../src/worker';
import { startCountingSite, type CountingSite } from '../fixtures/counting-site';
import { startForwardProxy, type ForwardProxy } from '../fixtures/forward-proxy';
import { localSiteDefaults, openStack, startWorker, uniqueId, type TestStack } from '../helpers/stack';
import { waitFor } from '../helpers/worker-processes';

describe('a stopped worker releases its connections', () => {
  let stack: TestStack;
  let site: CountingSite;
  let proxy: ForwardProxy;

  before(async () => {
    stack = await openStack();
    site = await startCountingSite({ hosts: 1, pagesPerHost: 12, latencyMs: 5 });
    proxy = await startForwardProxy();
  });

  after(async () => {
    await proxy?.close();
    await site?.close();
    await stack?.close();
  });

  it('after runWorkerUntil has drained: no connection left open to the proxy, every request through it counted in egress_health', async () => {
    const taskQueue = uniqueId('tq-release');
    const worker = await startWorker(stack, taskQueue);
    let stop!: () => void;
    const stopped = runWorkerUntil(worker, new Promise<void>((resolve) => (stop = resolve)));
    const [host] = site.hosts;
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [host.pageUrl(0)], proxies: [proxy.url] });
    await (await startCrawl(stack.client, taskQueue, uniqueId('release'), spec)).result();
    assert.ok(proxy.openConnections() > 0, 'the crawl kept its connections to the proxy alive');
    stop();
    assert.equal(await stopped, 'drained');
    // The proxy sees the worker's side close: a FIN crossing loopback.
    await waitFor('the proxy to see its connections closed', () => proxy.openConnections() === 0, 5000);
    const { rows } = await stack.pool.query<{ requests: string }>(`SELECT requests FROM egress_health WHERE egress = $1`, [proxy.url]);
    assert.equal(Number(rows[0]?.requests), proxy.received, 'every request counted');
  });
});
