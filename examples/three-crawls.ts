/**
 * Starts three crawls, prints their progress while they run, and waits for
 * all of them:
 *
 *   npx tsx examples/three-crawls.ts https://a.example/ https://b.example/ https://c.example/
 *
 * Uses the same services as the CLI (TEMPORAL_ADDRESS / DATABASE_URL, or the
 * local ones), and runs a worker in this process so it needs nothing else.
 */
import { connect, type CrawlHandle } from 'tcrawl';

async function main(seeds: string[]): Promise<void> {
  if (seeds.length !== 3) throw new Error('usage: three-crawls <seed URL> <seed URL> <seed URL>');
  const tcrawl = await connect();
  const worker = await tcrawl.runWorker();
  try {
    const crawls: CrawlHandle[] = [];
    for (const seed of seeds) crawls.push(await tcrawl.startCrawl({ seeds: [seed], maxPages: 50, allowPrivate: process.env.ALLOW_PRIVATE === '1' }));
    const ticker = setInterval(async () => {
      const lines = await Promise.all(
        crawls.map(async (crawl) => {
          const p = await crawl.progress();
          return p ? `${crawl.crawlId}: ${p.phase}, ${p.saved} saved, ${p.queued} queued, ${p.failed} failed` : `${crawl.crawlId}: (no answer yet)`;
        }),
      );
      console.log(lines.join('\n'));
    }, 1000);
    const summaries = await Promise.all(crawls.map((crawl) => crawl.result()));
    clearInterval(ticker);
    for (const s of summaries) console.log(`done ${s.crawlId}: ${s.saved} saved, ${s.failed} failed, ${s.skipped} skipped in ${(s.elapsedMs / 1000).toFixed(1)} s`);
  } finally {
    await worker.stop();
    await tcrawl.close();
  }
}

main(process.argv.slice(2)).catch((error: Error) => {
  console.error(error.message);
  process.exitCode = 1;
});
