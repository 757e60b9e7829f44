import { workflowIdFor, type CrawlStatus } from '../client';
import type { RuntimeConfig } from '../config';
import type { CrawlProgress, ShardStatus } from '../crawl-types';
import type { Services } from '../services';

export function workflowUrl(webUiUrl: string, config: RuntimeConfig, crawlId: string): string {
  return `${webUiUrl}/namespaces/${encodeURIComponent(config.temporalNamespace)}/workflows/${encodeURIComponent(workflowIdFor(crawlId))}`;
}

/**
 * One line for a progress display. A running crawl's time is counted to
 * `nowMs`: a query answers with the workflow's clock, which stands still
 * between its tasks (20 s and more while windows run).
 */
export function formatProgressLine(p: CrawlProgress, pagesPerSecond?: number, nowMs = Date.now()): string {
  const over = p.phase === 'finished' || p.phase === 'cancelled';
  const elapsedMs = over ? p.elapsedMs : Math.max(p.elapsedMs, nowMs - p.startedAtMs);
  const parts = [
    p.phase,
    `saved ${p.saved}`,
    `failed ${p.failed}`,
    `skipped ${p.skipped}`,
    `queued ${p.queued}`,
    `in flight ${p.inFlightUrls}`,
    `${(elapsedMs / 1000).toFixed(1)} s`,
  ];
  if (pagesPerSecond !== undefined) parts.push(`${pagesPerSecond.toFixed(1)} pages/s`);
  return parts.join(' · ');
}

function counts(record: Record<string, number>): string {
  const entries = Object.entries(record).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? '' : `(${entries.map(([key, count]) => `${key}: ${count}`).join(', ')})`;
}

/** The human summary printed by `crawl --wait`. */
export function formatSummary(s: CrawlProgress, services: Services, config: RuntimeConfig): string {
  const seconds = s.elapsedMs / 1000;
  const done = s.saved + s.failed + s.skipped;
  const lines = [
    `Crawl ${s.crawlId} finished in ${seconds.toFixed(1)} s (${(done / Math.max(seconds, 0.001)).toFixed(1)} URLs/s)`,
    `  saved    ${s.saved}`,
    `  failed   ${s.failed}`,
    `  skipped  ${s.skipped}`,
    `  reasons  ${counts(s.byReason) || '-'}`,
    `  statuses ${counts(s.byStatus) || '-'}`,
    `  retries  ${s.retried}`,
    `  left in queue ${s.queued}${s.queued > 0 ? ' (max-pages reached)' : ''}`,
    // A user's own DATABASE_URL may hold a secret; the embedded one's password is the documented default.
    `Data: tables pages, items, frontier in ${config.databaseUrl ? 'DATABASE_URL' : services.databaseUrl} (crawl_id = '${s.crawlId}')`,
  ];
  if (services.webUiUrl) lines.push(`Web UI: ${workflowUrl(services.webUiUrl, config, s.crawlId)}`);
  return `${lines.join('\n')}\n`;
}


/** What the crawl is waiting out or gave up on: activities being retried, and batches that failed for good. */
export function formatTrouble({ progress, retrying }: CrawlStatus): string {
  const lines = retrying.map((a) => `retrying ${a.activity} (attempt ${a.attempt}): ${a.lastFailure ?? 'no failure recorded yet'}`);
  for (const f of progress?.batchFailures ?? []) lines.push(`failed for good ${new Date(f.atMs).toISOString()} ${f.host || f.batchId}: ${f.code}: ${f.message}`);
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}

/** The busiest hosts as a table: pacing, back-off, pauses and why; for a sharded crawl, its shards (each shard's workflow has its hosts'). */
export function formatHostTable(p: CrawlProgress, rows = 10): string {
  if (p.shards) return formatShardTable(p.shards, rows);
  if (p.hostStates.length === 0) return '';
  const header = ['host', 'queued', 'batches', 'rate/s', 'backoff', 'crawl-delay', 'paused until', 'reason'];
  const lines = p.hostStates.slice(0, rows).map((h) => [
    h.host,
    String(h.queued),
    String(h.inFlight),
    h.ratePerSec === 0 ? 'unlimited' : h.ratePerSec.toFixed(2),
    h.backoffFactor === 1 ? '-' : `×${h.backoffFactor.toFixed(2)}`,
    h.crawlDelayMs ? `${h.crawlDelayMs / 1000} s` : '-',
    h.pausedUntilMs ? new Date(h.pausedUntilMs).toISOString() : '-',
    h.reason ?? '-',
  ]);
  const more = p.hostStates.length > rows ? `… and ${p.hosts - rows} more hosts\n` : '';
  return `${renderTable(header, lines)}${more}`;
}

function formatShardTable(shards: ShardStatus[], rows: number): string {
  const header = ['shard', 'running', 'budget', 'queued', 'in flight', 'saved', 'failed', 'skipped', 'workflow'];
  const lines = shards.slice(0, rows).map((shard) => [
    String(shard.index),
    shard.running ? 'yes' : 'no',
    shard.running ? String(shard.budget) : '-',
    String(shard.queued),
    String(shard.inFlightUrls),
    String(shard.saved),
    String(shard.failed),
    String(shard.skipped),
    shard.workflowId,
  ]);
  const more = shards.length > rows ? `… and ${shards.length - rows} more shards\n` : '';
  return `${renderTable(header, lines)}${more}`;
}

/** Columns padded to their widest cell, one line each. */
function renderTable(header: string[], lines: string[][]): string {
  const widths = header.map((_, i) => Math.max(header[i].length, ...lines.map((line) => line[i].length)));
  const render = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd();
  return `${[header, ...lines].map(render).join('\n')}\n`;
}
