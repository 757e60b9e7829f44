/**
 * The faults of a chaos run, injected while the crawl runs, one at a time
 * (one loop, so each kill's "leased right before" figure is its own):
 *
 * - every `killEveryMs` (±50%, seeded): SIGKILL a random worker; every third
 *   time, a worker caught inside a transaction instead (see killInsideTransaction);
 * - once, when `temporalAt` of the expected pages are saved: SIGKILL the
 *   Temporal server and start it again on its file database;
 * - once, at `postgresAt`: `pg_ctl stop -m immediate`, then start Postgres again.
 *
 * Right before each, the URLs in state `leased` are listed: only that work
 * (checked out, its results maybe not yet written) may be fetched twice.
 */
import * as fs from 'node:fs';
import type { Pool } from 'pg';
import { APP_NAME_PREFIX, type WorkerFleet } from './chaos-fleet';
import type { PrivateServices } from './chaos-services';

export type FaultKind = 'worker' | 'worker-in-transaction' | 'temporal' | 'postgres';

export interface Fault {
  kind: FaultKind;
  /** ms since the crawl started. */
  atMs: number;
  /** URLs in state `leased` right before it. */
  leased: string[];
  slot?: number;
  pid?: number;
  /** For a kill inside a transaction: what the worker's backend was doing, and whether Postgres confirmed the transaction died open. */
  backend?: { pid: number; state: string; query: string; confirmed: string | null };
}

export interface ChaosOptions {
  killEveryMs: number;
  random: () => number;
  /** Fractions of the expected pages saved at which Temporal is killed and Postgres restarted. */
  temporalAt: number;
  postgresAt: number;
  /** How long each service stays down. */
  downMs: number;
}

export interface ChaosTargets {
  crawlId: string;
  pool: Pool;
  fleet: WorkerFleet;
  services: PrivateServices;
  expectedPages: number;
  startedAtMs: number;
  log: (line: string) => void;
}

/** How long to look for a worker inside a transaction before settling for a plain kill. */
const huntForMs = 5000;
const huntEveryMs = 5;

/** Runs faults until `finished` resolves; returns what was done, in order. */
export async function injectFaults(targets: ChaosTargets, opts: ChaosOptions, finished: Promise<unknown>): Promise<Fault[]> {
  let done = false;
  void finished.finally(() => (done = true));
  const faults: Fault[] = [];
  let ticks = 0;
  while (!done) {
    await sleepUnless(() => done, opts.killEveryMs * (0.5 + opts.random()));
    if (done) break;
    try {
      const fault = await nextFault(targets, opts, faults, ticks++);
      if (fault) {
        faults.push(fault);
        targets.log(describeFault(fault));
      }
    } catch (error) {
      if (error instanceof ServiceRestartFailed) throw error;
      // Looking before a kill failed (Postgres or Temporal busy or briefly unreachable): skip this tick.
      targets.log(`fault skipped: ${(error as Error).message}`);
    }
  }
  return faults;
}

async function nextFault(targets: ChaosTargets, opts: ChaosOptions, faults: Fault[], tick: number): Promise<Fault | undefined> {
  const progress = (await savedPages(targets)) / targets.expectedPages;
  const has = (kind: FaultKind) => faults.some((f) => f.kind === kind);
  if (!has('temporal') && progress >= opts.temporalAt) return restartService(targets, 'temporal', opts.downMs);
  if (!has('postgres') && progress >= opts.postgresAt) return restartService(targets, 'postgres', opts.downMs);
  if (tick % 3 === 2) {
    const caught = await killInsideTransaction(targets);
    if (caught) return caught;
  }
  return killRandomWorker(targets, opts.random);
}

/** A service that could not be brought back: the crawl cannot finish, so the run stops. */
class ServiceRestartFailed extends Error {}

async function restartService(targets: ChaosTargets, kind: 'temporal' | 'postgres', downMs: number): Promise<Fault> {
  const fault: Fault = { kind, atMs: sinceStart(targets), leased: await leasedNow(targets) };
  targets.log(`${kind === 'temporal' ? 'SIGKILL the Temporal server' : 'pg_ctl stop -m immediate'}; ${fault.leased.length} URLs leased`);
  try {
    if (kind === 'temporal') await targets.services.killAndRestartTemporal(downMs);
    else await targets.services.restartPostgresImmediately(downMs);
  } catch (error) {
    throw new ServiceRestartFailed(`could not restart ${kind}: ${(error as Error).message}`, { cause: error });
  }
  targets.log(`${kind} is back`);
  return fault;
}

async function killRandomWorker(targets: ChaosTargets, random: () => number): Promise<Fault> {
  const polling = await targets.fleet.pollingSlots();
  const candidates = polling.length > 0 ? polling : Array.from({ length: targets.fleet.size }, (_, i) => i + 1);
  const slot = candidates[Math.floor(random() * candidates.length)];
  const leased = await leasedNow(targets);
  const pid = targets.fleet.pidOf(slot);
  await targets.fleet.kill(slot);
  return { kind: 'worker', atMs: sinceStart(targets), leased, slot, pid };
}

/**
 * Polls pg_stat_activity for a worker's backend inside a transaction that
 * has written (it holds a transaction id) — idle in it between statements,
 * or running an INSERT/UPDATE/DELETE — and SIGKILLs that
 * worker the moment it is seen (the leased URLs come in the same query, so
 * nothing is awaited in between). The transaction may still commit in that
 * instant, so Postgres's log is asked whether the backend lost its client
 * with the transaction open. Undefined when none was caught in time.
 */
async function killInsideTransaction(targets: ChaosTargets): Promise<Fault | undefined> {
  const deadline = Date.now() + huntForMs;
  while (Date.now() < deadline) {
    const logFrom = fs.statSync(targets.services.postgresLog).size;
    const { rows } = await targets.pool.query<{ pid: number; application_name: string; backend_start_ms: number; state: string; query: string; leased: string[] | null }>(
      `WITH caught AS (
         SELECT pid, application_name, (extract(epoch FROM backend_start) * 1000)::float8 AS backend_start_ms, state,
                left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS query
           FROM pg_stat_activity
          WHERE application_name LIKE $2 AND backend_xid IS NOT NULL
            AND (state = 'idle in transaction' OR (state = 'active' AND query ~* '^\\s*(INSERT|UPDATE|DELETE)')))
       SELECT caught.*, (SELECT array_agg(url) FROM frontier WHERE crawl_id = $1 AND state = 'leased') AS leased FROM caught`,
      [targets.crawlId, `${APP_NAME_PREFIX}%`],
    );
    const caught = rows
      .map((backend) => ({ backend, slot: targets.fleet.slotOf(backend.application_name) ?? 0 }))
      // A backend older than its slot's process outlived a worker already killed.
      .find(({ backend, slot }) => slot > 0 && backend.backend_start_ms >= targets.fleet.spawnedAt(slot));
    if (caught) {
      const { backend, slot } = caught;
      const pid = targets.fleet.pidOf(slot);
      await targets.fleet.kill(slot);
      const atMs = sinceStart(targets);
      const confirmed = await openTransactionLost(targets.services.postgresLog, logFrom, backend.pid);
      return { kind: 'worker-in-transaction', atMs, leased: backend.leased ?? [], slot, pid, backend: { pid: backend.pid, state: backend.state, query: backend.query, confirmed } };
    }
    await new Promise((resolve) => setTimeout(resolve, huntEveryMs));
  }
  return undefined;
}

/**
 * Postgres's own word that backend `pid` lost its client inside a
 * transaction (so it was rolled back): the log line, or null when the
 * transaction had ended first. Log lines start `<time> [<pid>] `.
 */
async function openTransactionLost(logFile: string, fromByte: number, pid: number): Promise<string | null> {
  const deadline = Date.now() + 3000;
  const pattern = new RegExp(`\\[${pid}\\] (?:LOG|FATAL):\\s+(unexpected EOF on client connection with an open transaction|connection to client lost)`);
  for (;;) {
    const match = pattern.exec(fs.readFileSync(logFile).subarray(fromByte).toString('utf8'));
    if (match) return match[1];
    if (Date.now() > deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function leasedNow({ pool, crawlId }: ChaosTargets): Promise<string[]> {
  const { rows } = await pool.query<{ url: string }>(`SELECT url FROM frontier WHERE crawl_id = $1 AND state = 'leased'`, [crawlId]);
  return rows.map((r) => r.url);
}

async function savedPages({ pool, crawlId }: ChaosTargets): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1`, [crawlId]);
  return rows[0].n;
}

function sinceStart(targets: ChaosTargets): number {
  return Date.now() - targets.startedAtMs;
}

export function describeFault(fault: Fault): string {
  const who = fault.slot === undefined ? '' : ` worker ${fault.slot} (pid ${fault.pid})`;
  const backend = fault.backend
    ? ` — its backend ${fault.backend.pid} was ${fault.backend.state}: "${fault.backend.query}"; ${fault.backend.confirmed ? `Postgres: "${fault.backend.confirmed}"` : 'the transaction ended first'}`
    : '';
  return `+${(fault.atMs / 1000).toFixed(1)}s ${fault.kind}${who}, ${fault.leased.length} leased before${backend}`;
}

/** Sleeps `ms`, or less once `stop()` holds (checked every 50 ms). */
export function sleepUnless(stop: () => boolean, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const started = Date.now();
    const timer = setInterval(() => {
      if (stop() || Date.now() - started >= ms) {
        clearInterval(timer);
        resolve();
      }
    }, 50);
  });
}
