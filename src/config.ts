import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { InvalidInputError } from './errors';

/**
 * Where tcrawl finds its services, resolved once from the environment.
 * Unset `TEMPORAL_ADDRESS` / `DATABASE_URL` mean "use the local ones under the
 * data folder, starting them on demand".
 */
export interface RuntimeConfig {
  /** `host:port` of a Temporal frontend, or undefined for the local dev server. */
  temporalAddress: string | undefined;
  /** @default 'default' */
  temporalNamespace: string;
  /** TLS to the frontend at `temporalAddress` (never to the local dev server); undefined: plaintext, unless `temporalApiKey` is set. */
  temporalTls: TemporalTls | undefined;
  /** An API key (Temporal Cloud), sent as `Authorization: Bearer …`; it implies TLS. */
  temporalApiKey: string | undefined;
  /** A postgres:// URL, or undefined for the embedded Postgres. */
  databaseUrl: string | undefined;
  /** @default 'tcrawl' */
  taskQueue: string;
  /** Local state: Temporal's SQLite file, the embedded Postgres cluster, logs. @default './.tcrawl' */
  dataDir: string;
  /** Built tools that outlive a checkout (the Temporal CLI). @default '$XDG_CACHE_HOME/tcrawl' or '~/.cache/tcrawl' */
  cacheDir: string;
}

/**
 * TLS to a Temporal frontend, its files read and checked. The variables are
 * the names of Temporal's client environment configuration, which the
 * Temporal CLI and SDKs read too.
 */
export interface TemporalTls {
  /** PEM of the CA that signed the server's certificate (TEMPORAL_TLS_SERVER_CA_CERT_PATH); unset: the system's trusted roots. */
  serverCaCert?: Buffer;
  /** Certificate and private key presented to the server, for mutual TLS (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH). */
  clientCertPair?: { crt: Buffer; key: Buffer };
  /** The name the server's certificate is checked against, instead of the address's host (TEMPORAL_TLS_SERVER_NAME). */
  serverName?: string;
  /** The variables the settings came from, `NAME=value`, for messages. */
  describedAs: string[];
}

/** How a connection to the frontend is secured: what {@link RuntimeConfig} holds for it. */
export type TemporalAccess = Pick<RuntimeConfig, 'temporalTls' | 'temporalApiKey'>;

/** No TLS, no API key: tcrawl's own local servers. */
export const plaintextAccess: TemporalAccess = { temporalTls: undefined, temporalApiKey: undefined };

/**
 * Reads and checks the environment: an invalid setting (a malformed
 * namespace or task queue name, an unreadable certificate, a key without its
 * certificate) throws here, before any service is started or connected to.
 *
 * @throws InvalidInputError with one of the codes of the README's
 *   "Environment" table (`TCRAWL_INVALID_NAMESPACE`, `TCRAWL_TLS_FILE_UNREADABLE`, …).
 */
export function runtimeConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const temporalAddress = env.TEMPORAL_ADDRESS || undefined;
  if (temporalAddress) assertTemporalAddress(temporalAddress);
  const temporalNamespace = env.TEMPORAL_NAMESPACE || 'default';
  assertTemporalName('TEMPORAL_NAMESPACE', temporalNamespace, 'TCRAWL_INVALID_NAMESPACE');
  const taskQueue = env.TCRAWL_TASK_QUEUE || 'tcrawl';
  assertTemporalName('TCRAWL_TASK_QUEUE', taskQueue, 'TCRAWL_INVALID_TASK_QUEUE');
  assertTaskQueueNotReserved(taskQueue);
  const temporalApiKey = env.TEMPORAL_API_KEY || undefined;
  const temporalTls = temporalTlsFrom(env, temporalApiKey !== undefined);
  if ((temporalTls || temporalApiKey) && !temporalAddress) {
    throw new InvalidInputError(
      `${[...(temporalTls?.describedAs ?? []), ...(temporalApiKey ? ['TEMPORAL_API_KEY'] : [])].map((s) => s.split('=')[0]).join(', ')} ` +
        'set without TEMPORAL_ADDRESS: the local Temporal dev server tcrawl starts speaks plaintext. Set TEMPORAL_ADDRESS to the server these settings are for, or unset them.',
      'TCRAWL_TLS_WITHOUT_ADDRESS',
    );
  }
  return {
    temporalAddress,
    temporalNamespace,
    temporalTls,
    temporalApiKey,
    databaseUrl: env.DATABASE_URL || undefined,
    taskQueue,
    dataDir: path.resolve(env.TCRAWL_DATA_DIR || '.tcrawl'),
    cacheDir: path.resolve(env.TCRAWL_CACHE_DIR || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'tcrawl')),
  };
}

/** `host:port`, as the SDK's connections take it: a URL scheme is a common mistake (`http://…`), and the SDK's own error for it says little. */
function assertTemporalAddress(address: string): void {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:/[\]]+):(\d{1,5})$/.exec(address);
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new InvalidInputError(`TEMPORAL_ADDRESS=${address} is not host:port (e.g. 127.0.0.1:7233 or my-ns.a1b2c.tmprl.cloud:7233; no scheme, no path).`, 'TCRAWL_INVALID_TEMPORAL_ADDRESS');
  }
}

/**
 * The server's limit on names (`limit.maxIDLength`, 1,000 bytes by default);
 * tcrawl also refuses whitespace and control characters, which the server
 * would take but which are always a pasting mistake (`default ` is another
 * namespace than `default`).
 */
const maxNameBytes = 1000;

function assertTemporalName(variable: string, name: string, code: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes > maxNameBytes) throw new InvalidInputError(`${variable} is ${bytes} bytes long; Temporal takes at most ${maxNameBytes}.`, code);
  const bad = /[\s\u0000-\u001f\u007f]/.exec(name);
  if (bad) throw new InvalidInputError(`${variable}=${JSON.stringify(name)} has ${JSON.stringify(bad[0])} at ${bad.index}: names take no whitespace or control characters.`, code);
}

/** Prefixes the server keeps for itself: `/_sys/` names task queue partitions, `temporal-sys-` its internal per-namespace queues. */
function assertTaskQueueNotReserved(taskQueue: string): void {
  const reserved = ['/_sys/', 'temporal-sys-'].find((prefix) => taskQueue.startsWith(prefix));
  if (reserved) throw new InvalidInputError(`TCRAWL_TASK_QUEUE=${taskQueue} starts with ${reserved}, which the Temporal server keeps for itself: choose another name.`, 'TCRAWL_INVALID_TASK_QUEUE');
}

/** Variables of Temporal's environment configuration that tcrawl does not read, and what to set instead. */
const unsupportedTlsVariables: Record<string, string> = {
  TEMPORAL_TLS_CLIENT_CERT_DATA: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
  TEMPORAL_TLS_CLIENT_KEY_DATA: 'TEMPORAL_TLS_CLIENT_KEY_PATH',
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
};

/**
 * TEMPORAL_TLS (`true`/`false`) and the TEMPORAL_TLS_* files. TLS is on when
 * TEMPORAL_TLS=true, when any file or the server name is set, or with an API
 * key (as in Temporal's SDKs); TEMPORAL_TLS=false beside any of them is a
 * contradiction, refused.
 */
function temporalTlsFrom(env: NodeJS.ProcessEnv, hasApiKey: boolean): TemporalTls | undefined {
  for (const [variable, instead] of Object.entries(unsupportedTlsVariables)) {
    if (env[variable]) throw new InvalidInputError(`${variable} is not read by tcrawl: write the PEM to a file and set ${instead} to its path.`, 'TCRAWL_TLS_UNSUPPORTED_VARIABLE');
  }
  const flag = env.TEMPORAL_TLS || undefined;
  if (flag !== undefined && flag !== 'true' && flag !== 'false') throw new InvalidInputError(`TEMPORAL_TLS=${flag}: use true or false.`, 'TCRAWL_INVALID_TEMPORAL_TLS');
  const caFile = env.TEMPORAL_TLS_SERVER_CA_CERT_PATH || undefined;
  const certFile = env.TEMPORAL_TLS_CLIENT_CERT_PATH || undefined;
  const keyFile = env.TEMPORAL_TLS_CLIENT_KEY_PATH || undefined;
  const serverName = env.TEMPORAL_TLS_SERVER_NAME || undefined;
  const describedAs = Object.entries({ TEMPORAL_TLS: flag, TEMPORAL_TLS_SERVER_CA_CERT_PATH: caFile, TEMPORAL_TLS_CLIENT_CERT_PATH: certFile, TEMPORAL_TLS_CLIENT_KEY_PATH: keyFile, TEMPORAL_TLS_SERVER_NAME: serverName })
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}=${value}`);
  const settings = describedAs.filter((s) => !s.startsWith('TEMPORAL_TLS='));
  if (flag === 'false') {
    if (settings.length > 0 || hasApiKey) {
      throw new InvalidInputError(`TEMPORAL_TLS=false, yet ${[...settings.map((s) => s.split('=')[0]), ...(hasApiKey ? ['TEMPORAL_API_KEY (which needs TLS)'] : [])].join(', ')} set: unset one or the other.`, 'TCRAWL_TLS_CONFLICT');
    }
    return undefined;
  }
  if (keyFile && !certFile) throw new InvalidInputError(`TEMPORAL_TLS_CLIENT_KEY_PATH is set without TEMPORAL_TLS_CLIENT_CERT_PATH: mutual TLS needs the client's certificate beside its key.`, 'TCRAWL_TLS_KEY_WITHOUT_CERT');
  if (certFile && !keyFile) throw new InvalidInputError(`TEMPORAL_TLS_CLIENT_CERT_PATH is set without TEMPORAL_TLS_CLIENT_KEY_PATH: mutual TLS needs the certificate's private key beside it.`, 'TCRAWL_TLS_CERT_WITHOUT_KEY');
  if (flag !== 'true' && settings.length === 0) return undefined;
  const tls: TemporalTls = { describedAs };
  if (caFile) tls.serverCaCert = readCertificate('TEMPORAL_TLS_SERVER_CA_CERT_PATH', caFile).pem;
  if (certFile && keyFile) tls.clientCertPair = readClientPair(certFile, keyFile);
  if (serverName) tls.serverName = serverName;
  return tls;
}

function readPem(variable: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new InvalidInputError(`${variable}=${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`, 'TCRAWL_TLS_FILE_UNREADABLE');
  }
}

/** A PEM certificate, parsed here so a wrong file is named now rather than as a handshake failure on the first call. */
function readCertificate(variable: string, file: string): { pem: Buffer; cert: X509Certificate } {
  const pem = readPem(variable, file);
  try {
    return { pem, cert: new X509Certificate(pem) };
  } catch (error) {
    throw new InvalidInputError(`${variable}=${file} is not a PEM certificate (${(error as Error).message}).`, 'TCRAWL_TLS_INVALID_FILE');
  }
}

function readClientPair(certFile: string, keyFile: string): { crt: Buffer; key: Buffer } {
  const { pem: crt, cert } = readCertificate('TEMPORAL_TLS_CLIENT_CERT_PATH', certFile);
  const key = readPem('TEMPORAL_TLS_CLIENT_KEY_PATH', keyFile);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (error) {
    throw new InvalidInputError(`TEMPORAL_TLS_CLIENT_KEY_PATH=${keyFile} is not an unencrypted PEM private key (${(error as Error).message}).`, 'TCRAWL_TLS_INVALID_FILE');
  }
  if (!cert.checkPrivateKey(privateKey)) {
    throw new InvalidInputError(`TEMPORAL_TLS_CLIENT_KEY_PATH=${keyFile} is not the private key of TEMPORAL_TLS_CLIENT_CERT_PATH=${certFile}.`, 'TCRAWL_TLS_KEY_MISMATCH');
  }
  return { crt, key };
}
