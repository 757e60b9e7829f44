import type { Pool } from 'pg';
import { InvalidInputError } from '../errors';
import { binEdges, rateSeries, timeStepMs, valueBins, type Bins } from './binning';
import { chooseNumericField, LEADING_NUMBER_PATTERN, parseLeadingNumber, type ItemFieldStats } from '../leading-number';
import type { DepthBar, ItemFieldChart, Ranked, ReportData, Timeline, Totals } from './report-data';

/**
 * The SQL behind a crawl report. Every query aggregates in Postgres and
 * returns a bounded number of rows (states × statuses, bins, top-N, points),
 * so a crawl of millions of URLs is reported in constant memory here.
 */

export interface ReportQueryOptions {
  /** Item field to chart; by default the most numeric one (see chooseNumericField). */
  field?: string;
  /** Failure groups shown by reason and by host; the rest are summed as one. @default 10 */
  top?: number;
  /** The report's "generated at". @default now */
  now?: Date;
}

/** Seeds named in the report; the rest are counted. */
const SEEDS_SHOWN = 5;
/** Most bars of the depth chart: deeper crawls get depth ranges. */
const MAX_DEPTH_BARS = 50;

/** @throws InvalidInputError TCRAWL_UNKNOWN_CRAWL when the database has no such crawl, TCRAWL_UNKNOWN_FIELD for a `field` no item has. */
export async function queryReportData(pool: Pool, crawlId: string, options: ReportQueryOptions = {}): Promise<ReportData> {
  const crawl = await crawlOf(pool, crawlId);
  const top = options.top ?? 10;
  const { totals, statusCodes, maxDepth } = await outcomes(pool, crawlId);
  const [depths, timeline, failuresByReason, failuresByHost, items, itemField] = await Promise.all([
    depthBars(pool, crawlId, maxDepth),
    pageTimeline(pool, crawlId),
    failedBy(pool, crawlId, 'reason', top, totals.failed),
    failedBy(pool, crawlId, 'host', top, totals.failed),
    itemCount(pool, crawlId),
    itemFieldChart(pool, crawlId, crawl.itemFields, options.field),
  ]);
  return {
    crawlId,
    createdAt: crawl.createdAt.toISOString(),
    generatedAt: (options.now ?? new Date()).toISOString(),
    seeds: crawl.seeds,
    totals,
    items,
    statusCodes,
    depths,
    timeline,
    failuresByReason,
    failuresByHost,
    itemField,
  };
}

interface CrawlRow {
  createdAt: Date;
  seeds: { first: string[]; total: number };
  /** Fields of the spec's `items`, in jsonb's key order. */
  itemFields: string[];
}

async function crawlOf(pool: Pool, crawlId: string): Promise<CrawlRow> {
  const { rows } = await pool.query<{ created_at: Date; first_seeds: string[] | null; seeds: number | null; fields: string[] | null }>(
    `SELECT created_at,
            (SELECT array_agg(s) FROM (SELECT s FROM jsonb_array_elements_text(spec->'seeds') s LIMIT $2) x) AS first_seeds,
            jsonb_array_length(spec->'seeds') AS seeds,
            (SELECT array_agg(k) FROM jsonb_object_keys(spec->'items'->'fields') k) AS fields
       FROM crawls WHERE crawl_id = $1`,
    [crawlId, SEEDS_SHOWN],
  );
  const row = rows[0];
  if (row === undefined) {
    throw new InvalidInputError(`No crawl "${crawlId}" in this database: check the crawl id, and that DATABASE_URL names the database it was crawled into.`, 'TCRAWL_UNKNOWN_CRAWL');
  }
  return { createdAt: row.created_at, seeds: { first: row.first_seeds ?? [], total: row.seeds ?? 0 }, itemFields: row.fields ?? [] };
}

/** Frontier rows per state and per status, and the deepest depth (which sizes the depth bins), in one pass. */
async function outcomes(pool: Pool, crawlId: string): Promise<{ totals: Totals; statusCodes: ReportData['statusCodes']; maxDepth: number | null }> {
  const { rows } = await pool.query<{ state: string; status: number | null; n: string; max_depth: number }>(
    `SELECT state, status, count(*) AS n, max(depth) AS max_depth FROM frontier WHERE crawl_id = $1 GROUP BY state, status`,
    [crawlId],
  );
  const totals: Totals = { saved: 0, failed: 0, skipped: 0, queued: 0, leased: 0 };
  const byStatus = new Map<number | null, number>();
  const maxDepth = rows.length === 0 ? null : Math.max(...rows.map((row) => row.max_depth));
  for (const row of rows) {
    const n = Number(row.n);
    totals[row.state === 'done' ? 'saved' : (row.state as keyof Totals)] += n;
    if (row.state === 'done' || row.state === 'failed' || row.state === 'skipped') byStatus.set(row.status, (byStatus.get(row.status) ?? 0) + n);
  }
  const statusCodes = [...byStatus]
    .sort(([a], [b]) => (a ?? Infinity) - (b ?? Infinity))
    .map(([status, count]) => ({ status: status === null ? 'none' : String(status), count }));
  return { totals, statusCodes, maxDepth };
}

async function depthBars(pool: Pool, crawlId: string, maxDepth: number | null): Promise<DepthBar[]> {
  if (maxDepth === null) return [];
  const bins = valueBins(0, maxDepth, true, MAX_DEPTH_BARS);
  const { rows } = await pool.query<{ bin: number; state: string; n: string }>(
    `SELECT depth / $2 AS bin, state, count(*) AS n FROM frontier WHERE crawl_id = $1 GROUP BY 1, 2`,
    [crawlId, bins.width],
  );
  const bars: DepthBar[] = Array.from({ length: bins.count }, (_, i) => ({ ...binEdges(bins, i), saved: 0, failed: 0, skipped: 0, pending: 0 }));
  for (const row of rows) {
    const bar = bars[row.bin]!;
    const state = row.state === 'done' ? 'saved' : row.state === 'failed' || row.state === 'skipped' ? row.state : 'pending';
    bar[state] += Number(row.n);
  }
  return bars;
}

async function pageTimeline(pool: Pool, crawlId: string): Promise<Timeline | null> {
  // The start goes back as text: a JavaScript Date would drop its microseconds, putting the first page before it.
  const { rows: [span] } = await pool.query<{ start: string | null; start_iso: string | null; span_ms: number | null }>(
    `SELECT min(fetched_at)::text AS start,
            to_char(min(fetched_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS start_iso,
            extract(epoch FROM max(fetched_at) - min(fetched_at))::float8 * 1000 AS span_ms
       FROM pages WHERE crawl_id = $1`,
    [crawlId],
  );
  if (span?.start == null || span.start_iso === null || span.span_ms === null) return null;
  const stepMs = timeStepMs(span.span_ms);
  const { rows } = await pool.query<{ bucket: number; n: string }>(
    `SELECT floor(extract(epoch FROM fetched_at - $2::timestamptz) * 1000 / $3)::int AS bucket, count(*) AS n
       FROM pages WHERE crawl_id = $1 GROUP BY 1`,
    [crawlId, span.start, stepMs],
  );
  const points = rateSeries(span.span_ms, stepMs, rows.map((row) => ({ bucket: row.bucket, pages: Number(row.n) })));
  return { startAt: span.start_iso, spanMs: span.span_ms, stepMs, points };
}

async function failedBy(pool: Pool, crawlId: string, column: 'reason' | 'host', top: number, failed: number): Promise<Ranked> {
  // `column` is one of two literals, never user input.
  const { rows } = await pool.query<{ key: string; n: string; groups: string }>(
    `SELECT coalesce(${column}, 'none') AS key, count(*) AS n, count(*) OVER () AS groups
       FROM frontier WHERE crawl_id = $1 AND state = 'failed'
      GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $2`,
    [crawlId, top],
  );
  const topGroups = rows.map((row) => ({ key: row.key, count: Number(row.n) }));
  const shown = topGroups.reduce((sum, group) => sum + group.count, 0);
  const groups = rows.length === 0 ? 0 : Number(rows[0]!.groups);
  return { top: topGroups, rest: groups > rows.length ? { groups: groups - rows.length, count: failed - shown } : null };
}

async function itemCount(pool: Pool, crawlId: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM items WHERE crawl_id = $1`, [crawlId]);
  return Number(rows[0]!.n);
}

/**
 * The number each item value starts with, in SQL: the same pattern as parseLeadingNumber. Used as
 * `LATERAL (SELECT … AS v OFFSET 0)`: OFFSET 0 keeps Postgres from inlining the subquery, which would
 * run the regex once per mention of `v` (five times in the stats) instead of once per value.
 */
const numberOfValue = (value: string) => `replace((regexp_match(${value}, $2))[1], ',', '')::float8`;

async function itemFieldChart(pool: Pool, crawlId: string, specFields: string[], field: string | undefined): Promise<ItemFieldChart> {
  const stats = await itemFieldStats(pool, crawlId);
  const known = [...new Set([...specFields, ...stats.map((s) => s.field)])].sort();
  if (field !== undefined && !known.includes(field)) {
    const fields = known.length === 0 ? 'it has no item fields' : `its item fields: ${known.join(', ')}`;
    throw new InvalidInputError(`--field "${field}": crawl "${crawlId}" has no such item field (${fields}).`, 'TCRAWL_UNKNOWN_FIELD');
  }
  const chosen = field === undefined ? chooseNumericField(stats) : (stats.find((s) => s.field === field) ?? emptyStats(field));
  if (chosen === undefined) {
    const note = known.length === 0
      ? 'The crawl extracted no items (no items selector in its spec, or no page matched it).'
      : `No item field is mostly numeric (fields: ${known.join(', ')}); name one with --field to chart it anyway.`;
    return { field: null, note };
  }
  const bins = chosen.min === null || chosen.max === null ? null : valueBins(chosen.min, chosen.max, chosen.integral);
  return {
    field: chosen.field,
    chosenBy: field === undefined ? 'auto' : 'option',
    values: chosen.values,
    numeric: chosen.numeric,
    example: await numericExample(pool, crawlId, chosen.field),
    bins: bins === null ? [] : await fieldBins(pool, crawlId, chosen.field, bins),
    integral: chosen.integral,
  };
}

function emptyStats(field: string): ItemFieldStats {
  return { field, values: 0, numeric: 0, min: null, max: null, integral: true };
}

/** Per field: values, numeric values, their range and whether all are whole, over every item of the crawl in one pass. */
async function itemFieldStats(pool: Pool, crawlId: string): Promise<ItemFieldStats[]> {
  const { rows } = await pool.query<{ field: string; values: string; numeric: string; min: number | null; max: number | null; integral: boolean | null }>(
    `SELECT f.key AS field, count(f.value) AS values, count(n.v) AS numeric, min(n.v) AS min, max(n.v) AS max, bool_and(n.v = trunc(n.v)) AS integral
       FROM items i
      CROSS JOIN LATERAL jsonb_each_text(i.data) AS f(key, value)
      CROSS JOIN LATERAL (SELECT ${numberOfValue('f.value')} AS v OFFSET 0) n
      WHERE i.crawl_id = $1
      GROUP BY f.key`,
    [crawlId, LEADING_NUMBER_PATTERN],
  );
  return rows.map((row) => ({
    field: row.field,
    values: Number(row.values),
    numeric: Number(row.numeric),
    min: row.min,
    max: row.max,
    integral: row.integral ?? true,
  }));
}

async function numericExample(pool: Pool, crawlId: string, field: string): Promise<{ value: string; number: number } | null> {
  const { rows } = await pool.query<{ value: string }>(
    `SELECT data->>$3 AS value FROM items WHERE crawl_id = $1 AND data->>$3 ~ $2 LIMIT 1`,
    [crawlId, LEADING_NUMBER_PATTERN, field],
  );
  const value = rows[0]?.value;
  const number = value === undefined ? null : parseLeadingNumber(value);
  return value === undefined || number === null ? null : { value, number };
}

async function fieldBins(pool: Pool, crawlId: string, field: string, bins: Bins): Promise<Array<{ lo: number; hi: number; count: number }>> {
  const { rows } = await pool.query<{ bin: number; n: string }>(
    `SELECT least(greatest(floor((v - $4) / $5), 0), $6 - 1)::int AS bin, count(*) AS n
       FROM items CROSS JOIN LATERAL (SELECT ${numberOfValue('data->>$3')} AS v OFFSET 0) n
      WHERE crawl_id = $1 AND v IS NOT NULL GROUP BY 1`,
    [crawlId, LEADING_NUMBER_PATTERN, field, bins.lo, bins.width, bins.count],
  );
  const counts = new Map(rows.map((row) => [row.bin, Number(row.n)]));
  return Array.from({ length: bins.count }, (_, i) => ({ ...binEdges(bins, i), count: counts.get(i) ?? 0 }));
}
