import type { RatePoint } from './binning';

/**
 * Everything a crawl report shows, aggregated in Postgres
 * (report-queries.ts): its size does not grow with the crawl's, only with the
 * number of bars (bounded by the top-N, the bin and the point limits).
 * Strings from the crawl (the id, seeds, hosts, reasons, field names, item
 * values) are untrusted: render-html.ts escapes every one.
 */
export interface ReportData {
  crawlId: string;
  /** When the crawl was created (ISO 8601). */
  createdAt: string;
  /** When this report was made (ISO 8601). */
  generatedAt: string;
  /** The first seeds of the spec, and how many it has in all. */
  seeds: { first: string[]; total: number };
  /** Frontier rows per state: saved = done. */
  totals: Totals;
  /** Rows in `items`. */
  items: number;
  /** Finished URLs (saved, failed, skipped) per HTTP status, `none` for no response; numeric order, `none` last. */
  statusCodes: Array<{ status: string; count: number }>;
  /** Frontier rows per link depth. */
  depths: DepthBar[];
  /** Saved pages over time (pages.fetched_at), or null before the first. */
  timeline: Timeline | null;
  /** Failed URLs by reason and by host: the biggest groups, and the rest together. */
  failuresByReason: Ranked;
  failuresByHost: Ranked;
  itemField: ItemFieldChart;
}

export interface Totals {
  saved: number;
  failed: number;
  skipped: number;
  queued: number;
  leased: number;
}

/** URLs at depths `[lo, hi)` (one depth when `hi = lo + 1`), by state. */
export interface DepthBar {
  lo: number;
  hi: number;
  saved: number;
  failed: number;
  skipped: number;
  /** Queued or leased. */
  pending: number;
}

export interface Timeline {
  /** The first page's fetched_at (ISO 8601); points are offsets from it. */
  startAt: string;
  /** From the first page to the last. */
  spanMs: number;
  stepMs: number;
  points: RatePoint[];
}

/** The `top` biggest groups, biggest first (ties by key), and what they leave out. */
export interface Ranked {
  top: Array<{ key: string; count: number }>;
  /** Groups beyond the top, and their rows together; null when none. */
  rest: { groups: number; count: number } | null;
}

/** The histogram of a numeric item field, or why there is none. */
export type ItemFieldChart = ItemFieldHistogram | { field: null; note: string };

export interface ItemFieldHistogram {
  field: string;
  /** Named with `--field`, or chosen as the most numeric field. */
  chosenBy: 'option' | 'auto';
  /** Items with a value for the field, and how many of those values are numeric. */
  values: number;
  numeric: number;
  /** One value as found, and the number read from it: shows how values were read. */
  example: { value: string; number: number } | null;
  /** `[lo, hi)`, each with the count of numbers in it; empty when no value is numeric. */
  bins: Array<{ lo: number; hi: number; count: number }>;
  /** Every number read is whole (bins are labelled by their first and last whole number). */
  integral: boolean;
}
