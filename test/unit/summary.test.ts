import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatProgressLine, formatTrouble } from '../../src/cli/summary';
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

  it("counts a running crawl's time to now: the workflow's clock in a query stands still between its tasks (regression: crawl --wait showed 0.2 s for 20 s)", () => {
    const startedAtMs = Date.UTC(2026, 11, 1);
    const progress = { phase: 'crawling', saved: 0, failed: 0, skipped: 0, queued: 0, inFlightUrls: 21, elapsedMs: 200, startedAtMs } as unknown as CrawlProgress;
    assert.match(formatProgressLine(progress, undefined, startedAtMs + 19_900), / · 19\.9 s$/);
    assert.match(formatProgressLine({ ...progress, phase: 'finished', elapsedMs: 52_000 }, undefined, startedAtMs + 99_000), / · 52\.0 s$/, 'a finished crawl keeps its own time');
  });
});
