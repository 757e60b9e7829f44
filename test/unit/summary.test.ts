import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatTrouble } from '../../src/cli/summary';
import type { CrawlProgress } from '../../src/crawl-types';

describe('tcrawl status: what a crawl waits out or gave up on', () => {
  it('lists activities being retried with their last error, and batches that failed for good with their code', () => {
    const progress = {
      batchFailures: [{ batchId: 'c/run/b7', host: 'example.com', code: 'TCRAWL_BATCH_FAILED', message: 'Batch failed 5 times', atMs: Date.UTC(2026, 11, 1) }],
    } as unknown as CrawlProgress;
    const text = formatTrouble({
      crawlId: 'c',
      runId: 'r',
      taskQueue: 'tcrawl',
      status: 'RUNNING',
      progress,
      retrying: [{ activity: 'crawlBatch', attempt: 4, lastFailure: 'connect ECONNREFUSED 127.0.0.1:5432' }],
    });
    assert.equal(
      text,
      'retrying crawlBatch (attempt 4): connect ECONNREFUSED 127.0.0.1:5432\n' +
        'failed for good 2026-12-01T00:00:00.000Z example.com: TCRAWL_BATCH_FAILED: Batch failed 5 times\n',
    );
  });

  it('says nothing when nothing is wrong', () => {
    assert.equal(formatTrouble({ crawlId: 'c', runId: 'r', taskQueue: 'tcrawl', status: 'RUNNING', progress: null, retrying: [] }), '');
  });
});
