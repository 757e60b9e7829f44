/**
 * `npm run bench:export`: proves that `tcrawl export` runs in constant
 * memory. Inserts a synthetic crawl of N frontier rows (all `failed`, each
 * with a `found_on`) and N pages (INSERT … SELECT generate_series), then
 * exports pages (JSON lines and CSV), failed (CSV) and links (JSON lines) to
 * files, each in a child process of its own (bench/export-run.ts) that
 * samples its RSS and heap every 100 ms. Prints rows, seconds, rows/s, peak
 * RSS and its growth over the child's baseline; exits 1 if any export's RSS
 * grew more than --max-growth-mb, or wrote the wrong number of rows.
 * Deletes the synthetic crawl at the end (timed: tcrawl delete's row part).
 *
 *   npm run bench:export -- [--rows 1000000] [--max-growth-mb 100] [--keep-files]
 *
 * Postgres: DATABASE_URL, else the embedded one.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';
import type { Pool } from 'pg';
import { runtimeConfig } from '../src/config';
import { createPool, migrate } from '../src/infra/database';
import { ensureEmbeddedPostgres } from '../src/infra/embedded-postgres';
import { deleteCrawlRows } from '../src/results/delete';
import type { ExportFormat, ExportKind } from '../src/results/export';
import type { ExportRunResult } from './export-run';

const log = (line: string) => process.stderr.write(`${line}\n`);

const runs: Array<{ what: ExportKind; format: ExportFormat }> = [
  { what: 'pages', format: 'jsonl' },
  { what: 'pages', format: 'csv' },
  { what: 'failed', format: 'csv' },
  { what: 'links', format: 'jsonl' },
];

async function insertSyntheticCrawl(pool: Pool, crawlId: string, rows: number): Promise<void> {
  await pool.query(`INSERT INTO crawls (crawl_id, spec) VALUES ($1, '{"seeds":["https://bench.example/"]}')`, [crawlId]);
  // Values about as long as a real crawl's: URLs of ~45 characters, titles of ~40, a detail on each failure.
  await pool.query(
    `INSERT INTO frontier (crawl_id, url, host, depth, state, attempts, status, reason, detail, found_on)
     SELECT $1, 'https://bench.example/section/' || (i % 1000) || '/page-' || i, 'bench.example', 3, 'failed', 1, 404, 'http_404',
            'the server answered 404 Not Found', 'https://bench.example/section/' || (i % 1000) || '/'
       FROM generate_series(1, $2::int) AS i`,
    [crawlId, rows],
  );
  await pool.query(
    `INSERT INTO pages (crawl_id, url, final_url, status, content_type, title, depth, bytes, links, fetched_at)
     SELECT $1, u, u, 200, 'text/html; charset=utf-8', 'Page ' || i || ', "a title" of some length', 3, 20000 + i % 5000, 40, now()
       FROM generate_series(1, $2::int) AS i, LATERAL (SELECT 'https://bench.example/section/' || (i % 1000) || '/page-' || i) AS x(u)`,
    [crawlId, rows],
  );
}

/** Lines of the file (every synthetic value is free of line breaks, so a line is a record). */
async function lineCount(file: string): Promise<number> {
  let lines = 0;
  for await (const _line of readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity })) lines++;
  return lines;
}

function measuredExport(databaseUrl: string, crawlId: string, what: ExportKind, format: ExportFormat, out: string): Promise<ExportRunResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, 'export-run.ts'), crawlId, what, format, out],
      { env: { ...process.env, DATABASE_URL: databaseUrl }, maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`export of ${what} as ${format} failed: ${stderr || error.message}`));
        else resolve(JSON.parse(stdout) as ExportRunResult);
      },
    );
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, 'max-growth-mb': { type: 'string', default: '100' }, 'keep-files': { type: 'boolean', default: false } } });
  const rows = Number(values.rows);
  const maxGrowthMb = Number(values['max-growth-mb']);
  const config = runtimeConfig();
  const databaseUrl = config.databaseUrl ?? (await ensureEmbeddedPostgres({ config, detached: true, log })).databaseUrl;
  const pool = createPool(databaseUrl, 2);
  const crawlId = `bench-export-${process.pid}-${Date.now()}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcrawl-bench-export-'));
  let failed = false;
  try {
    await migrate(pool);
    let started = performance.now();
    await insertSyntheticCrawl(pool, crawlId, rows);
    log(`Inserted ${rows.toLocaleString('en')} frontier rows and ${rows.toLocaleString('en')} pages in ${((performance.now() - started) / 1000).toFixed(1)} s (crawl ${crawlId}).`);
    const table: string[][] = [['export', 'rows', 'seconds', 'rows/s', 'MB written', 'baseline RSS MB', 'peak RSS MB', 'RSS growth MB', 'peak heap MB', 'samples']];
    for (const { what, format } of runs) {
      const out = path.join(dir, `${what}.${format}`);
      const result = await measuredExport(databaseUrl, crawlId, what, format, out);
      const written = (await lineCount(out)) - (format === 'csv' ? 1 : 0);
      const growthMb = result.peakRssMb - result.baselineRssMb;
      if (written !== rows) {
        log(`FAIL: ${what} as ${format} wrote ${written} rows, not ${rows}`);
        failed = true;
      }
      if (growthMb > maxGrowthMb) {
        log(`FAIL: ${what} as ${format}: RSS grew ${growthMb.toFixed(1)} MB, more than ${maxGrowthMb} MB`);
        failed = true;
      }
      table.push([
        `${what} ${format}`,
        written.toLocaleString('en'),
        result.seconds.toFixed(1),
        Math.round(written / result.seconds).toLocaleString('en'),
        (fs.statSync(out).size / (1024 * 1024)).toFixed(0),
        result.baselineRssMb.toFixed(0),
        result.peakRssMb.toFixed(0),
        growthMb.toFixed(1),
        result.peakHeapMb.toFixed(0),
        String(result.samples),
      ]);
      if (!values['keep-files']) fs.rmSync(out);
    }
    started = performance.now();
    const deleted = await deleteCrawlRows(pool, crawlId);
    log(`Deleted the crawl's ${Object.values(deleted).reduce((a, b) => a + b, 0).toLocaleString('en')} rows in one transaction in ${((performance.now() - started) / 1000).toFixed(1)} s.`);
    const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
    process.stdout.write(table.map((row) => row.map((value, i) => (i === 0 ? value.padEnd(widths[i]) : value.padStart(widths[i]))).join('  ')).join('\n') + '\n');
    log(failed ? 'FAILED' : `OK: every export wrote all ${rows.toLocaleString('en')} rows with RSS growth under ${maxGrowthMb} MB.`);
    return failed ? 1 : 0;
  } finally {
    await deleteCrawlRows(pool, crawlId).catch(() => undefined);
    await pool.end();
    if (!values['keep-files']) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    log(`bench:export: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
