/**
 * Every connection tcrawl opens to a Temporal frontend — the client's
 * (`Connection`) and the worker's (`NativeConnection`) — gets its options
 * from {@link temporalConnectionOptions}, so TLS and API keys apply to all of
 * them alike.
 */
import { Connection, type TLSConfig } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import type { TemporalAccess } from './config';
import { DependencyError } from './errors';

/** The options both `Connection.connect` and `NativeConnection.connect` take. */
export interface TemporalConnectionOptions {
  address: string;
  /** Absent: plaintext. */
  tls?: TLSConfig;
  apiKey?: string;
}

/** The connection options for the frontend at `address`, secured as `access` says (the runtime config, or {@link plaintextAccess}). */
export function temporalConnectionOptions(address: string, access: TemporalAccess): TemporalConnectionOptions {
  const { temporalTls: tls, temporalApiKey: apiKey } = access;
  const options: TemporalConnectionOptions = { address };
  if (tls || apiKey) {
    options.tls = {
      ...(tls?.serverCaCert ? { serverRootCACertificate: tls.serverCaCert } : {}),
      ...(tls?.clientCertPair ? { clientCertPair: tls.clientCertPair } : {}),
      ...(tls?.serverName ? { serverNameOverride: tls.serverName } : {}),
    };
  }
  if (apiKey) options.apiKey = apiKey;
  return options;
}

/**
 * A client connection (starting, querying, listing crawls).
 *
 * @throws DependencyError `TCRAWL_TEMPORAL_UNREACHABLE` naming the address, how it was secured, and what to check.
 */
export async function connectClient(address: string, access: TemporalAccess, extra: { connectTimeout?: number } = {}): Promise<Connection> {
  try {
    return await Connection.connect({ ...temporalConnectionOptions(address, access), ...extra });
  } catch (error) {
    throw unreachable(address, access, error);
  }
}

/**
 * A worker's connection.
 *
 * @throws DependencyError `TCRAWL_TEMPORAL_UNREACHABLE`, as {@link connectClient}.
 */
export async function connectWorker(address: string, access: TemporalAccess): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect(temporalConnectionOptions(address, access));
  } catch (error) {
    throw unreachable(address, access, error);
  }
}

function unreachable(address: string, access: TemporalAccess, error: unknown): DependencyError {
  const message = (error as Error).message ?? String(error);
  const how = access.temporalTls?.describedAs.length ? `over TLS (${access.temporalTls.describedAs.join(', ')})` : access.temporalApiKey ? 'over TLS with TEMPORAL_API_KEY' : 'in plaintext (no TEMPORAL_TLS* set)';
  return new DependencyError('TCRAWL_TEMPORAL_UNREACHABLE', `Could not connect to Temporal at ${address} ${how}: ${message}\n${hints(access, message).join('\n')}`, { cause: error });
}

/**
 * What to check, from how the connection was secured. The client's own
 * error rarely says more than "Failed to connect before the deadline",
 * whether the port is closed, TLS was refused or the server's certificate
 * failed the check: so every cause the settings leave open is named.
 */
function hints(access: TemporalAccess, message: string): string[] {
  const secured = access.temporalTls !== undefined || access.temporalApiKey !== undefined;
  const lines = ['Check that TEMPORAL_ADDRESS names a running frontend this machine can reach.'];
  if (!secured) {
    lines.push('If the server requires TLS, set TEMPORAL_TLS=true, or TEMPORAL_TLS_SERVER_CA_CERT_PATH to the CA of its certificate.');
    return lines;
  }
  lines.push('If the server\'s certificate is not signed by a CA this system trusts, set TEMPORAL_TLS_SERVER_CA_CERT_PATH to its CA; if it is not issued for the address\'s host, set TEMPORAL_TLS_SERVER_NAME to a name it is issued for.');
  if (!access.temporalTls?.clientCertPair) lines.push('If the server requires client certificates (mutual TLS), set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH.');
  if (access.temporalApiKey && /unauthenticated|unauthorized|permission/i.test(message)) lines.push('Check TEMPORAL_API_KEY: the server refused it.');
  return lines;
}
