import { runtimeConfig } from '../config';
import { InvalidInputError } from '../errors';
import { crawlTables, deleteCrawl, deleteCrawlsFinishedBefore, type CrawlDeletion, type RetentionMatch } from '../results/delete';
import { withClient } from './commands';
import { withDatabase } from './export-command';
import { say as log } from './log-format';

export interface DeleteFlags {
  force?: boolean;
  finishedBefore?: Date;
  dryRun?: boolean;
  json?: boolean;
}

/**
 * `tcrawl delete <crawlId>` or `tcrawl delete --finished-before DATE`:
 * prints what was deleted (or with --dry-run, what would be) on stdout.
 */
export async function deleteCommand(crawlId: string | undefined, flags: DeleteFlags): Promise<number> {
  if ((crawlId === undefined) === (flags.finishedBefore === undefined)) {
    throw new InvalidInputError('delete takes a crawl id or --finished-before DATE (one of the two)', 'TCRAWL_INVALID_INPUT');
  }
  if (flags.force && flags.finishedBefore) throw new InvalidInputError('--force goes with a crawl id: --finished-before never picks a running crawl', 'TCRAWL_INVALID_INPUT');
  return withDatabase((pool) =>
    withClient(async (client) => {
      if (crawlId !== undefined) {
        const deletion = await deleteCrawl(pool, client, crawlId, { force: flags.force, dryRun: flags.dryRun, log });
        process.stdout.write(flags.json ? `${JSON.stringify({ dryRun: flags.dryRun === true, ...deletion })}\n` : `${describeDeletion(deletion, flags.dryRun)}\n`);
        if (!flags.dryRun && deletion.executions.length > 0) log(backgroundDeletion);
        return 0;
      }
      const before = flags.finishedBefore!;
      const deleted = await deleteCrawlsFinishedBefore(pool, client, before, { taskQueue: runtimeConfig().taskQueue, dryRun: flags.dryRun, log });
      if (flags.json) process.stdout.write(`${JSON.stringify({ finishedBefore: before.toISOString(), dryRun: flags.dryRun === true, crawls: deleted })}\n`);
      else process.stdout.write(deleted.map((deletion) => `${describeDeletion(deletion, flags.dryRun)}\n`).join(''));
      log(`${deleted.length} crawl${deleted.length === 1 ? '' : 's'} finished before ${before.toISOString()} ${flags.dryRun ? 'would be deleted' : 'deleted'}.`);
      if (!flags.dryRun && deleted.some((deletion) => deletion.executions.length > 0)) log(backgroundDeletion);
      return 0;
    }),
  );
}

const backgroundDeletion = 'Temporal deletes the workflow executions in the background, usually within a minute; until then a new crawl with the same id is refused.';

/** `Deleted crawl X: 12 pages, 3 items, 40 frontier, 1 robots, 1 crawls rows; 3 workflow executions (closed 2025-…)`. */
export function describeDeletion(deletion: CrawlDeletion & Partial<RetentionMatch>, dryRun = false): string {
  const rows = crawlTables.map((table) => `${deletion.rows[table]} ${table}`).join(', ');
  const when = deletion.why === undefined ? '' : deletion.why === 'closed' ? ` (closed ${deletion.at!.toISOString()})` : ` (no workflow left; created ${deletion.at!.toISOString()})`;
  const stopped = deletion.stopped ? ` after it was ${deletion.stopped}` : '';
  return `${dryRun ? 'Would delete' : 'Deleted'} crawl ${deletion.crawlId}${stopped}${when}: rows ${rows}; ${deletion.executions.length} workflow execution${deletion.executions.length === 1 ? '' : 's'}`;
}

/**
 * An instant given on the command line, ISO 8601: a date (`2025-01-31`,
 * midnight UTC) or a date and time with its offset (`2025-01-31T12:00:00Z`,
 * `…T12:00+02:00`, seconds and fractions optional). A time without an
 * offset is refused rather than guessed.
 */
export function instantArg(value: string): Date {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(value);
  const invalid = (why: string) => new InvalidInputError(`"${value}" is not ${why}: give a date (2025-01-31, midnight UTC) or a date and time with its offset (2025-01-31T12:00:00Z)`, 'TCRAWL_INVALID_DATE');
  if (!match) throw invalid('an ISO 8601 date');
  const [, year, month, day, hour, minute, second, offset] = match;
  if (hour !== undefined && offset === undefined) throw invalid('a time with an offset (Z, +02:00…)');
  const date = new Date(hour === undefined ? `${value}T00:00:00Z` : value);
  // Date parses 2025-02-30 as March 2nd: the fields must survive the round trip.
  const check = new Date(Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour ?? 0), Number(minute ?? 0), Number(second ?? 0)));
  const fieldsValid =
    check.getUTCFullYear() === Number(year) &&
    check.getUTCMonth() === Number(month) - 1 &&
    check.getUTCDate() === Number(day) &&
    check.getUTCHours() === Number(hour ?? 0) &&
    check.getUTCMinutes() === Number(minute ?? 0) &&
    check.getUTCSeconds() === Number(second ?? 0);
  if (!fieldsValid || Number.isNaN(date.getTime()) || (offset !== undefined && !validOffset(offset))) throw invalid('a valid date');
  return date;
}

function validOffset(offset: string): boolean {
  if (offset.toUpperCase() === 'Z') return true;
  const [hours, minutes] = offset.slice(1).split(':').map(Number);
  return hours <= 23 && minutes <= 59;
}
