/**
 * `npm run bench:report`: does a report take constant memory? Fills the
 * database with two synthetic crawls (generated in SQL: 10,000 URLs and
 * `--rows`, 80% saved, half of those with an item, 5,000 hosts, 13 depths,
 * pages spread over 3 hours), reports each in a fresh process, and prints
 * the time and peak memory (max RSS) of each. The rows are deleted after.
 *
 *   npm run bench:report -- [--rows 1000000]
 *
 * Uses DATABASE_URL, or the embedded Postgres.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import type { Pool } from 'pg';
import { runtimeConfig } from '../src/config';
import { createPool, migrate } from '../src/infra/database';
import { ensureEmbeddedPostgres } from '../src/infra/embedded-postgres';
import { buildReport } from '../src/report/build-report';

const log = (line: string) => process.stderr.write(`${line}\n`);

async function fill(pool: Pool, crawlId: string, rows: number): Promise<void> {
  await pool.query(`INSERT INTO crawls (crawl_id, spec) VALUES ($1, $2)`, [crawlId, { seeds: ['https://example.com/'], items: { selector: '.clan', fields: { name: '.n', members: '.m', tag: '.t' } } }]);
  await pool.query(
    `INSERT INTO frontier (crawl_id, url, host, depth, state, status, reason)
     SELECT $1, 'https://h' || (g % 5000) || '.example.com/p/' || g, 'h' || (g % 5000) || '.example.com', g % 13,
            CASE WHEN g % 100 < 80 THEN 'done' WHEN g % 100 < 88 THEN 'failed' WHEN g % 100 < 95 THEN 'skipped' WHEN g % 100 < 99 THEN 'queued' ELSE 'leased' END,
            CASE WHEN g % 100 < 80 THEN 200 WHEN g % 100 < 84 THEN 404 WHEN g % 100 < 86 THEN 503 WHEN g % 100 < 88 THEN NULL WHEN g % 100 < 95 THEN 301 END,
            CASE WHEN g % 100 < 80 THEN NULL WHEN g % 100 < 84 THEN 'http_404' WHEN g % 100 < 86 THEN 'http_503' WHEN g % 100 < 87 THEN 'timeout'
                 WHEN g % 100 < 88 THEN 'dns' WHEN g % 100 < 95 THEN 'redirected' END
       FROM generate_series(1, $2::int) g`,
    [crawlId, rows],
  );
  await pool.query(
    `INSERT INTO pages (crawl_id, url, final_url, status, depth, bytes, links, fetched_at)
     SELECT $1, url, url, 200, depth, 1000, 10, now() - random() * interval '3 hours' FROM frontier WHERE crawl_id = $1 AND state = 'done'`,
    [crawlId],
  );
  await pool.query(
    `INSERT INTO items (crawl_id, url, position, data)
     SELECT $1, url, 0, jsonb_build_object('name', 'Clan ' || seq, 'tag', '#' || seq,
              'members', CASE WHEN seq % 10 = 0 THEN 'recruiting' ELSE to_char((random() * 5000)::int, 'FM9,999') || ' members' END)
       FROM frontier WHERE crawl_id = $1 AND state = 'done' AND seq % 2 = 0`,
    [crawlId],
  );
}

async function remove(pool: Pool, crawlId: string): Promise<void> {
  for (const table of ['items', 'pages', 'frontier', 'crawls']) await pool.query(`DELETE FROM ${table} WHERE crawl_id = $1`, [crawlId]);
}

/** In a fresh process: the report of one crawl, then its time and max RSS as JSON on stdout. */
async function child(databaseUrl: string, crawlId: string): Promise<void> {
  const pool = createPool(databaseUrl, 4);
  const started = Date.now();
  const html = await buildReport(pool, crawlId);
  await pool.end();
  process.stdout.write(JSON.stringify({ seconds: (Date.now() - started) / 1000, maxRssMb: process.resourceUsage().maxRSS / 1024, htmlKb: html.length / 1024 }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, child: { type: 'string' } } });
  const config = runtimeConfig();
  const databaseUrl = config.databaseUrl ?? (await ensureEmbeddedPostgres({ config, detached: true, log })).databaseUrl;
  if (values.child !== undefined) return child(databaseUrl, values.child);
  const pool = createPool(databaseUrl, 4);
  await migrate(pool);
  try {
    for (const rows of [10_000, Number(values.rows)]) {
      const crawlId = `bench-report-${rows}-${process.pid}`;
      log(`Filling ${crawlId} (${rows} URLs)…`);
      await fill(pool, crawlId, rows);
      try {
        const run = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--child', crawlId], { env: { ...process.env, DATABASE_URL: databaseUrl }, encoding: 'utf8' });
        if (run.status !== 0) throw new Error(`report of ${crawlId} failed: ${run.stderr}`);
        const result = JSON.parse(run.stdout) as { seconds: number; maxRssMb: number; htmlKb: number };
        log(`${rows} URLs: report in ${result.seconds.toFixed(1)} s, max RSS ${result.maxRssMb.toFixed(0)} MB, ${result.htmlKb.toFixed(0)} kB of HTML`);
      } finally {
        await remove(pool, crawlId);
      }
    }
  } finally {
    await pool.end();
  }
}

main().catch((error: unknown) => {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
