import type { CrawlListRow } from '../operate/list';
import { formatDuration } from './duration';

interface Column {
  header: string;
  /** Numbers line up on the right. */
  align: 'left' | 'right';
  cell(row: CrawlListRow, nowMs: number): string;
}

const blank = (value: number | string | null) => (value === null ? '' : String(value));

const columns: Column[] = [
  { header: 'crawl id', align: 'left', cell: (row) => row.crawlId },
  { header: 'status', align: 'left', cell: (row) => row.status },
  { header: 'phase', align: 'left', cell: (row) => blank(row.phase) },
  { header: 'saved', align: 'right', cell: (row) => blank(row.saved) },
  { header: 'queued', align: 'right', cell: (row) => blank(row.queued) },
  { header: 'failed', align: 'right', cell: (row) => blank(row.failed) },
  { header: 'runs', align: 'right', cell: (row) => String(row.runs) },
  { header: 'started (UTC)', align: 'left', cell: (row) => utcSeconds(row.startedAt) },
  // A running crawl's duration so far: its status says it is not over.
  { header: 'duration', align: 'right', cell: (row, nowMs) => formatDuration(row.durationMs ?? nowMs - row.startedAt.getTime()) },
  { header: 'seed host', align: 'left', cell: (row) => blank(row.seedHost) },
];

/** `2026-12-01 08:57:27`: sortable, and no wider than it needs to be. */
function utcSeconds(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}

/**
 * `tcrawl list`'s table: a header and one line per crawl, columns aligned
 * with two spaces between, counts right-aligned; blank where the execution
 * has no search attributes (workflows before version 2). `nowMs` gives a
 * running crawl's duration.
 */
export function formatCrawlList(rows: CrawlListRow[], nowMs: number): string {
  if (rows.length === 0) return 'No crawls.\n';
  const cells = rows.map((row) => columns.map((column) => column.cell(row, nowMs)));
  const widths = columns.map((column, i) => Math.max(column.header.length, ...cells.map((line) => line[i].length)));
  const render = (line: string[]) =>
    line.map((cell, i) => (columns[i].align === 'right' ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd();
  return `${[columns.map((column) => column.header), ...cells].map(render).join('\n')}\n`;
}
