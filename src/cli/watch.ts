import { constants as osConstants } from 'node:os';
import { isGrpcServiceError, type Client } from '@temporalio/client';
import { crawlStatus, type CrawlStatus } from '../client';
import type { CrawlProgress } from '../crawl-types';
import { InvalidInputError } from '../errors';
import { addSample, finishedOf, renderEnd, renderFrame, renderLine, type Notice, type PageBudget, type ProgressSample, type WatchView } from './watch-frame';

export interface WatchOptions {
  /** Seconds between polls. @default 1 on a TTY, 5 otherwise */
  intervalSecs?: number;
}

/** How long a worker has to answer the progress query before the watch says none did. */
const queryTimeoutMs = 5_000;
/** How long Temporal has to answer a describe before the watch calls it unreachable (the SDK retries within it). */
const callTimeoutMs = 5_000;

/**
 * `tcrawl status <id> --watch`: polls the crawl until its execution closes,
 * redrawing a frame in place on a TTY or printing a plain line per poll
 * otherwise. It follows the crawl id, not a run: a continue-as-new or a new
 * run goes on being watched. A Temporal outage or a crawl without a worker
 * is shown and waited out. Returns the exit code `tcrawl status` would give
 * for the closed execution; SIGINT/SIGTERM end the process at once (130/143),
 * the cursor restored.
 */
export async function watchCrawl(client: Client, crawlId: string, options: WatchOptions = {}): Promise<number> {
  const out = process.stdout;
  const tty = out.isTTY === true;
  const intervalSecs = options.intervalSecs ?? (tty ? 1 : 5);
  if (!(intervalSecs >= 0.1)) throw new InvalidInputError(`--interval must be at least 0.1 seconds, not ${intervalSecs}`, 'TCRAWL_INVALID_INTERVAL');
  // Unknown crawl: fails now, with status's error, before the screen is touched.
  let status = await crawlStatus(client, crawlId, queryTimeoutMs);
  const display = tty ? await ttyDisplay(out) : plainDisplay(out);
  const endOnSignal = (signal: NodeJS.Signals) => {
    display.stop();
    process.stderr.write(`Stopped watching (${signal}); crawl ${crawlId} goes on.\n`);
    // At once, not after the poll in flight: a call still running when the connection closes may crash on its retry.
    process.exit(128 + osConstants.signals[signal]);
  };
  process.once('SIGINT', endOnSignal);
  process.once('SIGTERM', endOnSignal);
  try {
    let samples: ProgressSample[] = [];
    let lastSeen: CrawlProgress | undefined;
    const show = (notice: Notice | undefined) => display.show({ crawlId, progress: lastSeen, samples, budget: pageBudget(lastSeen), notice, nowMs: Date.now() });
    while (!isClosed(status.status)) {
      if (status.progress) {
        lastSeen = status.progress;
        samples = addSample(samples, { atMs: Date.now(), finished: finishedOf(status.progress) });
      }
      show(status.progress ? undefined : { kind: 'no-worker', text: `No worker answered within ${queryTimeoutMs / 1000}s (is one running for task queue "${status.taskQueue}"?); still watching…` });
      status = await nextStatus(client, crawlId, intervalSecs, (reason) => show({ kind: 'temporal-unreachable', text: `Temporal unreachable (${reason}), retrying…` }));
    }
    display.end(renderEnd(status, lastSeen));
    // As `tcrawl status` says it.
    return status.status === 'FAILED' || status.status === 'TERMINATED' || status.status === 'TIMED_OUT' ? 1 : 0;
  } finally {
    process.off('SIGINT', endOnSignal);
    process.off('SIGTERM', endOnSignal);
    display.stop();
  }
}

/** The crawl's status after `intervalSecs`, polling again as long as Temporal does not answer. */
async function nextStatus(client: Client, crawlId: string, intervalSecs: number, onUnreachable: (reason: string) => void): Promise<CrawlStatus> {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, intervalSecs * 1000));
    const polled = await poll(client, crawlId);
    if ('status' in polled) return polled.status;
    onUnreachable(polled.unreachable);
  }
}

function isClosed(status: string): boolean {
  // CONTINUED_AS_NEW cannot be the latest run (its successor is), but a describe racing the hand-over may say it.
  return status !== 'RUNNING' && status !== 'CONTINUED_AS_NEW';
}

/** The crawl's status, or why Temporal did not give it. Errors that waiting cannot fix are thrown. */
async function poll(client: Client, crawlId: string): Promise<{ status: CrawlStatus } | { unreachable: string }> {
  try {
    return { status: await client.connection.withDeadline(Date.now() + callTimeoutMs, () => crawlStatus(client, crawlId, queryTimeoutMs)) };
  } catch (error) {
    const reason = transientReason(error);
    if (reason === undefined) throw error;
    return { unreachable: reason };
  }
}

/** gRPC codes that say the request was wrong, not that the server is away: waiting does not fix them. */
const permanentCodes = new Set([3 /* INVALID_ARGUMENT */, 5 /* NOT_FOUND */, 7 /* PERMISSION_DENIED */, 12 /* UNIMPLEMENTED */, 16 /* UNAUTHENTICATED */]);

/** Why Temporal did not answer ("no answer within 5s", "No connection established…") when waiting may fix it, else undefined. */
function transientReason(error: unknown): string | undefined {
  for (let e = error; e instanceof Error; e = e.cause) {
    if (!isGrpcServiceError(e)) continue;
    if (permanentCodes.has(e.code)) return undefined;
    // The SDK retries an unavailable server until the deadline: its last words there say less than this.
    return e.code === 4 /* DEADLINE_EXCEEDED */ ? `no answer within ${callTimeoutMs / 1000}s` : e.details || e.message;
  }
  return undefined;
}

interface Display {
  show(view: WatchView): void;
  /** Replaces the live display with the final text. */
  end(text: string): void;
  /** Leaves the terminal as it was (cursor shown); safe to call twice. */
  stop(): void;
}

const hideCursor = '\x1b[?25l';
const showCursor = '\x1b[?25h';

/**
 * A frame redrawn in place by log-update, which erases exactly the lines it
 * drew (wrapped or clipped to the terminal's height), changing only the lines
 * that changed. The cursor is hidden meanwhile, on this stream (log-update
 * would hide stderr's).
 */
async function ttyDisplay(out: NodeJS.WriteStream): Promise<Display> {
  // log-update is an ES module; this package is CommonJS.
  const { createLogUpdate } = await import('log-update');
  // A terminal that reports no size (a pseudo-terminal nobody sized says 0×0) would make log-update draw nothing.
  const screen = { isTTY: true, write: (text: string) => out.write(text), get columns() { return out.columns || 80; }, get rows() { return out.rows || 24; } };
  const update = createLogUpdate(screen as unknown as NodeJS.WriteStream, { showCursor: true });
  let state: 'idle' | 'drawing' | 'stopped' = 'idle';
  const stop = () => {
    if (state === 'drawing') {
      update.done();
      out.write(showCursor);
    }
    state = 'stopped';
  };
  return {
    show(view) {
      if (state === 'stopped') return;
      if (state === 'idle') out.write(hideCursor);
      state = 'drawing';
      update(renderFrame(view, screen.columns, screen.rows));
    },
    end(text) {
      update.clear();
      stop();
      out.write(text);
    },
    stop,
  };
}

/** One line per poll, none repeated while nothing moves but the clock: a log, not an animation. */
function plainDisplay(out: NodeJS.WriteStream): Display {
  let lastNotice: Notice['kind'] | undefined;
  return {
    show(view) {
      // A notice is said once per episode (its reason may change from poll to poll); progress lines resume with fresh progress.
      if (view.notice) {
        if (view.notice.kind !== lastNotice) out.write(`${view.notice.text}\n`);
        lastNotice = view.notice.kind;
        return;
      }
      lastNotice = undefined;
      out.write(`${renderLine(view)}\n`);
    },
    end: (text) => out.write(text),
    stop: () => undefined,
  };
}

/** The crawl's page budget, as its workflow reports it (since v2; an older one's progress lacks it). */
function pageBudget(progress: CrawlProgress | undefined): PageBudget {
  if (progress?.maxPages !== undefined) return { maxPages: progress.maxPages };
  return { unknownBecause: progress ? 'the crawl\'s workflow predates maxPages in its progress' : 'no progress yet' };
}
