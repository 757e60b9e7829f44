/**
 * Crawlee's CheerioCrawler (a devDependency) crawling as the bare loop does:
 * breadth-first over the seed's origin, `<title>` and links read with
 * cheerio, pages saved to Postgres in batches (table `crawlee_pages`) by the
 * bare loop's writer. Storage is Crawlee's in-memory one with nothing written
 * to disk (`persistStorage: false`, `writeMetadata: false`, purged on start);
 * the autoscaled pool is pinned at `concurrency` (min = max), so it gets the
 * same requests in flight as the others; no retries, as the bare loop.
 */
import { CheerioCrawler, Configuration, log } from '@crawlee/cheerio';
import { Pool } from 'pg';
import { BatchWriter, createPageTable, type BareLoopOptions, type BareLoopResult } from './bare-loop';

export async function runCrawlee(opts: BareLoopOptions): Promise<BareLoopResult> {
  const db = new Pool({ connectionString: opts.databaseUrl, max: 4 });
  const concurrency = opts.concurrency ?? 64;
  try {
    const writer = new BatchWriter(db, await createPageTable(db, 'crawlee_pages'), opts.batchSize ?? 500);
    log.setLevel(log.LEVELS.WARNING);
    const config = new Configuration({ persistStorage: false, purgeOnStart: true, storageClientOptions: { persistStorage: false, writeMetadata: false } });
    const crawler = new CheerioCrawler(
      {
        minConcurrency: concurrency,
        maxConcurrency: concurrency,
        maxRequestsPerCrawl: opts.maxPages,
        maxRequestRetries: 0,
        async requestHandler({ request, response, $, enqueueLinks }) {
          writer.add({ url: request.loadedUrl ?? request.url, status: response.statusCode ?? 0, title: $('title').first().text().trim() || null, fetchedAt: new Date() });
          await enqueueLinks({ strategy: 'same-origin' });
        },
      },
      config,
    );
    const started = performance.now();
    await crawler.run([opts.seed]);
    await writer.close();
    const seconds = (performance.now() - started) / 1000;
    return { pages: writer.written, seconds, pagesPerSecond: writer.written / seconds };
  } finally {
    await db.end();
  }
}
