import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CrawlProgress } from '../../src/crawl-types';
import { currentDetails } from '../../workflows/current-details';

const progress: CrawlProgress = {
  crawlId: 'c1',
  phase: 'crawling',
  saved: 120,
  failed: 3,
  skipped: 2,
  retried: 1,
  byStatus: { '200': 120, '404': 3 },
  byReason: { http_404: 3, not_html: 2, timeout: 0 },
  queued: 40,
  inFlightBatches: 2,
  inFlightUrls: 20,
  hosts: 2,
  hostStates: [
    { host: 'a.example', queued: 30, inFlight: 1, ratePerSec: 1, backoffFactor: 0.5, crawlDelayMs: 0, pausedUntilMs: null, reason: 'banned' },
    { host: 'b|c.example', queued: 10, inFlight: 1, ratePerSec: 0, backoffFactor: 1, crawlDelayMs: 0, pausedUntilMs: 61_000, reason: 'retry_after' },
  ],
  limits: { rate: 1, hostRates: {}, totalRate: 0, groups: [] },
  startedAtMs: 0,
  elapsedMs: 1000,
  batchFailures: [{ batchId: 'c1/r/b3', host: 'a.example', code: 'TCRAWL_BATCH_FAILED', message: 'boom\n| table breaker', atMs: 0 }],
  run: { startedAtMs: 0, requeued: 0, saved: 120, failed: 3, skipped: 2 },
};

describe('current details (the Web UI workflow page)', () => {
  const text = currentDetails(progress, 1000);

  it('leads with the phase and the counts', () => {
    assert.equal(text.split('\n')[0], '**crawling** · saved 120 · queued 40 · in flight 20 (2 batches) · failed 3 · skipped 2 · 2 hosts');
  });

  it('shows each busy host with its rate, back-off and why it is held back', () => {
    assert.match(text, /\| a\.example \| 30 \| 1 \| 1\.00 \| ×0\.50 \| banned \|/);
    assert.match(text, /\| b c\.example \| 10 \| 1 \| unlimited \| - \| retry_after for 60 s \|/, 'a pipe in a host cannot break the table');
  });

  it('lists the top reasons, most frequent first, without zeros', () => {
    assert.match(text, /Top reasons \(failed or skipped\): http_404 3, not_html 2$/m);
  });

  it('names the last batch failure on one line', () => {
    assert.match(text, /Last batch failure \(1970-01-01T00:00:00\.000Z, a\.example\): TCRAWL_BATCH_FAILED: boom table breaker$/m);
  });

  it("mentions a re-run's re-queued URLs only when there are some", () => {
    assert.doesNotMatch(text, /re-queued/);
    assert.match(currentDetails({ ...progress, run: { ...progress.run!, requeued: 5 } }, 1000), /This run re-queued 5 failed URLs: saved 120, failed 3, skipped 2 since\./);
  });
});
