import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import { DatabaseClock, localNowMs } from './database-clock';

/**
 * How long a crawl's wanted interval keeps pacing a host for everyone after
 * the start it allows next, ms. When a slow crawl stops (or moves on to other
 * hosts), the crawls still on the host keep its pace until this long after
 * the start it would have made next, then go back to their own rate.
 */
export const WANTED_FOR_MS = 60_000;

export interface HostPacerOptions {
  /** See WANTED_FOR_MS. @default WANTED_FOR_MS */
  wantedForMs?: number;
}

/**
 * One atomic statement per request start, all on the database's clock, so
 * worker clocks may disagree (the caller places the start on its own clock
 * by the measured offset: DatabaseClock). The host's row is locked by the upsert, so
 * reservations of one host are serialised fleet-wide; other hosts' rows are
 * not touched. The new start is the later of now and the last start handed
 * out plus the effective interval: the largest of the caller's and every
 * other crawl's still-live want. Applying the current wants to the gap since
 * the last start (rather than fixing the next start when the last was given
 * out) means a crawl that joins slows the very next gap. Lapsed wants are
 * dropped here, so `wants` holds only crawls on the host now. A caller may
 * reserve ahead of its start: the start is then no earlier than the one it
 * asks for.
 * $1 host, $2 crawl id, $3 interval with margin (ms), $4 wanted-for (ms),
 * $5 the earliest start wanted (epoch ms on the database's clock; 0: now).
 */
const reserveSql = `
  INSERT INTO host_pacer AS h (host, last_start_at, wants)
  VALUES ($1::text, greatest(clock_timestamp(), to_timestamp($5::float8 / 1000)), jsonb_build_object($2::text, jsonb_build_object('ms', $3::float8, 'until', greatest(clock_timestamp(), to_timestamp($5::float8 / 1000)) + make_interval(secs => ($3::float8 + $4::float8) / 1000))))
  ON CONFLICT (host) DO UPDATE SET (last_start_at, wants) = (
    SELECT next.start_at, live.wants || jsonb_build_object($2::text, jsonb_build_object('ms', $3::float8, 'until', next.start_at + make_interval(secs => ($3::float8 + $4::float8) / 1000)))
    FROM (
      SELECT coalesce(jsonb_object_agg(w.key, w.value), '{}'::jsonb) AS wants, max((w.value->>'ms')::float8) AS ms
      FROM jsonb_each(h.wants) AS w
      WHERE w.key <> $2::text AND (w.value->>'until')::timestamptz >= clock_timestamp()
    ) AS live,
    LATERAL (SELECT greatest(clock_timestamp(), to_timestamp($5::float8 / 1000), h.last_start_at + make_interval(secs => greatest($3::float8, live.ms) / 1000)) AS start_at) AS next
  )
  RETURNING extract(epoch FROM h.last_start_at) * 1000 AS start_at_ms, extract(epoch FROM clock_timestamp()) * 1000 AS now_ms`;

/**
 * Deletes the rows of hosts no crawl's want is live on. What that changes is
 * only the gap from the host's last start to its next: kept, the next
 * caller's interval would apply to it; dropped, it is already longer than
 * the last starter's interval plus wanted-for (that want lapsed), and the
 * caller's own last start there, if any, is further back than its interval
 * (its want lapsed too). SKIP LOCKED: a prune never makes a reservation wait,
 * and a row being reserved is live anyway.
 */
const pruneSql = `
  DELETE FROM host_pacer WHERE host IN (
    SELECT h.host FROM host_pacer AS h
    WHERE NOT EXISTS (SELECT 1 FROM jsonb_each(h.wants) AS w WHERE (w.value->>'until')::timestamptz >= clock_timestamp())
    FOR UPDATE SKIP LOCKED
  )`;

/**
 * Paces request starts to a host across every crawl and every worker: all
 * together start no more often than the slowest rate any crawl on the host
 * wants now. Each crawl passes the interval it wants (robots.txt Crawl-delay
 * and back-off included); a want lasts for `wantedForMs` past the start it
 * allows next, for every crawl on the host, and a crawl's latest want
 * replaces its earlier one (a back-off that ends speeds the host up at once).
 *
 * A crawl with no limit on a host (interval 0) skips the pacer: no query, no
 * wait, its starts counted nowhere. So unpaced crawls cost nothing, and they
 * are not slowed by the paced crawls of the same host, whose pace then does
 * not include them.
 *
 * Starts are spaced from the starts handed out, not from when callers wake,
 * so a caller that wakes late would squeeze the gap after it. The margin
 * of `withPacingMargin` absorbs lateness up to `lateToleranceMs`; a caller
 * later than that gives its start up and reserves another (once: a second
 * late one starts anyway, so an overloaded worker slows down rather than
 * stalls). The start is placed on this process's clock by the database
 * clock's offset (DatabaseClock), so an answer that arrives late is not a
 * late start as long as it arrives before the start.
 *
 * Rows: one per host, its wants pruned by every reservation; the rows of
 * hosts no want is live on are deleted at most once per `wantedForMs` by
 * each HostPacer, in the background of a reservation.
 */
export class HostPacer {
  /** Starts given up because the caller would have made them more than `lateToleranceMs` late. */
  lateRetries = 0;
  private readonly wantedForMs: number;
  private readonly clock = new DatabaseClock();
  private lastPruneMs = Date.now();

  constructor(
    private readonly pool: Pool,
    options: HostPacerOptions = {},
  ) {
    this.wantedForMs = options.wantedForMs ?? WANTED_FOR_MS;
    if (!(this.wantedForMs > 0 && Number.isFinite(this.wantedForMs))) throw new RangeError(`wantedForMs must be a positive number of ms, got ${this.wantedForMs}`);
  }

  /**
   * Resolves when the caller may start its request to `host`: `intervalMs`
   * plus margin after the host's previous start by any crawl (less at most
   * `lateToleranceMs` when that one started late), or longer if another
   * crawl on the host wants longer, and not before `notBeforeMs` (this
   * process's clock) — a caller that reserves a little ahead of its start
   * asks for its start, so the host's next start is counted from it. 0 = no
   * limit: resolves at once without a query. An abort of `signal` rejects the
   * wait (the slot stays reserved: it only leaves the host a gap).
   */
  async reserve(host: string, crawlId: string, intervalMs: number, signal?: AbortSignal, notBeforeMs = 0): Promise<void> {
    if (!(intervalMs >= 0 && Number.isFinite(intervalMs))) throw new RangeError(`intervalMs must be a finite number of ms ≥ 0, got ${intervalMs}`);
    if (intervalMs === 0) return;
    const lateAfterMs = lateToleranceMs(intervalMs);
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      let notBeforeDatabaseMs = notBeforeMs > 0 ? this.clock.toDatabaseMs(notBeforeMs) : 0;
      if (notBeforeDatabaseMs === null) {
        // Before the first answer this process cannot place its start on the database's clock: it waits for it instead.
        await sleepUntil(notBeforeMs, signal);
        notBeforeDatabaseMs = 0;
      }
      const startAtMs = await this.reserveStart(host, crawlId, intervalMs, notBeforeDatabaseMs);
      this.pruneNowAndThen();
      await sleepUntil(startAtMs, signal);
      if (attempt === 2 || localNowMs() - startAtMs <= lateAfterMs) return;
      this.lateRetries++;
    }
  }

  /**
   * Reserves the host's next start; when it is on this process's clock. The
   * answer can arrive late (a WAL flush, a busy event loop: 12–25 ms seen),
   * so the start is placed by the database clock's offset rather than by the
   * arrival (arrival + wait, the latest it can be, is the bound): a late
   * answer then delays nothing, where it would squeeze the gap after it.
   */
  private async reserveStart(host: string, crawlId: string, intervalMs: number, notBeforeDatabaseMs: number): Promise<number> {
    const askedMs = localNowMs();
    // Named: each connection parses and plans it once.
    const { rows } = await this.pool.query<{ start_at_ms: string; now_ms: string }>({
      name: 'tcrawl-host-pacer-reserve-from',
      text: reserveSql,
      values: [host, crawlId, withPacingMargin(intervalMs), this.wantedForMs, notBeforeDatabaseMs],
    });
    const answeredMs = localNowMs();
    const [startAtMs, databaseNowMs] = [Number(rows[0].start_at_ms), Number(rows[0].now_ms)];
    this.clock.observe(askedMs, answeredMs, databaseNowMs);
    return Math.min(answeredMs + (startAtMs - databaseNowMs), this.clock.toLocalMs(startAtMs));
  }

  /** Deletes the rows of hosts no crawl is pacing now; how many it deleted. */
  async pruneIdleHosts(): Promise<number> {
    const { rowCount } = await this.pool.query(pruneSql);
    return rowCount ?? 0;
  }

  private pruneNowAndThen(): void {
    if (Date.now() - this.lastPruneMs < this.wantedForMs) return;
    this.lastPruneMs = Date.now();
    // Not awaited, and a failure dropped: the next prune retries, and rows left meanwhile only take space.
    this.pruneIdleHosts().catch(() => undefined);
  }
}

async function sleepUntil(atMs: number, signal?: AbortSignal): Promise<void> {
  const waitMs = atMs - localNowMs();
  if (waitMs > 0) await sleep(Math.ceil(waitMs), undefined, { signal });
}

/**
 * An interval with its margin: 3% and at least a millisecond more than asked
 * for; 0 stays 0 (no pacing). A request reaches the site a little after it
 * passes its pacer — 0.5 ms typically, 12–26 ms when the event loop stalls —
 * and a late one squeezes the gap after it; 3% of every interval is 30 ms of
 * slack in any second, whatever the rate.
 */
export function withPacingMargin(intervalMs: number): number {
  return intervalMs > 0 ? intervalMs + Math.max(1, intervalMs * marginShare) : 0;
}

const marginShare = 0.03;

/**
 * How late a start may be and every window of a second or more still hold no
 * more starts than the rate allows: the slack the margin leaves in a second
 * (3% of it, 30 ms), or one margin when that is more (intervals over 1 s).
 * A gap may then be shorter than the interval by up to this much, as long as
 * the second around it is not busier.
 */
function lateToleranceMs(intervalMs: number): number {
  return Math.max(withPacingMargin(intervalMs) - intervalMs, 1000 * marginShare);
}
