/**
 * What a HostPacer reservation costs: `--hosts` hosts reserve concurrently,
 * each in a loop of its own, through one pool of `--pool` connections (a
 * worker's default), for `--seconds` per run. Two shapes:
 *
 * - saturated: a 1 ms interval, so every loop reserves again as soon as it
 *   has its answer: the most reservations per second one pool gets, and
 *   each one's query time (from asking the pool to the answer, queueing
 *   for a connection included) when it is the bottleneck;
 * - paced: `--interval-ms` per host (10/s by default), a busy fleet's load:
 *   the query time then, and whether every host kept its rate.
 *
 * Each shape runs on the table as migrated (UNLOGGED) and again SET LOGGED,
 * to show what skipping the WAL flush on commit is worth.
 *
 *   node --import tsx bench/host-pacer.ts [--hosts 200] [--pool 20] [--seconds 5] [--interval-ms 100]
 *
 * Postgres: DATABASE_URL, else the embedded one; the runs use a scratch
 * database of their own there, dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Client, type Pool } from 'pg';
import { localNowMs } from '../activities/database-clock';
import { HostPacer } from '../activities/host-pacer';
import { runtimeConfig } from '../src/config';
import { createPool, migrate } from '../src/infra/database';
import { ensureEmbeddedPostgres } from '../src/infra/embedded-postgres';
import { maxStartsInWindow, meanRate } from '../test/helpers/rate-stats';
import { runMain } from './run-main';

const log = (line: string) => process.stderr.write(`${line}\n`);

interface RunFigures {
  reservations: number;
  perSecond: number;
  queryMs: { mean: number; p50: number; p95: number; p99: number };
  /** Connection time per reservation: pool size × seconds / reservations. */
  connectionMsEach: number;
  /** Worst host: its most starts in any second, and its lowest mean rate. */
  busiestSecond: number;
  slowestRate: number;
  /** Starts given up for being late (HostPacer.lateRetries), per 1,000 reservations. */
  lateRetriesPerMille: number;
}

/** The pool, with every query's time (asked → answered) recorded: what a reservation costs apart from its wait. */
function timedPool(pool: Pool, queryMs: number[]): Pool {
  return {
    query: async (...args: Parameters<Pool['query']>) => {
      const asked = performance.now();
      try {
        return await (pool.query as (...a: unknown[]) => Promise<unknown>)(...args);
      } finally {
        queryMs.push(performance.now() - asked);
      }
    },
  } as unknown as Pool;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function run(pool: Pool, poolSize: number, hosts: number, intervalMs: number, seconds: number): Promise<RunFigures> {
  const queryMs: number[] = [];
  const pacer = new HostPacer(timedPool(pool, queryMs));
  const prefix = `bench-${randomBytes(4).toString('hex')}`;
  const stopAt = Date.now() + seconds * 1000;
  const perHost = await Promise.all(
    Array.from({ length: hosts }, async (_, i) => {
      const starts: number[] = [];
      while (Date.now() < stopAt) {
        await pacer.reserve(`${prefix}-${i}.invalid`, 'bench', intervalMs);
        starts.push(localNowMs());
      }
      return starts;
    }),
  );
  const sorted = [...queryMs].sort((a, b) => a - b);
  const reservations = queryMs.length;
  return {
    reservations,
    perSecond: reservations / seconds,
    queryMs: { mean: sorted.reduce((a, b) => a + b, 0) / reservations, p50: percentile(sorted, 0.5), p95: percentile(sorted, 0.95), p99: percentile(sorted, 0.99) },
    connectionMsEach: (poolSize * seconds * 1000) / reservations,
    busiestSecond: Math.max(...perHost.map((starts) => maxStartsInWindow(starts, 1000))),
    slowestRate: Math.min(...perHost.map((starts) => meanRate(starts))),
    lateRetriesPerMille: (1000 * pacer.lateRetries) / reservations,
  };
}

async function withScratchDatabase(serverUrl: string, use: (databaseUrl: string) => Promise<void>): Promise<void> {
  const name = `tcrawl_bench_pacer_${randomBytes(4).toString('hex')}`;
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    await use(url.href);
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(name)} WITH (FORCE)`);
    await admin.end();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { hosts: { type: 'string', default: '200' }, pool: { type: 'string', default: '20' }, seconds: { type: 'string', default: '5' }, 'interval-ms': { type: 'string', default: '100' } } });
  const [hosts, poolSize, seconds, intervalMs] = [Number(values.hosts), Number(values.pool), Number(values.seconds), Number(values['interval-ms'])];
  const config = runtimeConfig();
  const serverUrl = config.databaseUrl ?? (await ensureEmbeddedPostgres({ config, detached: true, log })).databaseUrl;
  const table: string[][] = [['table', 'shape', 'reservations/s', 'query ms mean', 'p50', 'p95', 'p99', 'connection ms each', 'busiest host, 1 s', 'slowest host rate', 'late, ‰']];
  await withScratchDatabase(serverUrl, async (databaseUrl) => {
    const pool = createPool(databaseUrl, poolSize);
    try {
      await migrate(pool);
      for (const logged of [false, true]) {
        if (logged) await pool.query('ALTER TABLE host_pacer SET LOGGED');
        for (const [shape, interval] of [['saturated', 1], [`${intervalMs} ms`, intervalMs]] as const) {
          log(`${logged ? 'LOGGED' : 'UNLOGGED'}, ${shape}: ${hosts} hosts, pool of ${poolSize}, ${seconds} s…`);
          const f = await run(pool, poolSize, hosts, interval, seconds);
          table.push([logged ? 'logged' : 'unlogged', shape, f.perSecond.toFixed(0), f.queryMs.mean.toFixed(2), f.queryMs.p50.toFixed(2), f.queryMs.p95.toFixed(2), f.queryMs.p99.toFixed(2), f.connectionMsEach.toFixed(2), String(f.busiestSecond), `${f.slowestRate.toFixed(2)}/s`, f.lateRetriesPerMille.toFixed(1)]);
        }
      }
    } finally {
      await pool.end();
    }
  });
  const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
  process.stdout.write(table.map((row) => row.map((value, i) => (i < 2 ? value.padEnd(widths[i]) : value.padStart(widths[i]))).join('  ')).join('\n') + '\n');
}

runMain(main);
