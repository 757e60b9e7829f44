/**
 * What the crash tests check after a crawl that lost a process mid-way: every
 * page saved and counted once, nothing left checked out, and only the work
 * that was checked out at a kill fetched twice.
 */
import assert from 'node:assert/strict';
import type { Pool } from 'pg';
import type { CrawlSummary } from '../../src/crawl-types';
import type { FixtureSite } from '../fixtures/site';
import { pathOf } from './stack';

/** Frontier rows by state, e.g. `{ done: 120, leased: 40, queued: 60 }`. */
export async function frontierStates(pool: Pool, crawlId: string): Promise<Record<string, number>> {
  const { rows } = await pool.query(`SELECT state, count(*)::int AS n FROM frontier WHERE crawl_id = $1 GROUP BY state`, [crawlId]);
  return Object.fromEntries(rows.map((r) => [r.state as string, r.n as number]));
}

/**
 * Every expected page saved once, counted once, nothing left queued or
 * leased; and only URLs leased at the kills (fetched, their results not yet
 * recorded), `leasedAtKill` of them, were fetched again. `site` served this crawl only.
 */
export async function assertSavedExactlyOnce(pool: Pool, site: FixtureSite, crawlId: string, summary: CrawlSummary, leasedAtKill: number, log: (line: string) => void): Promise<void> {
  const { rows } = await pool.query(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
  assert.deepEqual(rows.map((r) => pathOf(r.url)).sort(), [...site.expectations.savedPaths].sort());
  assert.equal(summary.saved, site.expectations.savedPaths.length, 'no page counted twice');
  const unfinished = await pool.query(`SELECT url, state, batch_id FROM frontier WHERE crawl_id = $1 AND state IN ('queued', 'leased')`, [crawlId]);
  assert.deepEqual(unfinished.rows, []);
  const counts = new Map<string, number>();
  for (const request of site.requests) counts.set(request.path, (counts.get(request.path) ?? 0) + 1);
  // robots.txt is cached per crawl.
  const notFrontier = new Set(['/robots.txt']);
  const refetched = [...counts].filter(([p, n]) => n > (site.expectations.transientRequests[p] ?? 1) && !notFrontier.has(p)).map(([p]) => p);
  log(`fetched again: ${refetched.length} URLs (${refetched.join(' ')}); ${leasedAtKill} were leased at the kill`);
  assert.ok(refetched.length <= leasedAtKill, `${refetched.length} URLs fetched twice, but only ${leasedAtKill} were leased at the kill: ${refetched.join(' ')}`);
}
