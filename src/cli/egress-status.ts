import type { Pool } from 'pg';
import { allRoutes, type EgressSettings } from '../egress';

/** One egress route of a crawl as `tcrawl status` shows it: the fleet's view, from `egress_health`. */
export interface EgressStatus {
  /** The route's name: a proxy's origin (never credentials, which the spec cannot hold), or `local:<address>`. */
  egress: string;
  state: 'ok' | 'resting' | 'unused';
  /** Requests sent through it, by every crawl and worker, since first used (counts reach the table about once a second). */
  requests: number;
  /** Ban responses (ban statuses, ban pages) met through it. */
  bans: number;
  /** Connections through it that failed. */
  failures: number;
  /** When its rest ends (ISO 8601); null when not resting. */
  restingUntil: string | null;
  lastProblem: string | null;
}

/** The routes the crawl's spec names, with their health; empty when it names none (or the crawl is not in this database). */
export async function egressStatus(pool: Pool, crawlId: string, nowMs = Date.now()): Promise<EgressStatus[]> {
  const { rows: specs } = await pool.query<{ spec: Partial<EgressSettings> }>(`SELECT spec FROM crawls WHERE crawl_id = $1`, [crawlId]);
  if (specs.length === 0) return [];
  const spec = specs[0].spec;
  const keys = allRoutes({ proxies: spec.proxies ?? [], rateGroups: spec.rateGroups ?? [] }).map((route) => route.key);
  if (keys.length === 0) return [];
  const { rows } = await pool.query<{ egress: string; requests: string; bans: string; failures: string; until_ms: string | null; last_problem: string | null }>(
    `SELECT egress, requests, bans, failures, extract(epoch FROM resting_until) * 1000 AS until_ms, last_problem FROM egress_health WHERE egress = ANY($1)`,
    [keys],
  );
  const byKey = new Map(rows.map((row) => [row.egress, row]));
  return keys.map((egress) => {
    const row = byKey.get(egress);
    if (row === undefined) return { egress, state: 'unused', requests: 0, bans: 0, failures: 0, restingUntil: null, lastProblem: null };
    const untilMs = row.until_ms === null ? null : Number(row.until_ms);
    const resting = untilMs !== null && untilMs > nowMs;
    return {
      egress,
      state: resting ? 'resting' : 'ok',
      requests: Number(row.requests),
      bans: Number(row.bans),
      failures: Number(row.failures),
      restingUntil: resting ? new Date(untilMs).toISOString() : null,
      lastProblem: row.last_problem,
    };
  });
}

/** The routes as a table for the terminal; '' when there are none. */
export function formatEgressTable(routes: EgressStatus[]): string {
  if (routes.length === 0) return '';
  const header = ['proxy', 'state', 'requests', 'bans', 'failures', 'resting until'];
  const body = routes.map((r) => [r.egress, r.state, String(r.requests), String(r.bans), String(r.failures), r.restingUntil ?? '-']);
  const widths = header.map((title, i) => Math.max(title.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i >= 2 && i <= 4 ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd();
  return `${[line(header), ...body.map(line)].join('\n')}\n`;
}
