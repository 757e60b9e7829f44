import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { boundedHostQueues, insertUrls, leaseMore } from '../../activities/frontier-store';
import { HostQueueCounter } from '../../activities/host-queues';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';

/**
 * What a batch reports of its hosts' queues as it ends. A count of every
 * queued URL per batch grew with the queue: a 1,000,000-page crawl fell from
 * 1,000 to 350 pages/s by 100,000 pages, each batch counting 700,000 rows.
 */
describe('host queues a batch reports', () => {
  let stack: TestStack;

  before(async () => {
    stack = await openStack();
  });

  after(async () => {
    await stack?.close();
  });

  const urlsOf = (host: string, n: number) => Array.from({ length: n }, (_, i) => ({ url: `http://${host}/p/${i}`, depth: 1, foundOn: null }));

  it('counts up to the cap, says which hosts reach it, and knows when a host with nothing due has its next URL due', async () => {
    const crawlId = uniqueId('queues');
    await insertUrls(stack.pool, crawlId, [...urlsOf('many.example', 30), ...urlsOf('few.example', 4), ...urlsOf('later.example', 3)]);
    const dueAt = new Date(Date.now() + 60_000);
    await stack.pool.query(`UPDATE frontier SET not_before = $2 WHERE crawl_id = $1 AND host = 'later.example'`, [crawlId, dueAt]);
    await stack.pool.query(`UPDATE frontier SET not_before = now() + interval '1 hour' WHERE crawl_id = $1 AND url = 'http://few.example/p/0'`, [crawlId]);

    const { queues, capped } = await boundedHostQueues(stack.pool, crawlId, ['many.example', 'few.example', 'later.example', 'none.example'], 20);
    assert.deepEqual(capped, ['many.example']);
    assert.deepEqual(queues['many.example'], { queued: 20, nextDueAtMs: null });
    assert.deepEqual(queues['few.example'], { queued: 4, nextDueAtMs: null }, 'three of its URLs are due now');
    assert.deepEqual(queues['later.example'], { queued: 3, nextDueAtMs: dueAt.getTime() });
    assert.equal(queues['none.example'], undefined, 'a host with nothing queued is not reported');
  });

  it('a host with more queued than a batch counts shows its full count; below the cap the count is exact at every batch', async () => {
    const crawlId = uniqueId('queues');
    await insertUrls(stack.pool, crawlId, [...urlsOf('big.example', 10_500), ...urlsOf('small.example', 10)]);
    const counter = new HostQueueCounter(stack.pool);
    const first = await counter.queuesOf(crawlId, ['big.example', 'small.example']);
    assert.equal(first['big.example'].queued, 10_500);
    assert.equal(first['small.example'].queued, 10);

    await leaseMore(stack.pool, crawlId, `${crawlId}/b1`, [
      { host: 'big.example', limit: 100, dueByMs: Date.now() },
      { host: 'small.example', limit: 3, dueByMs: Date.now() },
    ]);
    const second = await counter.queuesOf(crawlId, ['big.example', 'small.example']);
    assert.equal(second['small.example'].queued, 7);
    // Counted in full at most every 10 s: within them, the last full count (a hint, as every queue count the workflow holds).
    assert.equal(second['big.example'].queued, 10_500);
  });
});
