/**
 * `npm run bench:cluster [-- --pages 20000 --workers 1,2]`: what a crawl costs
 * on the production topology. The Temporal server built from
 * go.temporal.io/server runs on fresh databases of DATABASE_URL's Postgres,
 * tcrawl's own tables go to a fresh database there too, and the bench site
 * (its own process) is crawled once per fleet size, by that many
 * `tcrawl worker` processes. Per run: pages/s; CPU seconds per page of the
 * workers, of the Temporal server and of the Postgres backends serving the
 * three databases (utime + stime from /proc/<pid>/stat); Postgres connections
 * at most; the load average. Then bytes per row of tcrawl's tables
 * (pg_total_relation_size) and the Temporal databases' growth per page. The databases are
 * dropped at the end.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { Client as PgClient } from 'pg';
import { startCrawl } from '../src/client';
import { plaintextAccess, runtimeConfig } from '../src/config';
import { createPool, migrate } from '../src/infra/database';
import { findTemporalClusterBinaries } from '../src/infra/temporal-cluster-binaries';
import { setupClusterDatabases, startTemporalCluster } from '../src/infra/temporal-cluster';
import { parseCrawlSpec } from '../src/spec';
import { connectClient } from '../src/temporal-connection';
import { clusterPorts, dropClusterDatabases, freshClusterDatabases } from '../test/helpers/cluster';
import { runMain } from './run-main';
import { spawnBenchSite } from './site';

const log = (line: string): void => void process.stderr.write(`[bench:cluster] ${line}\n`);
const clockTicks = 100; // USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s on Linux

/** utime + stime of `pid` in seconds (0 once it is gone). */
function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return 0;
  }
}

interface RunFigures {
  workers: number;
  pages: number;
  seconds: number;
  workerCpuPerPageMs: number;
  serverCpuPerPageMs: number;
  postgresCpuPerPageMs: number;
  postgresConnectionsMax: number;
  load: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { pages: { type: 'string', default: '20000' }, workers: { type: 'string', default: '1,2' }, concurrency: { type: 'string', default: '4' }, 'batch-size': { type: 'string', default: '50' } } });
  const postgresUrl = process.env.DATABASE_URL;
  if (!postgresUrl) throw new Error('Set DATABASE_URL to a Postgres server whose user may create databases (the Temporal server and tcrawl each get fresh ones there).');
  const pages = Number(values.pages);
  const config = runtimeConfig();
  const binaries = await findTemporalClusterBinaries(config, log);
  const temporalDbs = freshClusterDatabases(postgresUrl, 'bench');
  const tcrawlDb = `tcrawl_bench_${temporalDbs.persistence.split('_').pop()}`;
  const admin = new PgClient({ connectionString: postgresUrl });
  await admin.connect();
  const cleanups: (() => Promise<unknown>)[] = [() => admin.end(), () => dropClusterDatabases(temporalDbs), () => admin.query(`DROP DATABASE IF EXISTS ${tcrawlDb} WITH (FORCE)`)];
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcrawl-bench-cluster-'));
  try {
    await admin.query(`CREATE DATABASE ${tcrawlDb}`);
    const databaseUrl = Object.assign(new URL(postgresUrl), { pathname: `/${tcrawlDb}` }).href;
    await setupClusterDatabases(binaries, temporalDbs, log);
    const cluster = await startTemporalCluster({ binaries, databases: temporalDbs, ports: await clusterPorts(), logFile: path.join(dataDir, 'temporal-server.log'), log });
    cleanups.push(() => cluster.stop());
    const site = await spawnBenchSite(pages);
    cleanups.push(async () => site.child.kill('SIGTERM'));
    const pool = createPool(databaseUrl, 4);
    cleanups.push(() => pool.end());
    await migrate(pool);
    const connection = await connectClient(cluster.address, plaintextAccess);
    cleanups.push(() => connection.close());
    const client = new Client({ connection });
    const env = { ...process.env, TEMPORAL_ADDRESS: cluster.address, DATABASE_URL: databaseUrl };
    const temporalBytesBefore = await temporalBytes(admin, temporalDbs);
    const runs: RunFigures[] = [];
    for (const workers of values.workers.split(',').map(Number)) {
      runs.push(await runFleet({ workers, pages, client, env, admin, serverPid: cluster.pid, site: site.origin, databases: [tcrawlDb, temporalDbs.persistence, temporalDbs.visibility], concurrency: Number(values.concurrency), batchSize: Number(values['batch-size']) }));
    }
    const sizes = await tableSizes(admin, pool, temporalDbs, temporalBytesBefore, runs.reduce((sum, r) => sum + r.pages, 0));
    process.stdout.write(report(runs, sizes));
  } finally {
    for (let step = cleanups.pop(); step; step = cleanups.pop()) await step().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

interface FleetRun {
  workers: number;
  pages: number;
  client: Client;
  env: NodeJS.ProcessEnv;
  admin: PgClient;
  serverPid: number;
  site: string;
  databases: string[];
  concurrency: number;
  batchSize: number;
}

/** One crawl of the whole site by `workers` processes, timed from its start to its result (their start-up left out). */
async function runFleet(run: FleetRun): Promise<RunFigures> {
  const taskQueue = `bench-cluster-${run.workers}-${Date.now()}`;
  const children: ChildProcess[] = Array.from({ length: run.workers }, () =>
    spawn(process.execPath, [path.join(__dirname, '../bin/tcrawl.js'), 'worker', '--concurrency', String(run.concurrency)], { env: { ...run.env, TCRAWL_TASK_QUEUE: taskQueue }, stdio: ['ignore', 'ignore', 'inherit'] }),
  );
  try {
    await waitForPollers(run.client, taskQueue, run.workers);
    const backendsBefore = await backendCpu(run.admin, run.databases);
    const cpuBefore = { workers: children.map((c) => cpuSeconds(c.pid!)), server: cpuSeconds(run.serverPid) };
    let connectionsMax = 0;
    const sampler = setInterval(() => void backendPids(run.admin, run.databases).then((pids) => (connectionsMax = Math.max(connectionsMax, pids.length)), () => undefined), 500);
    const started = performance.now();
    const spec = parseCrawlSpec({ seeds: [`${run.site}/p/0`], maxPages: run.pages, maxDepth: 1000, rate: 0, concurrency: 16, batchSize: run.batchSize, allowPrivate: true });
    const summary = await (await startCrawl(run.client, taskQueue, taskQueue, spec)).result();
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const backendsAfter = await backendCpu(run.admin, run.databases);
    const workerCpu = children.reduce((sum, c, i) => sum + cpuSeconds(c.pid!) - cpuBefore.workers[i], 0);
    const serverCpu = cpuSeconds(run.serverPid) - cpuBefore.server;
    // Backends that outlived the run count their difference; new ones all their time (the pools keep theirs open).
    const postgresCpu = [...backendsAfter].reduce((sum, [pid, cpu]) => sum + cpu - (backendsBefore.get(pid) ?? 0), 0);
    const perPageMs = (cpu: number) => (1000 * cpu) / summary.saved;
    const figures = { workers: run.workers, pages: summary.saved, seconds, workerCpuPerPageMs: perPageMs(workerCpu), serverCpuPerPageMs: perPageMs(serverCpu), postgresCpuPerPageMs: perPageMs(postgresCpu), postgresConnectionsMax: connectionsMax, load: os.loadavg().map((l) => l.toFixed(1)).join(' ') };
    log(JSON.stringify(figures));
    return figures;
  } finally {
    await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve(null) : (c.once('exit', resolve), c.kill('SIGTERM'))))));
  }
}

async function backendPids(admin: PgClient, databases: string[]): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()`, [databases]);
  return rows.map((r) => r.pid);
}

async function backendCpu(admin: PgClient, databases: string[]): Promise<Map<number, number>> {
  return new Map((await backendPids(admin, databases)).map((pid) => [pid, cpuSeconds(pid)]));
}

async function waitForPollers(client: Client, taskQueue: string, count: number): Promise<void> {
  for (;;) {
    const { pollers } = await client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: taskQueue }, taskQueueType: 2 });
    if ((pollers?.length ?? 0) >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

interface Sizes {
  rows: { table: string; rows: number; bytes: number }[];
  temporalBytesPerPage: number;
}

/** Both Temporal databases' size, in bytes. */
async function temporalBytes(admin: PgClient, temporalDbs: { persistence: string; visibility: string }): Promise<number> {
  const { rows: [t] } = await admin.query<{ bytes: string }>(`SELECT pg_database_size($1) + pg_database_size($2) AS bytes`, [temporalDbs.persistence, temporalDbs.visibility]);
  return Number(t.bytes);
}

/**
 * Bytes per row of tcrawl's tables (indexes and TOAST included), and what the two Temporal databases grew
 * by per page crawled (their size before the first crawl, the schemas and a namespace, left out).
 */
async function tableSizes(admin: PgClient, pool: ReturnType<typeof createPool>, temporalDbs: { persistence: string; visibility: string }, temporalBytesBefore: number, pagesCrawled: number): Promise<Sizes> {
  const rows = [];
  for (const table of ['pages', 'frontier', 'items', 'crawls']) {
    const { rows: [r] } = await pool.query<{ n: string; bytes: string }>(`SELECT (SELECT count(*) FROM ${table}) AS n, pg_total_relation_size('${table}') AS bytes`);
    rows.push({ table, rows: Number(r.n), bytes: Number(r.bytes) });
  }
  return { rows, temporalBytesPerPage: ((await temporalBytes(admin, temporalDbs)) - temporalBytesBefore) / pagesCrawled };
}

function report(runs: RunFigures[], sizes: Sizes): string {
  const lines = ['| workers | pages | s | pages/s | worker CPU ms/page | Temporal server CPU ms/page | Postgres CPU ms/page | Postgres connections (max) | load average (1, 5, 15 min) |', '|---|---|---|---|---|---|---|---|---|'];
  for (const r of runs) {
    lines.push(`| ${r.workers} | ${r.pages} | ${r.seconds.toFixed(1)} | ${(r.pages / r.seconds).toFixed(0)} | ${r.workerCpuPerPageMs.toFixed(2)} | ${r.serverCpuPerPageMs.toFixed(2)} | ${r.postgresCpuPerPageMs.toFixed(2)} | ${r.postgresConnectionsMax} | ${r.load} |`);
  }
  lines.push('', '| table | rows | bytes (pg_total_relation_size) | bytes/row |', '|---|---|---|---|');
  for (const s of sizes.rows) lines.push(`| ${s.table} | ${s.rows} | ${s.bytes} | ${s.rows ? (s.bytes / s.rows).toFixed(0) : '-'} |`);
  lines.push(`| Temporal's two databases' growth, per page crawled | | | ${sizes.temporalBytesPerPage.toFixed(0)} |`, '');
  return `${lines.join('\n')}\n`;
}

runMain(main);
