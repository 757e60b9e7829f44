import * as dns from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { TcrawlError } from '../src/errors';
import { addressKind, isPrivateAddress } from '../src/private-address';

/**
 * The HTTP client side of a worker: one pooled keep-alive undici Agent per
 * distinct set of options, shared by every fetch activity of the worker.
 *
 * The private-address guard lives here, at connect time, because that is the
 * only place that sees the address actually dialled: a check on the URL
 * alone is defeated by a public name resolving to 127.0.0.1 (or by DNS
 * rebinding between a check and the connect), and redirects reach the
 * connector like any other request.
 */

export interface HttpAgentOptions {
  /** Milliseconds to establish a TCP (and TLS) connection. */
  connectTimeoutMs: number;
  /** Milliseconds to wait for response headers once the request is sent. */
  headersTimeoutMs: number;
  /** Milliseconds the response body may stay idle between chunks. */
  bodyTimeoutMs: number;
  /** Allow connecting to loopback, private, link-local and unspecified addresses. */
  allowPrivate: boolean;
  /** Keep-alive connections per origin. @default 64 */
  connectionsPerOrigin?: number;
  /** The local address connections leave from (an egress route). @default the system's choice */
  localAddress?: string;
}

/** Test seam: where host names are resolved. @default dns.lookup */
export interface HttpAgentDeps {
  lookup?: LookupFunction;
}

/** A connection to a non-public address was refused because `allowPrivate` is off. */
export class PrivateAddressError extends TcrawlError {
  constructor(
    readonly hostname: string,
    readonly address: string,
    readonly kind: string,
  ) {
    super('TCRAWL_PRIVATE_ADDRESS', privateAddressMessage(hostname, address, kind));
  }
}

function privateAddressMessage(hostname: string, address: string, kind: string): string {
  const article = /^[aeiou]/i.test(kind) ? 'an' : 'a';
  const what = hostname === address ? `${address} is` : `${hostname} resolves to ${address},`;
  return (
    `Refusing to connect: ${what} ${article} ${kind} address. ` +
    'Crawling private networks is off by default; pass --allow-private (spec: "allowPrivate": true) to allow it.'
  );
}

/** A new Agent; most callers want the shared one from `agentFor`. */
export function createHttpAgent(opts: HttpAgentOptions, deps: HttpAgentDeps = {}): Dispatcher {
  return new Agent({
    connections: opts.connectionsPerOrigin ?? 64,
    headersTimeout: opts.headersTimeoutMs,
    bodyTimeout: opts.bodyTimeoutMs,
    ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
    connect: connectorFor(opts, deps.lookup ?? dns.lookup),
  });
}

function connectorFor(opts: HttpAgentOptions, lookup: LookupFunction): buildConnector.connector {
  if (opts.allowPrivate) return buildConnector({ timeout: opts.connectTimeoutMs, lookup });
  const connect = buildConnector({ timeout: opts.connectTimeoutMs, lookup: guardLookup(lookup) });
  // Node's net skips `lookup` for IP-literal hosts, so those are checked here.
  return (options, callback) => {
    const refusal = privateLiteralError(options.hostname);
    if (refusal) callback(refusal, null);
    else connect(options, callback);
  };
}

/**
 * Wraps a lookup function so that only public addresses come out of it. A
 * name with both public and private addresses is connected through its public
 * ones only; a name with no public address fails with PrivateAddressError.
 * Handles both call forms: net passes `all: true` when happy eyeballs
 * (`autoSelectFamily`, on by default since Node 20) is on, and wants a single
 * address otherwise.
 */
export function guardLookup(lookup: LookupFunction = dns.lookup): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const usable = publicAddresses(hostname, toList(addresses));
      if (usable instanceof Error) return callback(usable, '');
      if (options.all) return callback(null, usable);
      callback(null, usable[0].address, usable[0].family);
    });
  };
}

function toList(addresses: string | dns.LookupAddress[]): dns.LookupAddress[] {
  return typeof addresses === 'string' ? [{ address: addresses, family: isIP(addresses) }] : addresses;
}

function publicAddresses(hostname: string, addresses: dns.LookupAddress[]): dns.LookupAddress[] | Error {
  if (addresses.length === 0) return notFound(hostname);
  const usable = addresses.filter((a) => !isPrivateAddress(a.address));
  if (usable.length > 0) return usable;
  const first = addresses[0].address;
  return new PrivateAddressError(hostname, first, kindOf(first));
}

function notFound(hostname: string): Error {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
}

/**
 * The refusal for an IP-literal host that is not public, or null. Accepts a
 * URL's `hostname` (`[::1]`) as well as undici's unbracketed form (`::1`);
 * returns null for names, which are checked when they are resolved.
 */
export function privateLiteralError(hostname: string): PrivateAddressError | null {
  const bare = unbracket(hostname);
  if (isIP(bare) === 0 || !isPrivateAddress(bare)) return null;
  return new PrivateAddressError(bare, bare, kindOf(bare));
}

function unbracket(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

function kindOf(ip: string): string {
  return addressKind(ip) ?? 'non-public';
}

/**
 * Resolves `hostname` and throws PrivateAddressError (`TCRAWL_PRIVATE_ADDRESS`)
 * unless it has a public address, by the same rule the connector applies. DNS
 * errors (`ENOTFOUND`, …) are passed through. For refusing a private seed up
 * front; the connect-time check still guards every request.
 */
export async function assertPublicHost(hostname: string, deps: HttpAgentDeps = {}): Promise<void> {
  if (isIP(unbracket(hostname)) !== 0) {
    const refusal = privateLiteralError(hostname);
    if (refusal) throw refusal;
    return;
  }
  const lookup = guardLookup(deps.lookup ?? dns.lookup);
  await new Promise<void>((resolve, reject) => {
    lookup(hostname, { all: true }, (err) => (err ? reject(err) : resolve()));
  });
}

const agents = new Map<string, Dispatcher>();

/**
 * The worker's shared Agent for these options, created on first use. Timeouts
 * come from each crawl's spec while connections are pooled per worker, so
 * crawls with equal settings share one pool. Accepts a whole CrawlSpec: only
 * the agent's own fields make up the key.
 */
export function agentFor(opts: HttpAgentOptions): Dispatcher {
  const normalized = normalize(opts);
  const key = JSON.stringify(normalized);
  let agent = agents.get(key);
  if (agent === undefined) {
    agent = createHttpAgent(normalized);
    agents.set(key, agent);
  }
  return agent;
}

/** Picks the agent's fields in a fixed order, defaults filled, so equal options give equal keys. */
function normalize(opts: HttpAgentOptions): Required<Omit<HttpAgentOptions, 'localAddress'>> {
  return {
    connectTimeoutMs: opts.connectTimeoutMs,
    headersTimeoutMs: opts.headersTimeoutMs,
    bodyTimeoutMs: opts.bodyTimeoutMs,
    allowPrivate: opts.allowPrivate,
    connectionsPerOrigin: opts.connectionsPerOrigin ?? 64,
  };
}

/** Closes every shared Agent, letting in-flight requests finish; call on worker shutdown. */
export async function closeAgents(): Promise<void> {
  const closing = [...agents.values()];
  agents.clear();
  await Promise.all(closing.map((agent) => agent.close()));
}
