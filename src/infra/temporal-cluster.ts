/**
 * A self-hosted Temporal server on Postgres, as in production: the official
 * `temporal-server` (all four services in one process) run from
 * deploy/temporal/config.yaml, its persistence and visibility schemas set up
 * by `temporal-sql-tool` in databases of their own. The binaries come from
 * temporal-cluster-binaries.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { plaintextAccess, type TemporalAccess } from '../config';
import { DependencyError } from '../errors';
import { connectClient } from '../temporal-connection';
import { fileSize, tailFile } from './local-service';
import { registerNamespace } from './namespace';
import type { TemporalClusterBinaries } from './temporal-cluster-binaries';
import { attachedStopper, spawnServer, waitUntilReady } from './temporal-server';

const execFileAsync = promisify(execFile);

/** Where the server keeps its state: two databases on one Postgres server. */
export interface ClusterDatabases {
  /** A postgres:// URL of the server (its path is ignored); the user must be allowed to create databases. */
  postgresUrl: string;
  /** Workflow state, histories, task queues. @default 'temporal' */
  persistence?: string;
  /** What list and search queries read (`executions_visibility`). @default 'temporal_visibility' */
  visibility?: string;
}

/**
 * The ports of one server process; each service needs a gRPC port and a
 * membership port. Membership ports must be below 32768: Temporal's Postgres
 * schema keeps them in a smallint (`cluster_membership.rpc_port`), and the
 * server exits at start on a larger one.
 */
export interface ClusterPorts {
  frontend: number;
  frontendHttp: number;
  history: number;
  matching: number;
  worker: number;
  frontendMembership: number;
  historyMembership: number;
  matchingMembership: number;
  workerMembership: number;
  /** Prometheus metrics. */
  metrics: number;
}

/** Ten consecutive ports from `first`: the frontend's is `first`. */
export function consecutivePorts(first: number): ClusterPorts {
  const names: (keyof ClusterPorts)[] = ['frontend', 'history', 'matching', 'worker', 'frontendHttp', 'frontendMembership', 'historyMembership', 'matchingMembership', 'workerMembership', 'metrics'];
  return Object.fromEntries(names.map((name, i) => [name, first + i])) as unknown as ClusterPorts;
}

/** deploy/temporal/ of the checkout this module runs in (from src/infra/ under tsx, or dist/src/infra/). */
function deployDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'deploy', 'temporal');
    if (fs.existsSync(path.join(candidate, 'config.yaml'))) return candidate;
    if (path.dirname(dir) === dir) throw new DependencyError('TCRAWL_TEMPORAL_CONFIG_MISSING', `No deploy/temporal/config.yaml above ${__dirname}: run this from a checkout of tcrawl.`);
  }
}

/**
 * Creates the two databases when missing and brings their schemas to the
 * version this release needs, with deploy/temporal/setup-schema.sh (what a
 * container runs too). Safe to run again: an up-to-date database is left as
 * it is, an older one is upgraded.
 *
 * @throws DependencyError `TCRAWL_TEMPORAL_SCHEMA_FAILED` with the script's output.
 */
export async function setupClusterDatabases(binaries: TemporalClusterBinaries, db: ClusterDatabases, log: (line: string) => void): Promise<void> {
  const script = path.join(deployDir(), 'setup-schema.sh');
  try {
    const { stdout } = await execFileAsync('sh', [script], { env: { ...process.env, ...databaseEnv(db), SQL_TOOL: binaries.sqlTool }, timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
    for (const line of stdout.split('\n')) if (line.startsWith('database ')) log(`Temporal ${binaries.version}: ${line}`);
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    const tail = `${stdout}\n${stderr}`.trim().split('\n').slice(-15).join('\n');
    throw new DependencyError('TCRAWL_TEMPORAL_SCHEMA_FAILED', `${script} failed.\n${tail}`, { cause: error });
  }
}

/**
 * TLS on the frontend: the TEMPORAL_TLS_* variables deploy/temporal/config.yaml
 * reads. Paths to PEM files.
 */
export interface ClusterTls {
  /** The certificate the frontend presents, and its key. */
  certFile: string;
  keyFile: string;
  /** The CA of that certificate: the server's own system worker connects to the frontend and checks it against this. */
  caFile: string;
  /** Set: every client must present a certificate signed by this CA (mutual TLS). */
  clientCaFile?: string;
  /** The system worker's certificate and key, signed by `clientCaFile` (needed under mutual TLS). */
  systemWorkerCertFile?: string;
  systemWorkerKeyFile?: string;
}

export interface TemporalClusterOptions {
  binaries: TemporalClusterBinaries;
  databases: ClusterDatabases;
  ports: ClusterPorts;
  /** TLS on the frontend. @default plaintext */
  tls?: ClusterTls;
  /** How tcrawl's readiness check and namespace registration connect (the client side of `tls`). @default plaintext */
  access?: TemporalAccess;
  /** The server's output is appended here. */
  logFile: string;
  /** Registered when missing (a fresh server has no namespace; see registerNamespace). @default 'default' */
  namespace?: string;
  /** @default '<checkout>/deploy/temporal/config.yaml' */
  configFile?: string;
  /** @default '<checkout>/deploy/temporal/dynamicconfig.yaml' */
  dynamicConfigFile?: string;
  /** How long to wait for the frontend and then the namespace. @default 120_000 */
  startTimeoutMs?: number;
  log: (line: string) => void;
}

export interface TemporalCluster {
  /** `host:port` of the frontend. */
  address: string;
  pid: number;
  /** SIGTERM (a clean shutdown), SIGKILL after 10 s; idempotent. */
  stop(): Promise<void>;
}

/** The database part of what deploy/temporal/config.yaml and setup-schema.sh read (the names of Temporal's own Docker image). */
function databaseEnv(db: ClusterDatabases): NodeJS.ProcessEnv {
  const url = new URL(db.postgresUrl);
  return {
    POSTGRES_SEEDS: url.hostname,
    DB_PORT: url.port || '5432',
    POSTGRES_USER: decodeURIComponent(url.username),
    POSTGRES_PWD: decodeURIComponent(url.password),
    DBNAME: db.persistence ?? 'temporal',
    VISIBILITY_DBNAME: db.visibility ?? 'temporal_visibility',
  };
}

function tlsEnv(tls: ClusterTls | undefined): NodeJS.ProcessEnv {
  if (!tls) return {};
  const entries = {
    TEMPORAL_TLS_FRONTEND_CERT: tls.certFile,
    TEMPORAL_TLS_FRONTEND_KEY: tls.keyFile,
    TEMPORAL_TLS_FRONTEND_CA_CERT: tls.caFile,
    TEMPORAL_TLS_CLIENT_CA_CERT: tls.clientCaFile,
    TEMPORAL_TLS_SYSTEM_WORKER_CERT: tls.systemWorkerCertFile,
    TEMPORAL_TLS_SYSTEM_WORKER_KEY: tls.systemWorkerKeyFile,
  };
  return Object.fromEntries(Object.entries(entries).filter(([, value]) => value !== undefined));
}

/** The environment deploy/temporal/config.yaml reads. */
function clusterEnv(opts: TemporalClusterOptions): NodeJS.ProcessEnv {
  const p = opts.ports;
  return {
    ...databaseEnv(opts.databases),
    ...tlsEnv(opts.tls),
    BIND_ON_IP: '127.0.0.1',
    FRONTEND_GRPC_PORT: String(p.frontend),
    FRONTEND_HTTP_PORT: String(p.frontendHttp),
    HISTORY_GRPC_PORT: String(p.history),
    MATCHING_GRPC_PORT: String(p.matching),
    WORKER_GRPC_PORT: String(p.worker),
    FRONTEND_MEMBERSHIP_PORT: String(p.frontendMembership),
    HISTORY_MEMBERSHIP_PORT: String(p.historyMembership),
    MATCHING_MEMBERSHIP_PORT: String(p.matchingMembership),
    WORKER_MEMBERSHIP_PORT: String(p.workerMembership),
    PROMETHEUS_ENDPOINT: `127.0.0.1:${p.metrics}`,
    DYNAMIC_CONFIG_FILE_PATH: opts.dynamicConfigFile ?? path.join(deployDir(), 'dynamicconfig.yaml'),
  };
}

/**
 * Starts `temporal-server … start` (frontend, history, matching, worker) as a
 * child of this process and waits until its frontend answers and `namespace`
 * exists. The databases must be set up ({@link setupClusterDatabases}).
 *
 * @throws DependencyError `TCRAWL_TEMPORAL_START_FAILED` with the log's tail.
 */
export async function startTemporalCluster(opts: TemporalClusterOptions): Promise<TemporalCluster> {
  const address = `127.0.0.1:${opts.ports.frontend}`;
  const timeoutMs = opts.startTimeoutMs ?? 120_000;
  const configFile = opts.configFile ?? path.join(deployDir(), 'config.yaml');
  const args = ['--config-file', configFile, '--allow-no-auth', 'start'];
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const logStart = fileSize(opts.logFile);
  const started = Date.now();
  const child = spawnServer(opts.binaries.server, args, opts.logFile, false, { ...process.env, ...clusterEnv(opts) });
  const exited = new Promise<string>((resolve) => child.once('exit', (code, sig) => resolve(sig ?? `code ${code}`)));
  const stop = attachedStopper(child);
  const access = opts.access ?? plaintextAccess;
  let failure = await waitUntilReady(child, exited, address, timeoutMs, access);
  if (!failure) failure = await ensureNamespace(address, access, opts.namespace ?? 'default', started + timeoutMs);
  if (failure) {
    await stop();
    throw new DependencyError('TCRAWL_TEMPORAL_START_FAILED',
      `The Temporal server ${opts.binaries.version} ${failure}.\nCommand: ${opts.binaries.server} ${args.join(' ')}\n--- last lines of ${opts.logFile} ---\n${tailFile(opts.logFile, 30, logStart) || '(empty)'}`);
  }
  opts.log(`Temporal server ${opts.binaries.version} is up at ${address} after ${((Date.now() - started) / 1000).toFixed(1)}s (pid ${child.pid}, log ${opts.logFile}).`);
  return { address, pid: child.pid!, stop };
}

/**
 * Registers `namespace` unless it exists, and waits until the server describes
 * it. The frontend answers before history owns its shards, so the first
 * attempts may fail: they are retried until `deadline`. Returns what went
 * wrong, or undefined.
 */
async function ensureNamespace(address: string, access: TemporalAccess, namespace: string, deadline: number): Promise<string | undefined> {
  const connection = await connectClient(address, access);
  let lastError = '';
  try {
    while (Date.now() < deadline) {
      try {
        if (!(await registerNamespace(connection, namespace))) return undefined;
      } catch (error) {
        lastError = (error as Error).message;
        await sleep(500);
      }
    }
    return `answered, but namespace ${namespace} could not be found or registered in time (${lastError})`;
  } finally {
    await connection.close();
  }
}
