import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Pool } from 'pg';
import { renderReportHtml } from './render-html';
import { queryReportData, type ReportQueryOptions } from './report-queries';

export type ReportOptions = ReportQueryOptions;

/**
 * A crawl's report: one self-contained HTML page of charts and tables, from
 * the crawl's rows in Postgres (aggregated there: constant memory here,
 * whatever the crawl's size). Opening it fetches nothing.
 * @throws InvalidInputError TCRAWL_UNKNOWN_CRAWL, TCRAWL_UNKNOWN_FIELD (see queryReportData).
 */
export async function buildReport(pool: Pool, crawlId: string, options: ReportOptions = {}): Promise<string> {
  return renderReportHtml(await queryReportData(pool, crawlId, options), chartLibrarySource());
}

let chartLibrary: string | undefined;

/**
 * Chart.js's UMD build (it defines the global `Chart`), read from the
 * installed package. Found next to the package's main file, because its
 * `exports` map lists no path to the UMD build; require.resolve works the
 * same from these sources and from compiled code.
 */
export function chartLibrarySource(): string {
  chartLibrary ??= readFileSync(path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  return chartLibrary;
}
