/**
 * What a chaos run came to, measured from Postgres and from the site's
 * request counts — never from what the crawler says about itself, which is
 * checked against them instead.
 */
import type { Pool } from 'pg';
import type { CrawlSummary } from '../src/crawl-types';
import type { Fault } from './chaos-faults';
import type { ChaosSite, Outcome } from './chaos-site';

export interface ChaosFigures {
  pagesExpected: number;
  pagesSaved: number;
  missing: number;
  /** Saved but not expected. */
  extra: number;
  duplicatePageRows: number;
  /** Items stored twice for one page (same url and data), or a page with the wrong number of items. */
  duplicateItemRows: number;
  /** The frontier's `done` URLs are exactly the `pages` rows. */
  frontierMatchesPages: boolean;
  /** Frontier rows whose final state or reason is not the one the site prescribes, or that are still queued/leased. */
  outcomeMismatches: number;
  /** Requests beyond one per URL, retries the site forced (503/429) not counted; robots.txt included. */
  duplicateFetches: number;
  /** The allowance for them: URLs leased right before each fault, summed. */
  leasedAtFaults: number;
  /** URLs fetched more than once that were not leased right before any fault: each one unexplained. */
  refetchedNotLeasedAtAFault: number;
  /** Requests for robots-disallowed paths or the unseeded host. */
  forbiddenRequests: number;
  workerKills: number;
  killsInTransaction: number;
  temporalRestarts: number;
  postgresRestarts: number;
  continueAsNewRuns: number;
  wallSeconds: number;
  /** The workflow's result (saved, failed, skipped) equals the rows (pages, frontier done/failed/skipped), and nothing is left queued or leased. */
  countersEqualRows: boolean;
  counters: { saved: number; failed: number; skipped: number };
  rows: { pages: number; done: number; failed: number; skipped: number; queued: number; leased: number };
}

/** Evidence behind the figures, printed when the target is missed. */
export interface ChaosEvidence {
  missing: string[];
  extra: string[];
  mismatches: string[];
  duplicateFetches: string[];
  refetchedNotLeasedAtAFault: string[];
  forbiddenRequests: string[];
}

export interface MeasureInput {
  pool: Pool;
  crawlId: string;
  site: ChaosSite;
  summary: CrawlSummary;
  faults: Fault[];
  continueAsNewRuns: number;
  wallSeconds: number;
}

interface FrontierRow {
  url: string;
  state: string;
  reason: string | null;
}

export async function measure({ pool, crawlId, site, summary, faults, continueAsNewRuns, wallSeconds }: MeasureInput): Promise<{ figures: ChaosFigures; evidence: ChaosEvidence }> {
  const frontier = (await pool.query<FrontierRow>(`SELECT url, state, reason FROM frontier WHERE crawl_id = $1`, [crawlId])).rows;
  const pageUrls = (await pool.query<{ url: string }>(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId])).rows.map((r) => r.url);
  const saved = new Set(pageUrls);
  const expectedSaved = [...site.expected].filter(([, o]) => o.state === 'done').map(([url]) => url);
  const missing = expectedSaved.filter((url) => !saved.has(url));
  const extra = pageUrls.filter((url) => site.expected.get(url)?.state !== 'done');
  const done = frontier.filter((r) => r.state === 'done').map((r) => r.url);
  const rows = { pages: pageUrls.length, ...stateCounts(frontier) };
  const counters = { saved: summary.saved, failed: summary.failed, skipped: summary.skipped };
  const mismatches = outcomeMismatches(frontier, site.expected);
  const fetches = duplicateFetches(frontier, site);
  const leasedAtSomeFault = new Set(faults.flatMap((f) => f.leased));
  const unexplained = fetches.filter((f) => !f.url.endsWith('/robots.txt') && !leasedAtSomeFault.has(f.url));
  const forbidden = [...site.counts].filter(([url]) => site.mustNotRequest(url)).map(([url, c]) => `${url} ×${c.requests}`);
  const figures: ChaosFigures = {
    pagesExpected: expectedSaved.length,
    pagesSaved: pageUrls.length,
    missing: missing.length,
    extra: extra.length,
    duplicatePageRows: pageUrls.length - saved.size,
    duplicateItemRows: await duplicateItemRows(pool, crawlId),
    frontierMatchesPages: done.length === saved.size && done.every((url) => saved.has(url)),
    outcomeMismatches: mismatches.length,
    duplicateFetches: fetches.reduce((n, f) => n + f.extra, 0),
    leasedAtFaults: faults.reduce((n, f) => n + f.leased.length, 0),
    refetchedNotLeasedAtAFault: unexplained.length,
    forbiddenRequests: forbidden.length,
    workerKills: faults.filter((f) => f.kind === 'worker' || f.kind === 'worker-in-transaction').length,
    killsInTransaction: faults.filter((f) => f.backend?.confirmed).length,
    temporalRestarts: faults.filter((f) => f.kind === 'temporal').length,
    postgresRestarts: faults.filter((f) => f.kind === 'postgres').length,
    continueAsNewRuns,
    wallSeconds: Math.round(wallSeconds * 10) / 10,
    countersEqualRows:
      counters.saved === rows.pages && counters.saved === rows.done && counters.failed === rows.failed && counters.skipped === rows.skipped && rows.queued === 0 && rows.leased === 0,
    counters,
    rows,
  };
  return {
    figures,
    evidence: { missing, extra, mismatches, duplicateFetches: fetches.map(describeFetches),
      refetchedNotLeasedAtAFault: unexplained.map(describeFetches),
      forbiddenRequests: forbidden,
    },
  };
}

/** Whether the promise held: completed (the caller only measures a completed crawl), nothing lost, nothing doubled, counts true, robots.txt and scope obeyed. */
export function targetMet(f: ChaosFigures): boolean {
  return (
    f.missing === 0 &&
    f.extra === 0 &&
    f.duplicatePageRows === 0 &&
    f.duplicateItemRows === 0 &&
    f.frontierMatchesPages &&
    f.countersEqualRows &&
    f.forbiddenRequests === 0 &&
    f.duplicateFetches <= f.leasedAtFaults
  );
}

const describeFetches = (f: { url: string; requests: number; forced: number }) => `${f.url} requested ${f.requests}× (${f.forced} forced)`;

function stateCounts(frontier: FrontierRow[]): { done: number; failed: number; skipped: number; queued: number; leased: number } {
  const counts = { done: 0, failed: 0, skipped: 0, queued: 0, leased: 0 };
  for (const { state } of frontier) counts[state as keyof typeof counts]++;
  return counts;
}

function outcomeMismatches(frontier: FrontierRow[], expected: Map<string, Outcome>): string[] {
  const found = new Map(frontier.map((r) => [r.url, r]));
  const out: string[] = [];
  for (const [url, want] of expected) {
    const row = found.get(url);
    const wantReason = want.state === 'done' ? null : want.reason;
    if (!row) out.push(`${url}: not in the frontier (expected ${want.state} ${wantReason ?? ''})`);
    else if (row.state !== want.state || (want.state !== 'done' && row.reason !== wantReason)) out.push(`${url}: ${row.state} ${row.reason ?? ''} (expected ${want.state} ${wantReason ?? ''})`);
  }
  for (const row of frontier) if (!expected.has(row.url)) out.push(`${row.url}: ${row.state} ${row.reason ?? ''} (not a URL of the site)`);
  return out;
}

/**
 * Per URL the crawl queued (redirect targets included: each is a URL of its
 * own) and per robots.txt, the requests beyond the first that the site did
 * not force with a 503 or 429.
 */
function duplicateFetches(frontier: FrontierRow[], site: ChaosSite): { url: string; requests: number; forced: number; extra: number }[] {
  const robots = [...site.counts.keys()].filter((url) => url.endsWith('/robots.txt'));
  return [...frontier.map((r) => r.url), ...robots]
    .map((url) => {
      const { requests, forced } = site.counts.get(url) ?? { requests: 0, forced: 0 };
      return { url, requests, forced, extra: Math.max(0, requests - 1 - forced) };
    })
    .filter((f) => f.extra > 0);
}

/** Items stored twice for a page (same data), plus pages whose item count is not the two each tree page carries. */
async function duplicateItemRows(pool: Pool, crawlId: string): Promise<number> {
  const { rows } = await pool.query<{ twice: number; wrong_count: number }>(
    `WITH per_page AS (
       SELECT p.url, count(i.url)::int AS n, count(DISTINCT i.data::text)::int AS distinct_n
         FROM pages p LEFT JOIN items i ON i.crawl_id = p.crawl_id AND i.url = p.url
        WHERE p.crawl_id = $1
        GROUP BY p.url)
     SELECT coalesce(sum(n - distinct_n), 0)::int AS twice,
            count(*) FILTER (WHERE n <> CASE WHEN url ~ '/p/[0-9]+$' THEN 2 ELSE 0 END)::int AS wrong_count
       FROM per_page`,
    [crawlId],
  );
  return rows[0].twice + rows[0].wrong_count;
}

/** The figures as an aligned two-column table. */
export function table(f: ChaosFigures): string {
  const lines: [string, string | number | boolean][] = [
    ['pages expected', f.pagesExpected],
    ['pages saved', f.pagesSaved],
    ['missing', f.missing],
    ['saved but not expected', f.extra],
    ['duplicate rows: pages', f.duplicatePageRows],
    ['duplicate rows: items', f.duplicateItemRows],
    ['frontier done = pages rows', f.frontierMatchesPages],
    ['outcomes not as the site prescribes', f.outcomeMismatches],
    ['duplicate fetches', f.duplicateFetches],
    ['URLs leased at the faults (allowance)', f.leasedAtFaults],
    ['  fetched twice, not leased at any fault', f.refetchedNotLeasedAtAFault],
    ['requests for forbidden URLs', f.forbiddenRequests],
    ['worker kills', f.workerKills],
    ['  of which inside a transaction', f.killsInTransaction],
    ['Temporal restarts', f.temporalRestarts],
    ['Postgres restarts', f.postgresRestarts],
    ['continue-as-new runs', f.continueAsNewRuns],
    ['wall time (s)', f.wallSeconds],
    ['counters = rows', f.countersEqualRows],
    ['  counters (saved/failed/skipped)', `${f.counters.saved}/${f.counters.failed}/${f.counters.skipped}`],
    ['  rows (pages/done/failed/skipped/queued/leased)', `${f.rows.pages}/${f.rows.done}/${f.rows.failed}/${f.rows.skipped}/${f.rows.queued}/${f.rows.leased}`],
  ];
  const width = Math.max(...lines.map(([label]) => label.length));
  return lines.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}
