import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Pool, PoolClient } from 'pg';
import QueryStream from 'pg-query-stream';
import { pack as tarPack, type Pack } from 'tar-stream';
import { InvalidInputError } from '../errors';
import { outputSchema, type ItemFilesOutput, type JsonlOutput, type MirrorOutput, type OutputSpec, type TarOutput } from '../output-spec';
import { exportRecords, exportRows } from './export';
import { conflictPath, itemFilePath, mirrorPath } from './mirror-path';

/**
 * Writes a crawl's `outputs` (src/output-spec.ts) from its database: the
 * bodies every worker kept in `bodies`, the rows of `pages` and `items`.
 * Whichever workers fetched what, the output is one complete set, each page
 * once. Every output is written afresh beside its target (`name.partial`)
 * and moved into place when complete, so running this again (after more of
 * the crawl, or after a crash half-way) leaves exactly what the database
 * holds: nothing twice, nothing stale. Memory stays flat whatever the size:
 * rows stream through cursors and one body at a time is held.
 */

export interface OutputReport {
  output: OutputSpec;
  /** Where it was written, resolved. */
  path: string;
  /** Files (mirror, item-files), entries (tar) or records (jsonl) written. */
  written: number;
  /** Of those, hard links to a body written before (mirror, tar). */
  linked: number;
  /** Pages or items whose path was taken (or, for an item, could not be made), written under `.tcrawl-conflicts/` (see mirror-path.ts). */
  conflicts: number;
  /** Body bytes (mirror, tar) or text bytes (jsonl, item-files) written. */
  bytes: number;
  /** jsonl with rotateBytes: the parts. */
  parts?: string[];
}

/** The outputs of a crawl's spec, as stored with it. */
export async function crawlOutputs(pool: Pool, crawlId: string): Promise<OutputSpec[]> {
  const { rows } = await pool.query<{ outputs: unknown }>(`SELECT spec->'outputs' AS outputs FROM crawls WHERE crawl_id = $1`, [crawlId]);
  if (!rows[0]) throw new InvalidInputError(`No crawl with id "${crawlId}" in this database`, 'TCRAWL_UNKNOWN_CRAWL');
  return outputSchema.array().parse(rows[0].outputs ?? []);
}

/**
 * Writes every output of the crawl's spec, paths resolved against `cwd`;
 * one report each, in the spec's order.
 *
 * @throws InvalidInputError `TCRAWL_UNKNOWN_CRAWL` when the database has no such crawl.
 */
export async function writeOutputs(pool: Pool, crawlId: string, { cwd = process.cwd() }: { cwd?: string } = {}): Promise<OutputReport[]> {
  const reports: OutputReport[] = [];
  for (const output of await crawlOutputs(pool, crawlId)) reports.push(await writeOutput(pool, crawlId, output, cwd));
  return reports;
}

function writeOutput(pool: Pool, crawlId: string, output: OutputSpec, cwd: string): Promise<OutputReport> {
  switch (output.type) {
    case 'mirror':
      return writeMirror(pool, crawlId, output, path.resolve(cwd, output.dir));
    case 'tar':
      return writeTar(pool, crawlId, output, path.resolve(cwd, output.path));
    case 'jsonl':
      return writeJsonl(pool, crawlId, output, path.resolve(cwd, output.path));
    case 'item-files':
      return writeItemFiles(pool, crawlId, output, path.resolve(cwd, output.dir));
  }
}

/** A saved page with a kept body, in digest order: pages sharing a body come one after another. */
interface BodyRow {
  url: string;
  final_url: string;
  content_type: string | null;
  fetched_at: Date;
  body_sha256: Buffer;
}

/**
 * Calls `take` for each saved page with a kept body, in digest order, with
 * the body — fetched once per digest, on a second connection, so the cursor
 * holds rows of a few hundred bytes and memory one body — or null for a
 * page whose body is the previous page's.
 */
async function eachBody(pool: Pool, crawlId: string, take: (row: BodyRow, body: Buffer | null) => Promise<void>): Promise<void> {
  const pages = await pool.connect();
  const bodies = await pool.connect();
  try {
    const rows = pages.query(
      new QueryStream(
        `SELECT url, final_url, content_type, fetched_at, body_sha256 FROM pages
          WHERE crawl_id = $1 AND body_sha256 IS NOT NULL ORDER BY body_sha256, url`,
        [crawlId],
        { batchSize: 500 },
      ),
    );
    let previous: Buffer | null = null;
    for await (const row of rows as AsyncIterable<BodyRow>) {
      const same = previous !== null && previous.equals(row.body_sha256);
      previous = row.body_sha256;
      await take(row, same ? null : await bodyOf(bodies, crawlId, row.body_sha256));
    }
  } finally {
    pages.release();
    bodies.release();
  }
}

async function bodyOf(client: PoolClient, crawlId: string, sha256: Buffer): Promise<Buffer> {
  const { rows } = await client.query<{ body: Buffer }>('SELECT body FROM bodies WHERE crawl_id = $1 AND sha256 = $2', [crawlId, sha256]);
  if (!rows[0]) throw new Error(`Crawl ${crawlId}: body ${sha256.toString('hex')} is named by a page but not kept`);
  return rows[0].body;
}

const conflictCodes = new Set(['EEXIST', 'ENOTDIR', 'EISDIR']);

async function writeMirror(pool: Pool, crawlId: string, output: MirrorOutput, dir: string): Promise<OutputReport> {
  const report: OutputReport = { output, path: dir, written: 0, linked: 0, conflicts: 0, bytes: 0 };
  const staging = `${dir}.partial`;
  await fs.rm(staging, { recursive: true, force: true });
  await fs.mkdir(staging, { recursive: true });
  let first = '';
  await eachBody(pool, crawlId, async (row, body) => {
    const place = (relative: string) => (body ? writeNew(path.join(staging, relative), body) : fs.link(first, path.join(staging, relative)));
    const relative = await placeOrConflict(place, mirrorPath(row.final_url, row.content_type), conflictPath(row.final_url, row.url), report);
    if (body) {
      first = path.join(staging, relative);
      report.bytes += body.length;
    } else {
      report.linked++;
    }
    report.written++;
  });
  await replaceWith(staging, dir);
  return report;
}

/** Places a file at `wanted`, or at `conflict` when that is taken (counted in the report); the path used. */
async function placeOrConflict(place: (relative: string) => Promise<void>, wanted: string | null, conflict: string, report: OutputReport): Promise<string> {
  if (wanted !== null) {
    try {
      await place(wanted);
      return wanted;
    } catch (error) {
      if (!conflictCodes.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
    }
  }
  await place(conflict);
  report.conflicts++;
  return conflict;
}

async function writeItemFiles(pool: Pool, crawlId: string, output: ItemFilesOutput, dir: string): Promise<OutputReport> {
  const report: OutputReport = { output, path: dir, written: 0, linked: 0, conflicts: 0, bytes: 0 };
  const staging = `${dir}.partial`;
  await fs.rm(staging, { recursive: true, force: true });
  await fs.mkdir(staging, { recursive: true });
  for await (const item of await exportRecords(pool, crawlId, { what: 'items' })) {
    const body = Buffer.from(`${JSON.stringify(item.data, null, 2)}\n`);
    const conflict = `.tcrawl-conflicts/${createHash('sha256').update(`${item.url}\n${item.position}`).digest('hex').slice(0, 16)}.json`;
    await placeOrConflict((relative) => writeNew(path.join(staging, relative), body), itemFilePath(output.name, item), conflict, report);
    report.written++;
    report.bytes += body.length;
  }
  await replaceWith(staging, dir);
  return report;
}

/** Creates the file (and its folders); EEXIST, ENOTDIR or EISDIR when its path is taken. */
async function writeNew(file: string, body: Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, body, { flag: 'wx' });
}

/** Moves `staging` to `target`, replacing what was there (the old one is removed once out of the way). */
async function replaceWith(staging: string, target: string): Promise<void> {
  const old = `${target}.old`;
  await fs.rm(old, { recursive: true, force: true });
  await fs.rename(target, old).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  await fs.rename(staging, target);
  await fs.rm(old, { recursive: true, force: true });
}

async function writeTar(pool: Pool, crawlId: string, output: TarOutput, file: string): Promise<OutputReport> {
  const report: OutputReport = { output, path: file, written: 0, linked: 0, conflicts: 0, bytes: 0 };
  const gzip = output.gzip ?? /\.(t?gz)$/i.test(file);
  const staging = `${file}.partial`;
  await fs.mkdir(path.dirname(file), { recursive: true });
  const archive = tarPack();
  // tar-stream's streams are streamx ones: read as an async iterable, back-pressure and all.
  const source = Readable.from(archive);
  const written = gzip ? pipeline(source, createGzip(), createWriteStream(staging)) : pipeline(source, createWriteStream(staging));
  // An archive has no folders to collide with: only two pages of one name conflict, which needs every name
  // so far; a set of names is the one thing here that grows with the output (tens of bytes a page).
  const names = new Set<string>();
  let first = '';
  try {
    await eachBody(pool, crawlId, async (row, body) => {
      let name = mirrorPath(row.final_url, row.content_type);
      if (names.has(name)) {
        name = conflictPath(row.final_url, row.url);
        report.conflicts++;
      }
      names.add(name);
      const mtime = row.fetched_at;
      if (body) {
        await addEntry(archive, { name, size: body.length, mtime }, body);
        first = name;
        report.bytes += body.length;
      } else {
        await addEntry(archive, { name, type: 'link', linkname: first, mtime });
        report.linked++;
      }
      report.written++;
    });
    archive.finalize();
    await written;
  } catch (error) {
    archive.destroy(error as Error);
    await written.catch(() => undefined);
    await fs.rm(staging, { force: true });
    throw error;
  }
  await fs.rename(staging, file);
  return report;
}

/** Resolves once the entry is in the archive's stream: the stream's back-pressure reaches the caller. */
function addEntry(archive: Pack, header: Parameters<Pack['entry']>[0], body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error | null) => (error ? reject(error) : resolve());
    if (body) archive.entry(header, body, done);
    else archive.entry(header, done);
  });
}

async function writeJsonl(pool: Pool, crawlId: string, output: JsonlOutput, file: string): Promise<OutputReport> {
  const report: OutputReport = { output, path: file, written: 0, linked: 0, conflicts: 0, bytes: 0 };
  await fs.mkdir(path.dirname(file), { recursive: true });
  const rotate = output.rotateBytes;
  const partName = (n: number) => (rotate === undefined ? file : partFile(file, n));
  const parts: string[] = [];
  let part: ReturnType<typeof createWriteStream> | null = null;
  let partBytes = 0;
  const closePart = async () => {
    if (!part) return;
    const closing = part;
    part = null;
    await new Promise<void>((resolve, reject) => closing.end((error?: Error | null) => (error ? reject(error) : resolve())));
  };
  const openPart = () => {
    parts.push(partName(parts.length + 1));
    part = createWriteStream(`${parts[parts.length - 1]}.partial`);
    partBytes = 0;
  };
  try {
    const rows = await exportRows(pool, crawlId, { what: output.what, format: 'jsonl' });
    for await (const chunk of rows as AsyncIterable<Buffer | string>) {
      for (const line of splitLines(chunk)) {
        const bytes = Buffer.byteLength(line);
        if (!part || (rotate !== undefined && partBytes > 0 && partBytes + bytes > rotate)) {
          await closePart();
          openPart();
        }
        if (!part!.write(line)) await new Promise<void>((resolve) => part!.once('drain', () => resolve()));
        partBytes += bytes;
        report.bytes += bytes;
        report.written++;
      }
    }
    if (!part) openPart();
    await closePart();
  } catch (error) {
    await closePart().catch(() => undefined);
    await Promise.all(parts.map((name) => fs.rm(`${name}.partial`, { force: true })));
    throw error;
  }
  for (const name of parts) await fs.rename(`${name}.partial`, name);
  if (rotate !== undefined) {
    await removeStaleParts(file, parts.length);
    report.parts = parts;
  }
  return report;
}

/** `items.jsonl`, part 3 → `items.00003.jsonl`. */
function partFile(file: string, n: number): string {
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}.${String(n).padStart(5, '0')}${ext}`;
}

/** Parts beyond this run's last, left by an earlier run over more records: they would hold them twice. */
async function removeStaleParts(file: string, kept: number): Promise<void> {
  for (let n = kept + 1; ; n++) {
    const stale = partFile(file, n);
    try {
      await fs.rm(stale);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
  }
}

/** The export stream's chunks are whole lines, one record each (jsonLines writes them so). */
function splitLines(chunk: Buffer | string): string[] {
  const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
  return text.match(/[^\n]*\n/g) ?? [];
}
