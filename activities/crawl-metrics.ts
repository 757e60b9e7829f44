import { noopMetricMeter, type MetricCounter, type MetricGauge, type MetricHistogram, type MetricMeter } from '@temporalio/common';
import type { Pool } from 'pg';
import type { UrlResult } from './page-store';

/**
 * Bucket bounds (seconds) of tcrawl's histograms, handed to the Prometheus
 * exporter (the SDK's default bounds are milliseconds-sized for its own).
 * Fetches: a local site answers in milliseconds, a slow one in seconds, up to
 * the 30 s request timeout. Batches: a window lasts up to about a minute, a
 * v2 batch its whole limit.
 */
export const metricBuckets: Record<string, number[]> = {
  tcrawl_fetch_latency_seconds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  tcrawl_batch_duration_seconds: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
};

/**
 * tcrawl's own metrics, created on the SDK's meter so the worker's Prometheus
 * endpoint serves them beside the SDK's (README: Metrics). Counted when a
 * result is written, not when it is fetched: a batch that dies before its
 * write counts nothing, so the counters follow the `pages` and `frontier` rows.
 */
export class CrawlMetrics {
  private readonly pagesSaved: MetricCounter;
  private readonly pageBytes: MetricCounter;
  private readonly urlOutcomes: MetricCounter;
  private readonly fetchLatency: MetricHistogram;
  private readonly batchDuration: MetricHistogram;
  private readonly hostBackoff: MetricGauge;
  /** Hosts whose back-off gauge this process set above 0: set back to 0 once a batch of theirs ends unpaused. */
  private readonly backingOff = new Set<string>();

  constructor(readonly meter: MetricMeter = noopMetricMeter) {
    this.pagesSaved = meter.createCounter('tcrawl_pages_saved', undefined, 'Pages written to the pages table, by crawl and HTTP status');
    this.pageBytes = meter.createCounter('tcrawl_page_bytes', 'bytes', 'Body bytes of the pages written (pages.bytes), by crawl');
    this.urlOutcomes = meter.createCounter('tcrawl_url_outcomes', undefined, 'URLs settled by batches, by crawl, outcome (saved, failed, skipped, retried) and HTTP status (none: no response)');
    this.fetchLatency = meter.createHistogram('tcrawl_fetch_latency_seconds', 'float', 's', 'Time from a URL\'s request passing the host\'s gate (pacing waits left out) to its outcome: response and body, or error');
    this.batchDuration = meter.createHistogram('tcrawl_batch_duration_seconds', 'float', 's', 'Time a batch activity attempt ran, by result (ok, error)');
    this.hostBackoff = meter.createGauge('tcrawl_host_backoff_seconds', 'float', 's', 'Seconds a host is left alone for (Retry-After, robots.txt unreachable, proxies resting), as its latest batch on this worker asked');
  }

  /** Results of crawl `crawlId` that `saveResults` has just written. */
  written(crawlId: string, results: UrlResult[]): void {
    for (const result of results) {
      const status = result.status === null ? 'none' : String(result.status);
      this.urlOutcomes.add(1, { crawl_id: crawlId, outcome: result.outcome, status });
      if (result.outcome === 'saved' && result.savePage) {
        this.pagesSaved.add(1, { crawl_id: crawlId, status });
        this.pageBytes.add(result.bytes, { crawl_id: crawlId });
      }
    }
  }

  fetched(ms: number): void {
    this.fetchLatency.record(ms / 1000);
  }

  batchEnded(ms: number, result: 'ok' | 'error'): void {
    this.batchDuration.record(ms / 1000, { result });
  }

  /** A batch of `host` ended asking it to be left alone until `untilMs` (null: not paused). */
  hostPaused(host: string, untilMs: number | null): void {
    const seconds = untilMs === null ? 0 : Math.max(0, (untilMs - Date.now()) / 1000);
    if (seconds === 0 && !this.backingOff.delete(host)) return;
    if (seconds > 0) this.backingOff.add(host);
    this.hostBackoff.set(seconds, { host });
  }
}

/** How often {@link sampleFrontier} counts the queued URLs: about a Prometheus scrape interval. */
export const frontierSampleEveryMs = 15_000;

/**
 * Keeps `tcrawl_frontier_queued{crawl_id}` — URLs waiting in each crawl's
 * frontier — current by counting them every {@link frontierSampleEveryMs}:
 * one query over the partial index of queued rows (`frontier_queued`), the
 * same count whichever worker takes it. A crawl whose queue emptied is set to
 * 0 once, then left out. Returns a function that stops the sampling.
 */
export function sampleFrontier(pool: Pool, meter: MetricMeter, everyMs = frontierSampleEveryMs): () => void {
  const gauge = meter.createGauge('tcrawl_frontier_queued', 'int', undefined, 'URLs queued in a crawl\'s frontier, sampled from Postgres');
  let seen = new Set<string>();
  const sample = async () => {
    const { rows } = await pool.query<{ crawl_id: string; queued: string }>(`SELECT crawl_id, count(*) AS queued FROM frontier WHERE state = 'queued' GROUP BY crawl_id`);
    const now = new Set(rows.map((row) => row.crawl_id));
    for (const row of rows) gauge.set(Number(row.queued), { crawl_id: row.crawl_id });
    for (const crawlId of seen) if (!now.has(crawlId)) gauge.set(0, { crawl_id: crawlId });
    seen = now;
  };
  // A sample that fails (Postgres restarting) leaves the gauge as it was; the next one puts it right.
  const tick = () => void sample().catch(() => undefined);
  tick();
  const timer = setInterval(tick, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
