import { runtimeConfig } from '../config';
import { NAMESPACE_RETENTION, registerNamespace } from '../infra/namespace';
import { registerSearchAttributes } from '../infra/search-attributes';
import { connect, type TcrawlClient } from '../tcrawl-client';
import { searchAttributeTypes } from '../../workflows/search-attributes';
import { formatProgressLine } from './summary';
import { say as log } from './log-format';

/** Runs `work` with a client of the configured (or local) services, closed afterwards. */
export async function withTcrawl<T>(work: (tcrawl: TcrawlClient) => Promise<T>): Promise<T> {
  const tcrawl = await connect({ log });
  try {
    return await work(tcrawl);
  } finally {
    await tcrawl.close();
  }
}

export async function pauseCommand(crawlId: string, flags: { json?: boolean }): Promise<number> {
  const progress = await withTcrawl((tcrawl) => tcrawl.crawl(crawlId).pause());
  process.stdout.write(flags.json ? `${JSON.stringify(progress)}\n` : `Paused crawl ${crawlId}: no new batches; ${progress.inFlightBatches} in flight finish.\n${formatProgressLine(progress)}\n`);
  return 0;
}

export async function resumeCommand(crawlId: string, flags: { json?: boolean }): Promise<number> {
  const { rerun } = await withTcrawl((tcrawl) => tcrawl.crawl(crawlId).resume());
  process.stdout.write(
    flags.json
      ? `${JSON.stringify({ crawlId, rerun })}\n`
      : rerun
        ? `Crawl ${crawlId} goes on as a new run, from its frontier.\n`
        : `Resumed crawl ${crawlId}.\n`,
  );
  return 0;
}

export async function cancelCommand(crawlId: string, flags: { json?: boolean }): Promise<number> {
  const summary = await withTcrawl((tcrawl) => tcrawl.crawl(crawlId).cancel());
  if (flags.json) process.stdout.write(`${JSON.stringify({ crawlId, status: 'CANCELLED', summary })}\n`);
  else {
    process.stdout.write(`Cancelled crawl ${crawlId}${summary ? `: ${formatProgressLine(summary)}` : ''}\n`);
    process.stdout.write(`Its frontier is kept: \`tcrawl resume ${crawlId}\` goes on from here.\n`);
  }
  return 0;
}

export async function retryFailedCommand(crawlId: string, flags: { reason?: string[]; status?: number[]; json?: boolean }): Promise<number> {
  const outcome = await withTcrawl((tcrawl) => tcrawl.crawl(crawlId).retryFailed({ reasons: flags.reason, statuses: flags.status }));
  const which = [flags.reason?.length ? `reason ${flags.reason.join('|')}` : '', flags.status?.length ? `status ${flags.status.join('|')}` : ''].filter(Boolean).join(', ');
  if (flags.json) process.stdout.write(`${JSON.stringify({ crawlId, ...outcome })}\n`);
  else if (outcome.requeued === 0) process.stdout.write(`Crawl ${crawlId} has no failed URLs${which ? ` with ${which}` : ''}: nothing to retry.\n`);
  else process.stdout.write(`Re-queued ${outcome.requeued} failed URLs${which ? ` (${which})` : ''} of crawl ${crawlId}${outcome.rerun ? ' in a new run of the crawl' : ''}. Follow it: tcrawl status ${crawlId}\n`);
  return 0;
}

/**
 * Makes the configured server ready for tcrawl (the local dev server is by itself): registers the
 * namespace if it has none (a fresh self-hosted server), then tcrawl's search attributes.
 */
export async function setupCommand(): Promise<number> {
  const config = runtimeConfig();
  const added = await withTcrawl(async (tcrawl) => {
    if (await registerNamespace(tcrawl.temporal.connection, config.temporalNamespace)) {
      process.stdout.write(`Registered namespace ${config.temporalNamespace} (retention ${NAMESPACE_RETENTION}).\n`);
    }
    return registerSearchAttributes(tcrawl.temporal.connection, config.temporalNamespace);
  });
  const all = Object.keys(searchAttributeTypes).join(', ');
  process.stdout.write(added.length > 0 ? `Registered ${added.join(', ')} in namespace ${config.temporalNamespace}.\n` : `Namespace ${config.temporalNamespace} has tcrawl's search attributes already (${all}).\n`);
  return 0;
}
