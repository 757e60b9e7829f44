import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import type { Connection } from '@temporalio/client';
import { plaintextAccess, type RuntimeConfig, type TemporalAccess } from '../config';
import { DependencyError } from '../errors';
import { connectClient } from '../temporal-connection';
import { searchAttributeTypes } from '../../workflows/search-attributes';
import { registerSearchAttributes } from './search-attributes';
import { findTemporalCli } from './temporal-cli';
import {
  type LocalService,
  fileSize,
  isPortOpen,
  isProcessAlive,
  pollUntil,
  readPidFile,
  tailFile,
  terminateProcess,
} from './local-service';

const HOST = '127.0.0.1';

export interface TemporalServerOptions {
  config: RuntimeConfig;
  /** Frontend gRPC port. @default 7233 */
  port?: number;
  /** Web UI port. @default port + 1000 */
  uiPort?: number;
  /** SQLite file holding the server's state. @default '<dataDir>/temporal.db' */
  dbFile?: string;
  /**
   * true: the server outlives this process (its pid goes to `<dataDir>/temporal.pid`
   * for {@link stopDetachedTemporalServer}); false: a child that `stop()` terminates.
   */
  detached: boolean;
  log: (line: string) => void;
  /** How long to wait for a started server to answer. @default 60_000 */
  startTimeoutMs?: number;
}

export interface TemporalServer extends LocalService {
  /** `host:port` of the frontend, for `connectClient(address, …)`. */
  address: string;
  /** The Web UI, e.g. `http://127.0.0.1:8233`. */
  uiUrl: string;
  /** The server process's pid when this call started it; undefined when it reused a running server. */
  pid?: number;
}

/**
 * Returns a Temporal frontend at 127.0.0.1:port: the one already answering
 * there, or a `temporal server start-dev` started now with a file database.
 *
 * @throws DependencyError `TCRAWL_TEMPORAL_START_FAILED` (with the server log's
 *   tail) when the port is taken by something else, or the server exits or does
 *   not answer in time; the errors of {@link findTemporalCli}.
 */
export async function ensureTemporalServer(opts: TemporalServerOptions): Promise<TemporalServer> {
  const port = opts.port ?? 7233;
  const uiPort = opts.uiPort ?? port + 1000;
  const address = `${HOST}:${port}`;
  const uiUrl = `http://${HOST}:${uiPort}`;
  if (await isTemporalFrontend(address)) {
    opts.log(`Using the Temporal server already running at ${address}.`);
    // One started by an earlier release of tcrawl may lack search attributes added since.
    await registerOnLocalServer(address, opts);
    return { started: false, address, uiUrl, stop: async () => {} };
  }
  if (await isPortOpen(HOST, port)) {
    throw new DependencyError(
      'TCRAWL_TEMPORAL_START_FAILED',
      `Port ${port} on ${HOST} is taken by something that is not a Temporal frontend. Free it, choose another port, or set TEMPORAL_ADDRESS.`,
    );
  }
  const cli = await findTemporalCli(opts.config, opts.log);
  const { started, stop, pid } = await startServer(cli, { ...opts, port, uiPort, address });
  return { started, address, uiUrl, stop, pid };
}

/**
 * Whether a Temporal frontend answers at `address` (secured as `access`
 * says: tcrawl's own dev server is plaintext). A closed port is detected
 * by a plain TCP connect first, because the gRPC client waits out its whole
 * timeout on a refused connection.
 */
export async function isTemporalFrontend(address: string, timeoutMs = 3_000, access: TemporalAccess = plaintextAccess): Promise<boolean> {
  const [host, portText] = splitAddress(address);
  if (!(await isPortOpen(host, Number(portText), timeoutMs))) return false;
  let connection: Connection | undefined;
  try {
    connection = await connectClient(address, access, { connectTimeout: timeoutMs });
    const conn = connection;
    await conn.withDeadline(Date.now() + timeoutMs, () => conn.workflowService.getSystemInfo({}));
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => {});
  }
}

const searchAttributeFlagType: Record<string, string> = { KEYWORD: 'Keyword', INT: 'Int', TEXT: 'Text', DOUBLE: 'Double', BOOL: 'Bool', DATETIME: 'Datetime', KEYWORD_LIST: 'KeywordList' };

/** The local server is tcrawl's own: its search attributes are registered without asking (elsewhere: `tcrawl setup`). */
async function registerOnLocalServer(address: string, opts: TemporalServerOptions): Promise<void> {
  const connection = await connectClient(address, plaintextAccess);
  try {
    const added = await registerSearchAttributes(connection, opts.config.temporalNamespace);
    if (added.length > 0) opts.log(`Registered search attributes ${added.join(', ')} on ${address}.`);
  } catch (error) {
    opts.log(`Warning: could not register tcrawl's search attributes on ${address} (${(error as Error).message}); crawls run, but the Web UI's list shows no progress. See \`tcrawl setup\`.`);
  } finally {
    await connection.close();
  }
}

function splitAddress(address: string): [string, string] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), address.slice(i + 1)];
}

/** Where the server's output goes; a shared append-only file, so errors quote only this run's part. */
function logPath(config: RuntimeConfig): string {
  return path.join(config.dataDir, 'temporal.log');
}

function pidPath(config: RuntimeConfig): string {
  return path.join(config.dataDir, 'temporal.pid');
}

type StartOptions = TemporalServerOptions & { port: number; uiPort: number; address: string };

async function startServer(cli: string, opts: StartOptions): Promise<Pick<TemporalServer, 'started' | 'stop' | 'pid'>> {
  const { config, log } = opts;
  const dbFile = path.resolve(opts.dbFile ?? path.join(config.dataDir, 'temporal.db'));
  fs.mkdirSync(config.dataDir, { recursive: true });
  fs.mkdirSync(path.dirname(dbFile), { recursive: true });
  const logFile = logPath(config);
  const logStart = fileSize(logFile);
  const args = ['server', 'start-dev', '--ip', HOST, '--port', String(opts.port), '--ui-port', String(opts.uiPort),
    '--db-filename', dbFile, '--log-level', 'warn',
    // Registered at start, so the first crawl can carry them (one added later is usable only once the server's cache refreshes).
    ...Object.entries(searchAttributeTypes).flatMap(([name, type]) => ['--search-attribute', `${name}=${searchAttributeFlagType[type]}`])];
  const started = Date.now();
  log(`Starting the Temporal dev server on ${opts.address} (UI on port ${opts.uiPort}, database ${dbFile}, log ${logFile})…`);
  const child = spawnServer(cli, args, logFile, opts.detached);
  if (opts.detached && child.pid !== undefined) fs.writeFileSync(pidPath(config), `${child.pid}\n`);
  const exited = new Promise<string>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? `code ${code}`)));
  const stop = opts.detached ? async () => {} : attachedStopper(child);
  const failure = await waitUntilReady(child, exited, opts.address, opts.startTimeoutMs ?? 60_000);
  if (!failure) {
    if (opts.detached) child.unref();
    log(`Temporal is up at ${opts.address} after ${((Date.now() - started) / 1000).toFixed(1)}s.`);
    return { started: true, stop, pid: child.pid };
  }
  await (opts.detached ? abandonDetached(child, config) : stop());
  if (await startedByOtherProcess(opts.address)) {
    log(`Another process started Temporal at ${opts.address} at the same time; using that one.`);
    return { started: false, stop: async () => {} };
  }
  const tail = tailFile(logFile, 30, logStart);
  throw new DependencyError('TCRAWL_TEMPORAL_START_FAILED',
    `The Temporal dev server ${failure}.\nCommand: ${cli} ${args.join(' ')}\n--- last lines of ${logFile} ---\n${tail || '(empty)'}`);
}

/** Kills a detached server that failed to come up, and forgets its pid unless another process has written its own since. */
async function abandonDetached(child: ChildProcess, config: RuntimeConfig): Promise<void> {
  if (child.pid === undefined) return;
  await terminateProcess(child.pid, 5_000);
  if (readPidFile(pidPath(config)) === child.pid) fs.rmSync(pidPath(config), { force: true });
}

/**
 * Two tcrawl processes may start the server at the same moment: the loser's
 * server cannot bind the port and exits. Then the winner's answers soon.
 */
async function startedByOtherProcess(address: string): Promise<boolean> {
  const [host, port] = splitAddress(address);
  if (!(await isPortOpen(host, Number(port)))) return false;
  return pollUntil(() => isTemporalFrontend(address, 1_000), 30_000, 250);
}

/** Starts `cli args…` with its output appended to `logFile` after a line naming the command. */
export function spawnServer(cli: string, args: string[], logFile: string, detached: boolean, env?: NodeJS.ProcessEnv): ChildProcess {
  const fd = fs.openSync(logFile, 'a');
  try {
    fs.writeSync(fd, `\n--- ${new Date().toISOString()} pid ${process.pid}: ${cli} ${args.join(' ')}\n`);
    // detached: a new session, so a Ctrl-C aimed at us does not reach the server.
    return spawn(cli, args, { detached, env, stdio: ['ignore', fd, fd] });
  } finally {
    fs.closeSync(fd);
  }
}

/** Resolves to a description of what went wrong, or undefined once the frontend answers at `address`. */
export async function waitUntilReady(child: ChildProcess, exited: Promise<string>, address: string, timeoutMs: number, access: TemporalAccess = plaintextAccess): Promise<string | undefined> {
  let failed: string | undefined;
  void exited.then((how) => (failed ??= `exited early (${how})`));
  child.once('error', (err) => (failed ??= `could not be started (${err.message})`));
  const ready = await pollUntil(async () => failed !== undefined || (await isTemporalFrontend(address, 1_000, access)), timeoutMs, 250);
  return failed ?? (ready ? undefined : `did not answer at ${address} within ${timeoutMs / 1000}s`);
}

/**
 * stop() for a server this process owns: SIGTERM, then SIGKILL after 10 s. An
 * exit hook sends SIGTERM too, so a crash or a forgotten stop() leaves no server behind.
 */
export function attachedStopper(child: ChildProcess): () => Promise<void> {
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  };
  process.once('exit', onExit);
  let stopping: Promise<void> | undefined;
  return () => {
    stopping ??= (async () => {
      process.removeListener('exit', onExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    })();
    return stopping;
  };
}

/**
 * Stops a server started with `detached: true`, found through `<dataDir>/temporal.pid`.
 * @returns whether a running server was stopped
 */
export async function stopDetachedTemporalServer(config: RuntimeConfig): Promise<boolean> {
  const pidFile = pidPath(config);
  const pid = readPidFile(pidFile);
  if (pid === undefined) return false;
  // A stale pid file may name an unrelated process that reused the pid.
  const stopped = isTemporalServerPid(pid) && (await terminateProcess(pid));
  fs.rmSync(pidFile, { force: true });
  return stopped;
}

function isTemporalServerPid(pid: number): boolean {
  if (!isProcessAlive(pid)) return false;
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('server') && argv.includes('start-dev');
  } catch {
    return true; // No /proc (macOS): trust the pid file.
  }
}
