import { pipeline, type Readable } from 'node:stream';
import type { Pool, PoolClient } from 'pg';
import QueryStream from 'pg-query-stream';
import { InvalidInputError } from '../errors';
import { columnsOf, csvRows, jsonLines, type ExportFormat, type ExportKind, type ExportRecords } from './export-format';

export { exportFormats, exportKinds, type ExportFormat, type ExportKind, type ExportRecord, type ExportRecords } from './export-format';

/**
 * Streams a crawl's rows out of Postgres through a cursor: memory stays
 * constant whatever the crawl's size, and a slow reader slows the query
 * (the cursor fetches the next rows only when the stream wants more).
 */

export interface ExportOptions<W extends ExportKind = ExportKind> {
  what: W;
  /** With `what: 'pages'`: include the `html` column (null unless the crawl ran with `saveHtml`). @default false */
  html?: boolean;
}

/** An object-mode Readable of one kind of record: `for await (const page of records)`. */
export type RecordStream<T> = Readable & { [Symbol.asyncIterator](): AsyncIterableIterator<T> };

/**
 * The crawl's records of one kind, in `url` order (items by url, position),
 * as they were when the call began: one read-only snapshot, even while the
 * crawl goes on. Destroy the stream to stop early; its connection goes back
 * to the pool either way.
 *
 * @throws InvalidInputError `TCRAWL_UNKNOWN_CRAWL` when the database has no such crawl.
 */
export async function exportRecords<W extends ExportKind>(pool: Pool, crawlId: string, options: ExportOptions<W>): Promise<RecordStream<ExportRecords[W]>> {
  return (await openExport(pool, crawlId, options, { itemFields: false })).records as RecordStream<ExportRecords[W]>;
}

/**
 * The crawl's records of one kind as text: JSON lines, or CSV (RFC 4180,
 * header row, CRLF) whose item columns are the item fields found in the
 * crawl (computed first, in the same snapshot, so the stream stays one
 * pass). Pipe it to a file or a response; an error of the query or of a
 * stage is an error of this stream.
 *
 * @throws InvalidInputError `TCRAWL_UNKNOWN_CRAWL` when the database has no such crawl.
 */
export async function exportRows(pool: Pool, crawlId: string, options: ExportOptions & { format: ExportFormat }): Promise<Readable> {
  const { records, itemFields } = await openExport(pool, crawlId, options, { itemFields: options.format === 'csv' && options.what === 'items' });
  // No callback work: pipeline destroys every stage on an error, so the caller sees it on the stream returned.
  if (options.format === 'jsonl') return pipeline(records, jsonLines(), () => undefined);
  const [toCells, csv, chunks] = csvRows(options.what, { html: options.html, itemFields });
  return pipeline(records, toCells, csv, chunks, () => undefined);
}

/** Rows per cursor read; a page with its HTML may be MiBs, so fewer of them. */
const batchSize = { rows: 500, pagesWithHtml: 8 } as const;

async function openExport(pool: Pool, crawlId: string, options: ExportOptions, wants: { itemFields: boolean }): Promise<{ records: Readable; itemFields: string[] }> {
  const client = await pool.connect();
  try {
    // One snapshot for the checks, the item fields and the rows: the CSV header matches the rows exactly.
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const crawl = await client.query<{ links: string | null }>(`SELECT spec->>'links' AS links FROM crawls WHERE crawl_id = $1`, [crawlId]);
    if (!crawl.rowCount) throw unknownCrawlError(crawlId);
    const wholeGraph = crawl.rows[0]!.links === 'all';
    const itemFields = wants.itemFields ? await itemFieldsOf(client, crawlId) : [];
    const size = options.what === 'pages' && options.html ? batchSize.pagesWithHtml : batchSize.rows;
    const records = client.query(new QueryStream(selectFor(options, wholeGraph), [crawlId], { batchSize: size }));
    // Ended, failed or destroyed by the reader: the cursor is closed by now; end the snapshot and give the
    // connection back, or discard it if it broke.
    records.once('close', () => {
      client.query('ROLLBACK').then(
        () => client.release(),
        (error: Error) => client.release(error),
      );
    });
    return { records, itemFields };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
    throw error;
  }
}

/** The item fields of the crawl (the union of its items' top-level keys), sorted. */
async function itemFieldsOf(client: PoolClient, crawlId: string): Promise<string[]> {
  const { rows } = await client.query<{ field: string }>(
    `SELECT DISTINCT field FROM items,
       jsonb_object_keys(CASE WHEN jsonb_typeof(data) = 'object' THEN data ELSE '{}'::jsonb END) AS field
     WHERE crawl_id = $1 ORDER BY field`,
    [crawlId],
  );
  return rows.map((row) => row.field);
}

/**
 * Each ordered by the table's primary key, which Postgres reads in order: no sort, however many rows.
 * Links: every link followed when the crawl recorded them all (`links: all`), else the link each URL was first found by.
 */
function selectFor(options: ExportOptions, wholeGraph: boolean): string {
  const columns = columnsOf(options.what, options).join(', ');
  switch (options.what) {
    case 'pages':
      return `SELECT ${columns} FROM pages WHERE crawl_id = $1 ORDER BY url`;
    case 'items':
      return `SELECT ${columns} FROM items WHERE crawl_id = $1 ORDER BY url, position`;
    case 'failed':
      return `SELECT ${columns} FROM frontier WHERE crawl_id = $1 AND state = 'failed' ORDER BY url`;
    case 'links':
      if (wholeGraph) return `SELECT from_url AS found_on, to_url AS url FROM links WHERE crawl_id = $1 ORDER BY from_url, to_url`;
      return `SELECT ${columns} FROM frontier WHERE crawl_id = $1 AND found_on IS NOT NULL ORDER BY url`;
  }
}

/** A crawl id this database has no crawl for. */
export function unknownCrawlError(crawlId: string): InvalidInputError {
  return new InvalidInputError(`No crawl with id "${crawlId}" in this database (check the id, and DATABASE_URL)`, 'TCRAWL_UNKNOWN_CRAWL');
}
