import { listCrawls, type CrawlStatusFilter } from '../operate/list';
import { withClient } from './commands';
import { formatCrawlList } from './list-table';

/** `tcrawl list`'s options; commander keeps --running, --finished and --failed exclusive. */
export interface ListCommandFlags {
  running?: boolean;
  finished?: boolean;
  failed?: boolean;
  limit?: number;
  query?: string;
  json?: boolean;
}

export async function listCommand(flags: ListCommandFlags): Promise<number> {
  const status: CrawlStatusFilter | undefined = flags.running ? 'running' : flags.finished ? 'finished' : flags.failed ? 'failed' : undefined;
  const rows = await withClient((client) => listCrawls(client, { status, limit: flags.limit, query: flags.query }));
  if (flags.json) process.stdout.write(`${JSON.stringify(rows)}\n`);
  else if (rows.length === 0) process.stderr.write('No crawls match.\n');
  else process.stdout.write(formatCrawlList(rows, Date.now()));
  return 0;
}
