import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import { afterProblem, afterSuccess, healthy, isResting, pickRoute, type RouteHealth } from '../src/egress';
import { TcrawlError } from '../src/errors';

/**
 * The health of egress routes (src/egress.ts) as this worker sees it, kept
 * in step with every other worker's through the `egress_health` table.
 *
 * A route's choice happens on every request, so it reads memory only. A
 * problem (a ban, a failure) is written at once, in a transaction that
 * serialises it with every other worker's on the route's row; what other
 * workers wrote is read back every `syncEveryMs`, when the request counts
 * gathered meanwhile are added too. So a rest another worker decided reaches
 * this one within about a second; until then this one may send a request or
 * two through the route, each met by the same ban and costing nothing more
 * (a route already resting keeps its rest: afterProblem).
 *
 * Times are the workers' clocks (epoch ms): on one machine or NTP-synced
 * machines they agree to well under a rest.
 *
 * Without a pool (tests, a library user fetching one page) the health is this
 * process's alone.
 */

export type EgressProblem = { kind: 'ban'; detail: string } | { kind: 'failure'; detail: string };

/** Every route of a host's pool is resting past the batch's window: the host waits for the first to come back. */
export class EgressRestingError extends TcrawlError {
  constructor(readonly untilMs: number) {
    super('TCRAWL_EGRESS_RESTING', `Every proxy of this host is resting until ${new Date(untilMs).toISOString()}`);
  }
}

interface Known {
  health: RouteHealth;
  /** Requests this worker sent through the route: what picking balances. */
  sent: number;
  /** Requests not yet added to the table's count. */
  unsynced: number;
  /** Rests of the route being written: until they are, the table is behind this worker. */
  writing: number;
  /** The table's state of the route has been read: before, this worker knows nothing of other workers' rests. */
  read: boolean;
}

export interface EgressHealthOptions {
  /** How often the table is read back and request counts written, ms. @default 1000 */
  syncEveryMs?: number;
}

const problemSql = `
  INSERT INTO egress_health AS e (egress, requests, bans, failures, strikes, resting_until, last_problem, updated_at)
  VALUES ($1, 0, $2, $3, $4, to_timestamp($5::float8 / 1000), $6, now())
  ON CONFLICT (egress) DO UPDATE SET
    bans = e.bans + $2, failures = e.failures + $3, strikes = $4,
    resting_until = to_timestamp($5::float8 / 1000), last_problem = $6, updated_at = now()`;

export class EgressHealth {
  private readonly known = new Map<string, Known>();
  private readonly syncEveryMs: number;
  private timer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | undefined;

  constructor(
    private readonly pool: Pool | null,
    options: EgressHealthOptions = {},
  ) {
    this.syncEveryMs = options.syncEveryMs ?? 1000;
  }

  /** The route to send through now, or when the first of `keys` is back from its rest. */
  pick(keys: readonly string[], nowMs = Date.now()): { key: string } | { waitUntilMs: number } {
    return pickRoute(keys.map((key) => ({ key, ...this.entry(key) })), nowMs);
  }

  /**
   * Resolves once one of `keys` is not resting. Waits no later than
   * `latestMs`: if none is back by then, rejects with EgressRestingError
   * (when the first is back) and the caller gives its request up for now.
   * Rejects when `signal` aborts.
   */
  async ready(keys: readonly string[], latestMs: number, signal?: AbortSignal): Promise<void> {
    // A route this worker has not used yet may be resting for the fleet (regression: a worker's first request went through routes another had rested).
    const known = keys.map((key) => this.entry(key));
    if (this.pool !== null && known.some((route) => !route.read)) await this.sync();
    for (;;) {
      signal?.throwIfAborted();
      const pick = this.pick(keys);
      if ('key' in pick) return;
      if (pick.waitUntilMs > latestMs) throw new EgressRestingError(pick.waitUntilMs);
      // Woken by the rest's end, or sooner to read what other workers wrote (one may have rested it longer).
      await sleep(Math.max(1, Math.min(pick.waitUntilMs - Date.now(), this.syncEveryMs)), undefined, { signal });
      await this.sync();
    }
  }

  /** A request is going out through `key`. */
  sent(key: string): void {
    const known = this.entry(key);
    known.sent++;
    known.unsynced++;
    this.schedule();
  }

  /** A good answer came through `key`: a route not resting starts its back-off over. */
  succeeded(key: string): void {
    const known = this.entry(key);
    const next = afterSuccess(known.health, Date.now());
    if (next === known.health) return;
    known.health = next;
    this.write(`UPDATE egress_health SET strikes = 0, updated_at = now() WHERE egress = $1 AND (resting_until IS NULL OR resting_until <= now())`, [key]);
  }

  /** `key` met a ban or a failure: it rests, fleet-wide, for its next back-off step (unless resting already). */
  async problem(key: string, problem: EgressProblem, restBaseMs: number): Promise<void> {
    const known = this.entry(key);
    known.health = afterProblem(known.health, Date.now(), restBaseMs);
    if (this.pool === null) return;
    known.writing++;
    const client = await this.pool.connect().catch((error: unknown) => {
      known.writing--;
      throw error;
    });
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO egress_health (egress) VALUES ($1) ON CONFLICT DO NOTHING`, [key]);
      const { rows } = await client.query<{ strikes: number; until_ms: string | null }>(
        `SELECT strikes, extract(epoch FROM resting_until) * 1000 AS until_ms FROM egress_health WHERE egress = $1 FOR UPDATE`,
        [key],
      );
      const stored: RouteHealth = { strikes: rows[0].strikes, restingUntilMs: rows[0].until_ms === null ? null : Number(rows[0].until_ms) };
      const next = afterProblem(stored, Date.now(), restBaseMs);
      const [bans, failures] = problem.kind === 'ban' ? [1, 0] : [0, 1];
      await client.query(problemSql, [key, bans, failures, next.strikes, next.restingUntilMs, problem.detail.slice(0, 500)]);
      await client.query('COMMIT');
      known.health = next;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      known.writing--;
      client.release();
    }
  }

  /** Writes the request counts and reads every known route's health back; a failure is left for the next sync. */
  sync(): Promise<void> {
    if (this.pool === null || this.known.size === 0) return Promise.resolve();
    this.syncing ??= this.syncOnce()
      .catch(() => undefined)
      .finally(() => (this.syncing = undefined));
    return this.syncing;
  }

  /** Stops the background sync (after writing what is pending). */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.sync();
  }

  private async syncOnce(): Promise<void> {
    const pool = this.pool!;
    const counts = [...this.known].filter(([, known]) => known.unsynced > 0).map(([key, known]) => [key, known.unsynced] as const);
    for (const [key, n] of counts) this.known.get(key)!.unsynced -= n;
    if (counts.length > 0) {
      await pool.query(
        `INSERT INTO egress_health AS e (egress, requests) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT (egress) DO UPDATE SET requests = e.requests + excluded.requests`,
        [counts.map(([key]) => key), counts.map(([, n]) => n)],
      );
    }
    const keys = [...this.known.keys()];
    const { rows } = await pool.query<{ egress: string; strikes: number; until_ms: string | null }>(
      `SELECT egress, strikes, extract(epoch FROM resting_until) * 1000 AS until_ms FROM egress_health WHERE egress = ANY($1)`,
      [keys],
    );
    for (const key of keys) this.known.get(key)!.read = true;
    for (const row of rows) {
      const known = this.known.get(row.egress)!;
      const stored: RouteHealth = { strikes: row.strikes, restingUntilMs: row.until_ms === null ? null : Number(row.until_ms) };
      // A rest this worker has begun and not yet written stands (read before its commit, the row says "healthy": regression, a request went out through a resting route).
      if (known.writing > 0 && (known.health.restingUntilMs ?? 0) > (stored.restingUntilMs ?? 0)) continue;
      known.health = stored;
    }
  }

  /** Syncs in the background while there is anything to sync. */
  private schedule(): void {
    if (this.pool === null || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync().then(() => {
        if ([...this.known.values()].some((known) => known.unsynced > 0 || isResting(known.health, Date.now()))) this.schedule();
      });
    }, this.syncEveryMs);
    this.timer.unref();
  }

  private write(sql: string, values: unknown[]): void {
    // Not awaited: a lost write costs one more strike's length on a rest that may never come.
    this.pool?.query(sql, values).catch(() => undefined);
  }

  private entry(key: string): Known {
    let known = this.known.get(key);
    if (known === undefined) {
      known = { health: healthy, sent: 0, unsynced: 0, writing: 0, read: false };
      this.known.set(key, known);
      this.schedule();
    }
    return known;
  }
}
