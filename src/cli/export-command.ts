import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { constants as osConstants } from 'node:os';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { Pool } from 'pg';
import { runtimeConfig } from '../config';
import { InvalidInputError, TcrawlError } from '../errors';
import { createPool, migrate } from '../infra/database';
import { ensureEmbeddedPostgres } from '../infra/embedded-postgres';
import { exportRows, type ExportFormat, type ExportKind } from '../results/export';
import { say as log } from './log-format';

export interface ExportFlags {
  what: ExportKind;
  format: ExportFormat;
  out?: string;
  html?: boolean;
}

/** `tcrawl export <crawlId>`: the crawl's rows to stdout, or atomically to `--out`. */
export async function exportCommand(crawlId: string, flags: ExportFlags): Promise<number> {
  if (flags.html && flags.what !== 'pages') throw new InvalidInputError(`--html goes with --what pages (not ${flags.what})`, 'TCRAWL_INVALID_INPUT');
  return withDatabase(async (pool) => {
    const rows = await exportRows(pool, crawlId, flags);
    if (flags.out === undefined) await toStdout(rows);
    else await toFileAtomically(rows, flags.out);
    return 0;
  });
}

/** Runs `work` with a pool on DATABASE_URL (or the embedded Postgres), migrated. */
export async function withDatabase<T>(work: (pool: Pool) => Promise<T>): Promise<T> {
  const config = runtimeConfig();
  const databaseUrl = config.databaseUrl ?? (await ensureEmbeddedPostgres({ config, detached: true, log })).databaseUrl;
  const pool = createPool(databaseUrl, 2);
  try {
    await migrate(pool);
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/**
 * A reader that went away (`tcrawl export … | head`) is not a failure: the
 * export stops, quietly, with exit 0.
 */
async function toStdout(rows: Readable): Promise<void> {
  try {
    await pipeline(rows, process.stdout);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EPIPE') return;
    throw new TcrawlError('TCRAWL_EXPORT_FAILED', `Export failed part-way, the output is incomplete: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * Writes to a temporary file beside `out` (same file system), flushed to
 * disk, then renamed over `out`: an interrupted export never leaves a file
 * at `out` that looks complete. SIGINT/SIGTERM remove the temporary file.
 */
async function toFileAtomically(rows: Readable, out: string): Promise<void> {
  const temporary = path.join(path.dirname(out), `.${path.basename(out)}.${randomBytes(4).toString('hex')}.partial`);
  const file = await fs.promises.open(temporary, 'wx').catch((error: NodeJS.ErrnoException) => {
    rows.destroy();
    throw new InvalidInputError(`--out ${out}: cannot create a file in ${path.dirname(out)} (${error.code ?? error.message})`, 'TCRAWL_INVALID_OUT');
  });
  const removeTemporary = () => fs.rmSync(temporary, { force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    removeTemporary();
    log(`${signal}: export stopped; ${out} was not written.`);
    process.exit(128 + osConstants.signals[signal]);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    await pipeline(rows, file.createWriteStream({ flush: true }));
    await fs.promises.rename(temporary, out);
  } catch (error) {
    removeTemporary();
    if (error instanceof TcrawlError) throw error;
    throw new TcrawlError('TCRAWL_EXPORT_FAILED', `Export to ${out} failed, nothing was written there: ${(error as Error).message}`, { cause: error });
  } finally {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
  }
}
