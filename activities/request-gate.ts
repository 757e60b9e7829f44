import { withPacingMargin } from './host-pacer';
import { localNowMs } from './database-clock';

/**
 * What a request that passed a gate tells it once it is on the wire: when
 * its headers were written, or null if it never was sent. The first call
 * counts; `fetchPage` always makes one.
 */
export type RequestSent = (wireStartMs: number | null) => void;

/**
 * Paces the request starts of one host in a batch: the first no earlier
 * than the granted start, every next one at least one interval after the
 * previous one *actually* started. Starts pass the gate one at a time, and a
 * request passes only once the one before it is on the wire (its headers
 * written, as undici reports them), counting from then: a late timer, a
 * busy event loop or a slow connect only delays the rest.
 *
 * Each interval gets a 3% margin. A request reaches the site a little after
 * its headers are written — well under a millisecond on loopback — and the
 * site reads its clock a little after that, late by its own event loop's
 * stalls; 3% of every interval is 30 ms of slack in any second, whatever the
 * rate.
 */
export class RequestGate {
  private turn: Promise<void> = Promise.resolve();
  /** Resolves once the request that passed last is on the wire, or is known never to be. */
  private previousSent: Promise<void> = Promise.resolve();
  private nextAtMs: number;
  requests = 0;
  firstStartMs: number | null = null;
  lastStartMs: number | null = null;

  /** The spacing asked for, ms; starts are kept this plus the margin apart. */
  spacingMs: number;
  private intervalMs: number;

  constructor(
    startAtMs: number,
    intervalMs: number,
    /** Sleeps `ms`; rejects when `signal` (the caller's, beside the gate's own) aborts. */
    private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>,
  ) {
    this.nextAtMs = startAtMs;
    this.spacingMs = intervalMs;
    this.intervalMs = withPacingMargin(intervalMs);
  }

  /** Widens the spacing (a Crawl-delay learnt mid-batch); never narrows it. */
  slowTo(intervalMs: number): void {
    const widened = withPacingMargin(intervalMs);
    if (widened <= this.intervalMs) return;
    this.spacingMs = intervalMs;
    this.intervalMs = widened;
    if (this.lastStartMs !== null) this.nextAtMs = Math.max(this.nextAtMs, this.lastStartMs + widened);
  }

  /** When the next request may start, margin included: where the host's next batch begins. Null before any request. */
  get nextStartAtMs(): number | null {
    return this.requests === 0 ? null : this.nextAtMs;
  }

  /** The earliest a request could start with `ahead` others before it in line (the granted start, before any request). */
  startAfter(ahead: number): number {
    return this.nextAtMs + ahead * this.intervalMs;
  }

  /**
   * Resolves when the caller may send its request, and counts it as started;
   * the caller reports through what it resolves to when the request is on
   * the wire. Rejects, counting nothing, if `signal` aborts while it waits.
   * `reserve` runs in the request's turn, `reserveLeadMs` before its start
   * (which it is given), and the start waits for it too.
   */
  pass(signal?: AbortSignal, reserve?: (startAtMs: number) => Promise<void>): Promise<RequestSent> {
    const mine = this.turn.then(async () => {
      signal?.throwIfAborted();
      await this.previousSent;
      if (reserve) {
        await this.sleepUntil(this.nextAtMs - reserveLeadMs, signal);
        await reserve(this.nextAtMs);
      }
      await this.sleepUntil(this.nextAtMs, signal);
      const now = localNowMs();
      this.requests++;
      this.firstStartMs ??= now;
      this.lastStartMs = now;
      this.nextAtMs = now + this.intervalMs;
      let settle!: () => void;
      this.previousSent = new Promise((resolve) => (settle = resolve));
      let told = false;
      return (wireStartMs: number | null) => {
        if (told) return;
        told = true;
        if (wireStartMs !== null && wireStartMs > (this.lastStartMs ?? 0)) {
          this.lastStartMs = wireStartMs;
          this.nextAtMs = Math.max(this.nextAtMs, wireStartMs + this.intervalMs);
        }
        settle();
      };
    });
    this.turn = mine.then(
      () => undefined,
      () => undefined,
    );
    return mine;
  }

  private async sleepUntil(atMs: number, signal?: AbortSignal): Promise<void> {
    for (let waitMs = atMs - localNowMs(); waitMs > 0; waitMs = atMs - localNowMs()) await this.sleep(Math.ceil(waitMs), signal);
  }
}

/**
 * How long before its start a request reserves it with `pass`'s `reserve`
 * (the fleet's pacer of the host): long enough for the query to be answered
 * within it on a busy worker, short enough that a batch steered to stop
 * leaves at most one start reserved, and that one close (a reservation
 * never used still delays the host's next start by an interval).
 */
const reserveLeadMs = 250;

/** One pacer a request must respect: its key and the spacing it wants, ms. */
export interface PacerSpacing {
  key: string;
  intervalMs: number;
}

/**
 * A RequestGate over several pacers at once (a host, its rate groups, the
 * crawl's total), for one sequence of requests: each request waits until every
 * pacer it names allows it, and its start is what each of them counts from.
 * Waiting for all before marking any keeps one pacer's wait from eating into
 * another's spacing.
 */
export class MultiPacerGate {
  private turn: Promise<void> = Promise.resolve();
  private readonly nextAtMs = new Map<string, number>();

  constructor(
    private readonly sleep: (ms: number) => Promise<void>,
    startAtMs: Record<string, number> = {},
  ) {
    for (const [key, atMs] of Object.entries(startAtMs)) this.nextAtMs.set(key, atMs);
  }

  pass(pacers: PacerSpacing[]): Promise<void> {
    const mine = this.turn.then(async () => {
      const waitMs = Math.max(0, ...pacers.map(({ key }) => (this.nextAtMs.get(key) ?? 0) - localNowMs()));
      if (waitMs > 0) await this.sleep(Math.ceil(waitMs));
      const now = localNowMs();
      for (const { key, intervalMs } of pacers) this.nextAtMs.set(key, Math.max(this.nextAtMs.get(key) ?? 0, now + withPacingMargin(intervalMs)));
    });
    this.turn = mine.catch(() => undefined);
    return mine;
  }

  /** Pushes a pacer's next start out (a Crawl-delay learnt from robots.txt). */
  notBefore(key: string, atMs: number): void {
    this.nextAtMs.set(key, Math.max(this.nextAtMs.get(key) ?? 0, atMs));
  }

  /** Where each pacer's next request may start: where the crawl's pacing goes on. */
  nextStarts(): Record<string, number> {
    return Object.fromEntries(this.nextAtMs);
  }
}
