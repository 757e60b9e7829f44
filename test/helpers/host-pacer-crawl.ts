/**
 * One "crawl" in a process of its own, for the HostPacer tests: from
 * `startAtMs` (epoch) until `stopAtMs`, `concurrency` loops each reserve a
 * start to `host` and record when they got it. Prints the starts (epoch ms,
 * sub-millisecond) as one JSON array on stdout.
 *
 *   node --import tsx test/helpers/host-pacer-crawl.ts '{"host":…,"crawlId":…,"intervalMs":…,"startAtMs":…,"stopAtMs":…,"concurrency":…}'
 *
 * DATABASE_URL names the database (migrated by the test).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { localNowMs } from '../../activities/database-clock';
import { HostPacer } from '../../activities/host-pacer';
import { createPool } from '../../src/infra/database';

export interface HostPacerCrawlArgs {
  host: string;
  crawlId: string;
  intervalMs: number;
  startAtMs: number;
  stopAtMs: number;
  concurrency: number;
  wantedForMs?: number;
}

async function main(args: HostPacerCrawlArgs): Promise<void> {
  const pool = createPool(process.env.DATABASE_URL!, args.concurrency);
  const pacer = new HostPacer(pool, { wantedForMs: args.wantedForMs });
  const starts: number[] = [];
  await sleep(Math.max(0, args.startAtMs - Date.now()));
  const loop = async () => {
    while (Date.now() < args.stopAtMs) {
      await pacer.reserve(args.host, args.crawlId, args.intervalMs);
      starts.push(localNowMs());
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, loop));
  await pool.end();
  process.stdout.write(JSON.stringify(starts));
}

void main(JSON.parse(process.argv[2]) as HostPacerCrawlArgs);
