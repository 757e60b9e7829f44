/**
 * `npm run bench:outputs`: writing a crawl's mirror and tar archive streams —
 * memory does not grow with the output's size. For each size (GiB of bodies),
 * fills a synthetic crawl's `pages` and `bodies` in Postgres (1 MiB bodies,
 * each distinct, made by the database itself), writes its mirror and its tar
 * with `writeOutputs`, and prints, side by side, the seconds, MB/s and this
 * process's peak RSS and heap while writing (sampled every 50 ms).
 *
 *   npm run bench:outputs -- [--gib 0.5,2] [--dir /tmp]
 *
 * DATABASE_URL when set, else the embedded Postgres. The crawl's rows and the
 * files are removed at the end.
 */
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { runtimeConfig } from '../src/config';
import { createPool, migrate } from '../src/infra/database';
import { ensureEmbeddedPostgres } from '../src/infra/embedded-postgres';
import { deleteCrawlRows } from '../src/results/delete';
import { writeOutputs } from '../src/results/outputs';
import { runMain } from './run-main';

const log = (line: string) => process.stderr.write(`${line}\n`);
const mib = 1024 * 1024;
/** Bodies made per statement. */
const fillChunk = 64;

interface SizeFigures {
  gib: number;
  files: number;
  seconds: number;
  mbPerSec: number;
  peakRssMb: number;
  peakHeapMb: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { gib: { type: 'string', default: '0.5,2' }, dir: { type: 'string', default: os.tmpdir() } } });
  const sizes = values.gib.split(',').map(Number);
  if (sizes.some((gib) => !(gib > 0))) throw new Error(`--gib: "${values.gib}" is not a list of sizes in GiB`);
  const config = runtimeConfig();
  const databaseUrl = config.databaseUrl ?? (await ensureEmbeddedPostgres({ config, detached: false, log })).databaseUrl;
  const pool = createPool(databaseUrl, 4);
  await migrate(pool);
  const figures: SizeFigures[] = [];
  try {
    for (const gib of sizes) figures.push(await runSize(pool, gib, values.dir));
  } finally {
    await pool.end();
  }
  const rows = figures.map(
    (f) => `${`${f.gib} GiB`.padEnd(9)} ${f.files} bodies: mirror + tar in ${f.seconds.toFixed(1)} s (${f.mbPerSec.toFixed(0)} MB/s written); peak RSS ${f.peakRssMb.toFixed(0)} MB, peak heap ${f.peakHeapMb.toFixed(0)} MB`,
  );
  process.stdout.write(`${rows.join('\n')}\n${JSON.stringify(figures)}\n`);
}

async function runSize(pool: ReturnType<typeof createPool>, gib: number, base: string): Promise<SizeFigures> {
  const crawlId = `bench-outputs-${process.pid}-${Date.now()}`;
  const files = Math.round((gib * 1024 * mib) / mib);
  const dir = await fs.mkdtemp(path.join(base, 'tcrawl-bench-outputs-'));
  try {
    log(`${gib} GiB: filling ${files} bodies of 1 MiB…`);
    const spec = { seeds: ['http://bench.example/'], outputs: [{ type: 'mirror', dir: 'mirror' }, { type: 'tar', path: 'bodies.tar' }] };
    await pool.query('INSERT INTO crawls (crawl_id, spec) VALUES ($1, $2)', [crawlId, JSON.stringify(spec)]);
    // 1 MiB per body (an md5 digest repeated), distinct per body; made in the database, so filling costs no
    // transfer, a chunk at a time so no statement holds GiBs.
    for (let from = 1; from <= files; from += fillChunk) {
      await pool.query(
        `WITH made AS (SELECT i, decode(repeat(md5(i::text || $1), 65536), 'hex') AS body FROM generate_series($2::int, $3::int) AS i),
              kept AS (INSERT INTO bodies (crawl_id, sha256, body) SELECT $1, sha256(body), body FROM made)
         INSERT INTO pages (crawl_id, url, final_url, status, content_type, depth, bytes, links, fetched_at, body_sha256)
         SELECT $1, 'http://bench.example/files/' || i, 'http://bench.example/files/' || i, 200, 'application/octet-stream', 1, length(body), 0, now(), sha256(body)
           FROM made`,
        [crawlId, from, Math.min(files, from + fillChunk - 1)],
      );
    }
    let peakRss = 0;
    let peakHeap = 0;
    const sample = () => {
      const usage = process.memoryUsage();
      peakRss = Math.max(peakRss, usage.rss);
      peakHeap = Math.max(peakHeap, usage.heapUsed);
    };
    sample();
    const sampler = setInterval(sample, 50);
    const startedMs = performance.now();
    log(`${gib} GiB: writing the mirror and the tar…`);
    const reports = await writeOutputs(pool, crawlId, { cwd: dir });
    const seconds = (performance.now() - startedMs) / 1000;
    clearInterval(sampler);
    sample();
    const bytes = reports.reduce((sum, report) => sum + report.bytes, 0);
    if (reports.some((report) => report.written !== files)) throw new Error(`wrote ${reports.map((r) => r.written).join(' and ')} of ${files} bodies`);
    return { gib, files, seconds, mbPerSec: bytes / 1e6 / seconds, peakRssMb: peakRss / 1e6, peakHeapMb: peakHeap / 1e6 };
  } finally {
    await deleteCrawlRows(pool, crawlId);
    await fs.rm(dir, { recursive: true, force: true });
  }
}

runMain(main);
