import type { CrawlStatus } from '../client';
import type { CrawlProgress } from '../crawl-types';
import { formatDuration } from './duration';
import { formatHostTable, formatTrouble } from './summary';

/**
 * What `tcrawl status --watch` shows, as pure functions of the progress it
 * polled: the rate, the ETA, the TTY frame, the plain line and the end.
 */

/** URLs finished (saved, failed or skipped) at a moment: what `maxPages` counts and the rate measures. */
export interface ProgressSample {
  atMs: number;
  finished: number;
}

export function finishedOf(p: Pick<CrawlProgress, 'saved' | 'failed' | 'skipped'>): number {
  return p.saved + p.failed + p.skipped;
}

/** How far back the rate looks: long enough to smooth batches landing in bursts, short enough to follow a change. */
export const rateWindowMs = 10_000;

/**
 * The samples the rate is measured over, newest last: those of the last
 * `windowMs`, and always the one before the newest. Counts that went down
 * (a new run of the crawl counting afresh) start the window over.
 */
export function addSample(samples: ProgressSample[], sample: ProgressSample, windowMs = rateWindowMs): ProgressSample[] {
  const last = samples[samples.length - 1];
  if (last && sample.finished < last.finished) return [sample];
  const kept = samples.filter((s, i) => s.atMs >= sample.atMs - windowMs || i === samples.length - 1);
  return [...kept, sample];
}

/** URLs finished per second over the samples; undefined until two samples span some time. */
export function ratePerSec(samples: ProgressSample[]): number | undefined {
  if (samples.length < 2) return undefined;
  const first = samples[0];
  const last = samples[samples.length - 1];
  const seconds = (last.atMs - first.atMs) / 1000;
  return seconds > 0 ? (last.finished - first.finished) / seconds : undefined;
}

/**
 * What is left to finish, as far as can be known: the queued and in-flight
 * URLs, capped by the page budget (`maxPages` − finished). When the budget
 * is the cap the crawl ends there (`max-pages`); when the queue is, the crawl
 * ends when it runs dry, later if pages still to be fetched link to new
 * URLs (`queue`: a lower bound).
 */
export interface RemainingWork {
  urls: number;
  /** finished + urls: the bar's 100 %. */
  total: number;
  boundBy: 'max-pages' | 'queue';
}

export function remainingWork(p: CrawlProgress, maxPages: number): RemainingWork {
  const finished = finishedOf(p);
  const budget = Math.max(0, maxPages - finished);
  const known = p.queued + p.inFlightUrls;
  return budget <= known ? { urls: budget, total: finished + budget, boundBy: 'max-pages' } : { urls: known, total: finished + known, boundBy: 'queue' };
}

/** The ETA, labelled with what it rests on, or why there is none yet. */
export function formatEta(remaining: RemainingWork, rate: number | undefined): string {
  if (remaining.urls === 0) return remaining.boundBy === 'max-pages' ? 'finishing' : 'nothing queued or in flight';
  if (rate === undefined) return 'ETA: measuring the rate';
  if (rate <= 0) return `ETA unknown: nothing finished in the last ${rateWindowMs / 1000}s`;
  const etaMs = (remaining.urls / rate) * 1000;
  const eta = etaMs < 1000 ? '< 1s' : formatDuration(etaMs);
  return remaining.boundBy === 'max-pages' ? `ETA ${eta} (to max pages)` : `ETA ≥ ${eta} (queued + in flight; more may be found)`;
}

const eighths = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

/** A bar `width` cells wide, filled to `fraction` (clamped to 0..1) in eighths of a cell. */
export function formatBar(fraction: number, width: number): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width * 8);
  const full = Math.floor(filled / 8);
  const partial = eighths[filled % 8];
  return '█'.repeat(full) + partial + '░'.repeat(width - full - (partial ? 1 : 0));
}

/** The crawl's `maxPages`, or why it is not known (it is read from Postgres). */
export type PageBudget = { maxPages: number } | { unknownBecause: string };

/** Why the progress shown is not fresh: Temporal not answering, or no worker answering the progress query. */
export interface Notice {
  kind: 'temporal-unreachable' | 'no-worker';
  text: string;
}

/** What one poll gave, for the frame: the latest progress seen, and what went wrong since, if anything. */
export interface WatchView {
  crawlId: string;
  /** The newest progress a worker answered with; undefined before the first answer. */
  progress: CrawlProgress | undefined;
  /** Samples for the rate, newest last (see {@link addSample}). */
  samples: ProgressSample[];
  budget: PageBudget;
  /** Why the progress shown is not fresh, if it is not. */
  notice: Notice | undefined;
  nowMs: number;
}

/** The count (against the total, when known), the bar's fraction and the rate and ETA, for the TTY frame and the plain lines. */
function rateAndEta(view: WatchView, p: CrawlProgress): { count: string; fraction: number | undefined; eta: string } {
  const rate = ratePerSec(view.samples);
  const pace = rate === undefined ? '' : `${rate.toFixed(1)} pages/s`;
  if (!('maxPages' in view.budget)) {
    return { count: `${finishedOf(p)} finished`, fraction: undefined, eta: [pace, `no ETA: max pages unknown (${view.budget.unknownBecause})`].filter(Boolean).join(' · ') };
  }
  const remaining = remainingWork(p, view.budget.maxPages);
  const count = `${finishedOf(p)}/${remaining.total}${remaining.boundBy === 'queue' ? '+' : ''}`;
  return { count, fraction: remaining.total === 0 ? 0 : finishedOf(p) / remaining.total, eta: [pace, formatEta(remaining, rate)].filter(Boolean).join(' · ') };
}

function counters(p: CrawlProgress): string {
  return `saved ${p.saved} · failed ${p.failed} · skipped ${p.skipped} · queued ${p.queued} · in flight ${p.inFlightUrls} · hosts ${p.hosts}`;
}

function elapsed(view: WatchView, p: CrawlProgress): string {
  return formatDuration(Math.max(0, view.nowMs - p.startedAtMs));
}

/**
 * The frame redrawn in place on a TTY: a title, the bar with rate and ETA,
 * the counters, the notice, and as many of the busiest hosts as `rows` leaves
 * room for. No line is wider than `columns` (a wrapped line would break the redraw).
 */
export function renderFrame(view: WatchView, columns: number, rows: number): string {
  const p = view.progress;
  const lines = [`crawl ${view.crawlId}${p ? ` · ${p.phase} · ${elapsed(view, p)}` : ''}`];
  if (p) {
    const { count, fraction, eta } = rateAndEta(view, p);
    const text = ` ${count} · ${eta}`;
    const barWidth = Math.min(40, Math.max(10, columns - text.length - 1));
    lines.push(fraction === undefined ? text.trimStart() : formatBar(fraction, barWidth) + text, counters(p));
  }
  if (view.notice) lines.push(p ? `${view.notice.text} (the progress shown is ${formatDuration(view.nowMs - view.samples[view.samples.length - 1].atMs)} old)` : view.notice.text);
  const hostRows = Math.min(10, rows - lines.length - 3);
  if (p && hostRows > 0 && (p.hostStates.length > 0 || p.shards)) lines.push('', ...formatHostTable(p, hostRows).trimEnd().split('\n'));
  return lines.map((line) => fit(line, columns)).join('\n');
}

/** One plain line (no ANSI, no bar) for a log or a pipe. */
export function renderLine(view: WatchView): string {
  const p = view.progress;
  if (!p) return view.notice?.text ?? `crawl ${view.crawlId}: waiting for its progress`;
  const { count, eta } = rateAndEta(view, p);
  return `${elapsed(view, p)} · ${p.phase} · ${count} · ${counters(p)} · ${eta}`;
}

function fit(line: string, columns: number): string {
  return [...line].length <= columns ? line : `${[...line].slice(0, Math.max(0, columns - 1)).join('')}…`;
}

/**
 * What the watch prints when the crawl's execution closes: its final counts
 * (a completed crawl's result; otherwise the last progress seen), the hosts
 * and what went wrong.
 */
export function renderEnd(status: CrawlStatus, lastSeen: CrawlProgress | undefined): string {
  const p = status.progress ?? lastSeen;
  const how = status.status.toLowerCase().replace(/_/g, ' ');
  if (!p) return `Crawl ${status.crawlId} ${how}.\n${formatTrouble(status)}`;
  const seconds = p.elapsedMs / 1000;
  const lines = [
    status.progress
      ? `Crawl ${status.crawlId} ${how} in ${formatDuration(p.elapsedMs)} (${(finishedOf(p) / Math.max(seconds, 0.001)).toFixed(1)} pages/s)`
      : `Crawl ${status.crawlId} ${how}; last progress seen:`,
    `  ${counters(p)}`,
  ];
  if (status.progress && p.queued > 0) lines.push(`  left in queue ${p.queued} (max pages reached)`);
  return `${lines.join('\n')}\n${formatHostTable(p)}${formatTrouble(status)}`;
}
