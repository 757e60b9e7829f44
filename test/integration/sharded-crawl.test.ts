/**
 * A crawl split by host over child workflows (spec `shards`, workflow v5):
 * hosts found by links in any shard are crawled by their own shard's
 * workflow and no other, each page once, each host at its rate; `maxPages`
 * holds across shards; pause, set-rate, resume and cancel reach every shard;
 * the Node and SQL shard functions agree.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type RunningWorker, type TcrawlClient } from '../../src/tcrawl-client';
import { shardWorkflowIdFor } from '../../src/client';
import { listCrawls } from '../../src/operate/list';
import { shardOfHost } from '../../src/shard';
import { crawlSearchAttributes } from '../../workflows/search-attributes';
import { startCountingSite, type CountingSite } from '../fixtures/counting-site';
import { maxStartsInWindow } from '../helpers/rate-stats';
import { localSiteDefaults, quietRuntime, uniqueId } from '../helpers/stack';
import { waitFor } from '../helpers/worker-processes';

const shards = 4;
const hosts = 120;
const pagesPerHost = 3;

describe('sharded crawls (spec shards)', () => {
  let tcrawl: TcrawlClient;
  let worker: RunningWorker;
  let site: CountingSite;

  before(async () => {
    quietRuntime();
    tcrawl = await connect({ env: { ...process.env, TCRAWL_TASK_QUEUE: uniqueId('shards') }, log: () => undefined });
    worker = await tcrawl.runWorker();
    site = await startCountingSite({ hosts, pagesPerHost, hostTree: 4 });
  });

  after(async () => {
    await site?.close();
    await worker?.stop();
    await tcrawl?.close();
  });

  it("Node's shardOfHost and Postgres's tcrawl_host_shard put every host in the same shard", async () => {
    const names = [...site.hosts.map((host) => host.host), 'example.com', 'b', 'xn--bcher-kva.example', '[::1]:8080', ''];
    for (const count of [1, 2, 3, 7, 64]) {
      const { rows } = await tcrawl.pool.query<{ host: string; shard: number }>('SELECT h AS host, tcrawl_host_shard(h, $2) AS shard FROM unnest($1::text[]) h', [names, count]);
      for (const { host, shard } of rows) assert.equal(shard, shardOfHost(host, count), `${host} of ${count}`);
    }
  });

  it(`${hosts} hosts found by links over ${shards} shards: each host crawled by its own shard only, each page once, each host at its rate`, async (t) => {
    const rate = 4;
    const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.hosts[0].pageUrl(0)], scope: 'any', rate, concurrency: 2, shards, maxPages: 10_000, maxDepth: 100 });
    const summary = await crawl.result();
    assert.equal(summary.phase, 'finished');
    assert.equal(summary.saved, hosts * pagesPerHost, 'every page of every host saved');
    assert.equal(summary.shards?.length, shards);
    const { rows } = await tcrawl.pool.query<{ n: number; urls: number }>('SELECT count(*)::int AS n, count(DISTINCT url)::int AS urls FROM pages WHERE crawl_id = $1', [crawl.crawlId]);
    assert.deepEqual(rows[0], { n: hosts * pagesPerHost, urls: hosts * pagesPerHost }, 'each page saved once');
    for (const host of site.hosts) {
      assert.equal(host.paths.filter((p) => p !== '/robots.txt').length, pagesPerHost, `${host.host} fetched each page once`);
      assert.ok(maxStartsInWindow(host.starts, 1000 - 30) <= rate, `${host.host} stayed at ${rate}/s`);
    }

    // A batch id names its workflow run: every URL was fetched by a run of its host's shard.
    const shardOfRun = new Map<string, number>();
    for (let index = 0; index < shards; index++) {
      for await (const execution of tcrawl.temporal.workflow.list({ query: `WorkflowId = "${shardWorkflowIdFor(crawl.crawlId, index)}"` })) shardOfRun.set(execution.runId, index);
    }
    const { rows: batches } = await tcrawl.pool.query<{ host: string; batch_id: string }>('SELECT DISTINCT host, batch_id FROM frontier WHERE crawl_id = $1', [crawl.crawlId]);
    const used = new Set<number>();
    for (const { host, batch_id } of batches) {
      const runId = batch_id.split('/')[1];
      const shard = shardOfRun.get(runId);
      assert.equal(shard, shardOfHost(host, shards), `${host}'s batch ${batch_id} ran in shard ${shard}`);
      used.add(shard!);
    }
    assert.equal(used.size, shards, 'every shard crawled some hosts');
    t.diagnostic(`${shardOfRun.size} shard runs`);

    // Visibility is eventually consistent: the shards carry the crawl's id, and tcrawl list shows the crawl alone.
    const shard = await tcrawl.temporal.workflow.getHandle(shardWorkflowIdFor(crawl.crawlId, 0)).describe();
    assert.equal(shard.typedSearchAttributes.get(crawlSearchAttributes.crawlId), crawl.crawlId);
    await waitFor(
      'the crawl alone in tcrawl list',
      async () => {
        const rows = await listCrawls(tcrawl.temporal, { query: `TcrawlCrawlId = "${crawl.crawlId}"` });
        return rows.length === 1 && rows[0].crawlId === crawl.crawlId && rows[0].saved === hosts * pagesPerHost;
      },
      60_000,
    );
  });

  it('maxPages holds across shards: exactly that many URLs finish, the rest stay queued', async () => {
    const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [site.hosts[0].pageUrl(0)], scope: 'any', rate: 0, shards, maxPages: 45, maxDepth: 100 });
    const summary = await crawl.result();
    assert.equal(summary.saved + summary.failed + summary.skipped, 45);
    const { rows } = await tcrawl.pool.query<{ finished: number; queued: number; leased: number }>(
      `SELECT count(*) FILTER (WHERE state IN ('done', 'failed', 'skipped'))::int AS finished,
              count(*) FILTER (WHERE state = 'queued')::int AS queued, count(*) FILTER (WHERE state = 'leased')::int AS leased
         FROM frontier WHERE crawl_id = $1`,
      [crawl.crawlId],
    );
    assert.equal(rows[0].finished, 45, 'the rows agree');
    assert.ok(rows[0].queued > 0, 'the rest stay queued');
    assert.equal(rows[0].leased, 0, 'no lease left');
  });

  it('pause reaches every shard (no request while paused), set-rate and resume too, and cancel winds every shard down', async () => {
    const fresh = await startCountingSite({ hosts: 40, pagesPerHost: 8, hostTree: 4 });
    const freshRequests = () => fresh.hosts.reduce((sum, host) => sum + host.paths.length, 0);
    try {
      const crawl = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [fresh.hosts[0].pageUrl(0)], scope: 'any', rate: 2, concurrency: 1, shards, maxPages: 10_000, maxDepth: 100 });
      await waitFor('shards running', async () => ((await crawl.progress())?.shards ?? []).filter((shard) => shard.running).length >= 2, 60_000);
      await waitFor('some pages', () => freshRequests() >= 30, 60_000);
      const paused = await crawl.pause();
      assert.equal(paused.phase, 'paused');
      // Windows in flight stop within about 2 s of the steering, as in an unsharded crawl.
      await sleep(2500);
      const whenPaused = freshRequests();
      await sleep(2000);
      assert.equal(freshRequests(), whenPaused, 'no request while paused');
      await crawl.setRate(1);
      assert.equal((await crawl.progress())?.limits.rate, 1);
      await crawl.resume();
      await waitFor('requests again', () => freshRequests() > whenPaused, 20_000);
      const cancelled = await crawl.cancel();
      assert.equal(cancelled?.phase, 'cancelled');
      const { rows } = await tcrawl.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM frontier WHERE crawl_id = $1 AND state = 'leased'`, [crawl.crawlId]);
      assert.equal(rows[0].n, 0, 'no lease left after the wind-down');
      for (let index = 0; index < shards; index++) {
        for await (const execution of tcrawl.temporal.workflow.list({ query: `WorkflowId = "${shardWorkflowIdFor(crawl.crawlId, index)}"` })) {
          assert.notEqual(execution.status.name, 'RUNNING', `shard ${index} still running`);
        }
      }
      const { rows: pages } = await tcrawl.pool.query<{ n: number; urls: number }>('SELECT count(*)::int AS n, count(DISTINCT url)::int AS urls FROM pages WHERE crawl_id = $1', [crawl.crawlId]);
      assert.equal(pages[0].n, pages[0].urls, 'each page once');
    } finally {
      await fresh.close();
    }
  });
});
