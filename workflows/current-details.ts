import type { CrawlProgress } from '../src/crawl-types';

/** Hosts and failure reasons shown on the workflow's page at most. */
const shownHosts = 5;
const shownReasons = 5;

/**
 * The crawl as the Web UI shows it on the workflow's page ("current
 * details", Temporal markdown): progress, the busiest hosts' pacing and why
 * any is held back, the top failure reasons, the last batch failure.
 */
export function currentDetails(p: CrawlProgress, nowMs: number): string {
  const lines = [
    `**${p.phase}** · saved ${p.saved} · queued ${p.queued} · in flight ${p.inFlightUrls} (${p.inFlightBatches} batches) · failed ${p.failed} · skipped ${p.skipped} · ${p.hosts} hosts`,
  ];
  if (p.run && p.run.requeued > 0) lines.push(`This run re-queued ${p.run.requeued} failed URLs: saved ${p.run.saved}, failed ${p.run.failed}, skipped ${p.run.skipped} since.`);
  if (p.hostStates.length > 0) {
    lines.push('', '| host | queued | batches | rate/s | back-off | held back |', '|---|---|---|---|---|---|');
    for (const h of p.hostStates.slice(0, shownHosts)) {
      const held = h.pausedUntilMs !== null ? `${h.reason ?? 'paused'} for ${Math.ceil((h.pausedUntilMs - nowMs) / 1000)} s` : (h.reason ?? '-');
      const rate = h.ratePerSec === 0 ? 'unlimited' : h.ratePerSec.toFixed(2);
      const backoff = h.backoffFactor === 1 ? '-' : `×${h.backoffFactor.toFixed(2)}`;
      lines.push(`| ${cell(h.host)} | ${h.queued} | ${h.inFlight} | ${rate} | ${backoff} | ${cell(held)} |`);
    }
  }
  if (p.shards) {
    lines.push('', '| shard | running | queued | in flight | saved | failed |', '|---|---|---|---|---|---|');
    for (const shard of p.shards) lines.push(`| ${shard.index} | ${shard.running ? 'yes' : 'no'} | ${shard.queued} | ${shard.inFlightUrls} | ${shard.saved} | ${shard.failed} |`);
  }
  const reasons = Object.entries(p.byReason)
    .filter(([, n]) => n > 0)
    .sort(([a, x], [b, y]) => y - x || a.localeCompare(b))
    .slice(0, shownReasons);
  if (reasons.length > 0) lines.push('', `Top reasons (failed or skipped): ${reasons.map(([reason, n]) => `${cell(reason)} ${n}`).join(', ')}`);
  const failure = p.batchFailures?.at(-1);
  if (failure) lines.push('', `Last batch failure (${new Date(failure.atMs).toISOString()}, ${cell(failure.host || failure.batchId)}): ${failure.code}: ${cell(failure.message)}`);
  return `${lines.join('\n')}${uiPaneMargin}`;
}

/** Web UI 2.42 draws its metadata panes about a line short: a blank last line keeps the real last one visible. */
export const uiPaneMargin = '\n\n\u00a0';

/** A value in one markdown table cell or line: no pipes, no line breaks, bounded. */
function cell(text: string): string {
  const flat = text.replace(/\s*[|\r\n]+\s*/g, ' ');
  return flat.length > 200 ? `${flat.slice(0, 199)}…` : flat;
}
