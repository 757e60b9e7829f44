import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { runtimeConfig } from '../config';
import { InvalidInputError, TcrawlError } from '../errors';
import { createPool, migrate } from '../infra/database';
import { ensureEmbeddedPostgres } from '../infra/embedded-postgres';
import { buildReport } from '../report/build-report';
import { say as log } from './log-format';

export interface ReportCommandFlags {
  out?: string;
  field?: string;
  top?: number;
}

/** `tcrawl report <crawlId>`: writes the crawl's HTML report (atomically) and prints its path. Needs Postgres only. */
export async function reportCommand(crawlId: string, flags: ReportCommandFlags): Promise<number> {
  if (flags.top !== undefined && (!Number.isInteger(flags.top) || flags.top < 1)) {
    throw new InvalidInputError(`--top ${flags.top}: must be a whole number of at least 1`, 'TCRAWL_INVALID_TOP');
  }
  const out = flags.out ?? defaultReportPath(crawlId);
  const config = runtimeConfig();
  const databaseUrl = config.databaseUrl ?? (await ensureEmbeddedPostgres({ config, detached: true, log })).databaseUrl;
  const pool = createPool(databaseUrl, 4);
  try {
    // A fresh database has no tables yet: migrated, it answers "no such crawl" rather than a Postgres error.
    await migrate(pool);
    const html = await buildReport(pool, crawlId, { field: flags.field, top: flags.top });
    await writeFileAtomic(out, html);
  } finally {
    await pool.end();
  }
  process.stdout.write(`${out}\n`);
  return 0;
}

/** `report-<crawlId>.html`, with any character a file name should not carry (a crawl id from the API may) as `_`. */
export function defaultReportPath(crawlId: string): string {
  return `report-${crawlId.replace(/[^A-Za-z0-9._-]/g, '_')}.html`;
}

/** Writes next to `file`, then renames over it: a reader never sees half a report, and a failed run leaves the old one. */
async function writeFileAtomic(file: string, content: string): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const handle = await fs.open(temp, 'wx');
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, file);
  } catch (error) {
    await fs.rm(temp, { force: true });
    const message = `Cannot write the report to ${file}: ${(error as Error).message}`;
    // A path that cannot be written is the user's to fix (exit 2); anything else (a full disk) is a failure.
    if (pathErrors.has((error as NodeJS.ErrnoException).code ?? '')) throw new InvalidInputError(message, 'TCRAWL_REPORT_WRITE');
    throw new TcrawlError('TCRAWL_REPORT_WRITE', message, { cause: error });
  }
}

const pathErrors = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'EACCES', 'EROFS']);
