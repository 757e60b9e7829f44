import { buildConnector, DecoratorHandler, Dispatcher, Pool, ProxyAgent, Socks5ProxyAgent } from 'undici';
import type { CrawlSettings } from '../src/crawl-types';
import { routesForHost, type EgressRoute, type EgressSettings } from '../src/egress';
import { TcrawlError } from '../src/errors';
import type { EgressHealth } from './egress-health';
import { classifyError, describeError } from './fetch-errors';
import { agentFor, assertPublicHost, createHttpAgent, guardLookup, privateLiteralError, type HttpAgentOptions } from './http-agent';
import { resolveValues } from './secrets';

/**
 * One dispatch through a pool of egress routes (src/egress.ts), composed
 * around the options' agents as undici composes its interceptors: each
 * request takes the route its host's pool picks at dispatch time, and what
 * it meets — a ban status, a connection failure — is told to the routes'
 * fleet-wide health (EgressHealth) on its way back to the caller.
 *
 * What a route never does is add a request. The dispatcher sends each
 * request once, through one route; a ban comes back to the caller as the
 * response it is, and the URL is retried by the crawl's own rules, after
 * its host's pacers again. So the host sees the requests it was paced for,
 * however many routes there are.
 *
 * HTTP proxies go through undici's ProxyAgent: absolute-form requests for
 * http:// targets (RFC 9112 §3.2.2), a CONNECT tunnel for https:// ones
 * (RFC 9110 §9.3.6). The private-address guard holds through them: the
 * proxy's own address is checked when connecting to it, as any address is
 * (a proxy on loopback needs allowPrivate), and a target's name, which the
 * proxy resolves, is resolved here first and refused unless it has a public
 * address here (the proxy may still resolve it otherwise: that is its
 * network; and a name that does not resolve here is left to the proxy).
 *
 * SOCKS5 proxies (RFC 1928) go through undici's Socks5ProxyAgent: a CONNECT
 * per connection, the target named as a domain name (ATYP 3) so the proxy
 * resolves it — `socks5://` and `socks5h://` alike — and username/password
 * (RFC 1929) when the route has credentials. The guard holds as for HTTP
 * proxies: the proxy's address when connecting to it, a target's name here
 * first.
 */

/** A route could not carry the request: the proxy refused the tunnel or the login, or a local address could not be bound. */
export class EgressFailedError extends TcrawlError {
  constructor(
    readonly egress: string,
    cause: unknown,
  ) {
    super('TCRAWL_EGRESS_FAILED', `Through ${egress}: ${describeError(cause)}`, { cause });
  }
}

/** What the route a request took is called: `response.context.egress` (undici's request() passes the context on). */
export interface EgressContext {
  egress?: string;
}

export interface EgressDispatcherOptions extends HttpAgentOptions {
  egress: EgressSettings;
  banStatuses: number[];
  /** First rest of a route, ms (the spec's proxyRestMs). */
  restBaseMs: number;
}

export class EgressDispatcher extends Dispatcher {
  private readonly routes = new Map<string, Dispatcher>();
  private readonly direct: Dispatcher;

  constructor(
    private readonly opts: EgressDispatcherOptions,
    readonly health: EgressHealth,
  ) {
    super();
    this.direct = agentFor(opts);
  }

  /** The keys of the routes `host` goes out through; empty: direct. */
  routeKeys(host: string): string[] {
    return routesForHost(this.opts.egress, host).map((route) => route.key);
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const routes = routesForHost(this.opts.egress, new URL(String(options.origin)).host);
    if (routes.length === 0) return this.direct.dispatch(options, handler);
    this.route(routes, options, handler).catch((error: unknown) => fail(handler, error as Error));
    return true;
  }

  private async route(routes: EgressRoute[], options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): Promise<void> {
    const signal = (options as { signal?: AbortSignal }).signal;
    const keys = routes.map((route) => route.key);
    // A caller that paces (a crawl batch) waited for a route before its pacers; this wait is for one that raced to rest since.
    await this.health.ready(keys, Infinity, signal);
    const pick = this.health.pick(keys);
    const route = routes.find((candidate) => 'key' in pick && candidate.key === pick.key) ?? routes[0];
    if (route.kind === 'proxy' && !this.opts.allowPrivate) await assertPublicTarget(String(options.origin));
    const dispatcher = this.dispatcherOf(route);
    this.health.sent(route.key);
    dispatcher.dispatch(options, new EgressObserver(handler, route.key, this.opts, this.health, signal));
  }

  private dispatcherOf(route: EgressRoute): Dispatcher {
    let dispatcher = this.routes.get(route.key);
    if (dispatcher === undefined) {
      dispatcher = routeDispatcher(route, this.opts);
      this.routes.set(route.key, dispatcher);
    }
    return dispatcher;
  }

  async close(): Promise<void> {
    await Promise.all([...this.routes.values()].map((dispatcher) => dispatcher.close()));
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.routes.values()].map((dispatcher) => dispatcher.destroy()));
  }
}

/**
 * A target a proxy will resolve: refused when it is, or resolves here only
 * to, a non-public address. A name this worker cannot resolve is the proxy's
 * to resolve (a network whose only way out is its proxy often has no DNS of
 * its own for outside names).
 */
async function assertPublicTarget(origin: string): Promise<void> {
  const { hostname } = new URL(origin);
  try {
    await assertPublicHost(hostname);
  } catch (error) {
    if (error instanceof TcrawlError && error.code === 'TCRAWL_PRIVATE_ADDRESS') throw error;
  }
}

/** The undici dispatcher of one route, with the private-address guard on whatever it connects to. */
function routeDispatcher(route: EgressRoute, opts: HttpAgentOptions): Dispatcher {
  if (route.kind === 'local') return createHttpAgent({ ...opts, localAddress: route.localAddress });
  const refusal = opts.allowPrivate ? null : privateLiteralError(new URL(route.url).hostname);
  if (refusal) return refusingDispatcher(refusal);
  const lookup = opts.allowPrivate ? undefined : guardLookup();
  if (route.url.startsWith('socks5')) return socksDispatcher(route, opts, lookup);
  const connections = opts.connectionsPerOrigin ?? 64;
  const timeouts = { headersTimeout: opts.headersTimeoutMs, bodyTimeout: opts.bodyTimeoutMs };
  return new ProxyAgent({
    uri: route.url,
    token: proxyAuthorization(route),
    // Absolute-form for http:// targets, so a proxy sees (and counts) each request; CONNECT for https://.
    proxyTunnel: false,
    connections,
    ...timeouts,
    proxyTls: { timeout: opts.connectTimeoutMs, ...(lookup ? { lookup } : {}) },
    requestTls: { timeout: opts.connectTimeoutMs },
    // The pools to the proxy (absolute-form) and to each tunnelled origin, with the crawl's timeouts.
    factory: (origin: string | URL, options: object) => new Pool(origin, { connections, ...timeouts, ...options }),
  });
}

/**
 * A SOCKS5 route. undici's agent makes its pool per target from each
 * request's options, not its own, so the crawl's timeouts and connection
 * limit ride on every request it is given.
 */
function socksDispatcher(route: Extract<EgressRoute, { kind: 'proxy' }>, opts: HttpAgentOptions, lookup: ReturnType<typeof guardLookup> | undefined): Dispatcher {
  const url = new URL(route.url);
  // The agent knows socks5: only; socks5h: means the same to it (the proxy always resolves names).
  const proxy = `socks5://${url.host}`;
  const credentials = route.username === undefined ? {} : resolveValues({ username: route.username, password: route.password ?? '' }).values;
  const agent = new Socks5ProxyAgent(proxy, {
    ...credentials,
    connect: buildConnector({ timeout: opts.connectTimeoutMs, ...(lookup ? { lookup } : {}) }),
  });
  const perRequest = { headersTimeout: opts.headersTimeoutMs, bodyTimeout: opts.bodyTimeoutMs, connections: opts.connectionsPerOrigin ?? 64 };
  return new (class extends Dispatcher {
    dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      return agent.dispatch({ ...perRequest, ...options }, handler);
    }
    close(): Promise<void> {
      return agent.close();
    }
    destroy(): Promise<void> {
      return agent.destroy();
    }
  })();
}

/** `Proxy-Authorization: Basic …` (RFC 9110 §11.7.1, RFC 7617) from the route's credentials, read from the environment now. */
function proxyAuthorization(route: Extract<EgressRoute, { kind: 'proxy' }>): string | undefined {
  if (route.username === undefined) return undefined;
  const { values } = resolveValues({ username: route.username, ...(route.password ? { password: route.password } : {}) });
  return `Basic ${Buffer.from(`${values.username}:${values.password ?? ''}`).toString('base64')}`;
}

/** A route that may not be used (a proxy on a private address, allowPrivate off): every request through it fails with the refusal. */
function refusingDispatcher(refusal: Error): Dispatcher {
  return new (class extends Dispatcher {
    dispatch(_options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
      queueMicrotask(() => fail(handler, refusal));
      return true;
    }
    async close(): Promise<void> {}
    async destroy(): Promise<void> {}
  })();
}

/** Ends a request that never reached a route (or a route's dispatcher). */
function fail(handler: Dispatcher.DispatchHandler, error: Error): void {
  const wrapped = new DecoratorHandler(handler) as Required<Dispatcher.DispatchHandler>;
  wrapped.onResponseError(null as unknown as Dispatcher.DispatchController, error);
}

/**
 * Passes a request's events on to its caller, telling the route's health
 * what the request met: a ban status rests the route, so does a failure to
 * connect through it; any other answer is a good one. Errors a route caused
 * that say nothing by themselves (a tunnel refused, a login refused, an
 * address not bound) reach the caller as EgressFailedError.
 */
class EgressObserver implements Dispatcher.DispatchHandler {
  private readonly inner: Required<Dispatcher.DispatchHandler>;

  constructor(
    handler: Dispatcher.DispatchHandler,
    private readonly key: string,
    private readonly opts: EgressDispatcherOptions,
    private readonly health: EgressHealth,
    /** The caller's: an error after it aborted is the caller's doing, not the route's. */
    private readonly signal: AbortSignal | undefined,
  ) {
    this.inner = new DecoratorHandler(handler) as Required<Dispatcher.DispatchHandler>;
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.inner.onRequestStart(controller, { ...(context as object), egress: this.key } satisfies EgressContext);
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, socket: import('node:stream').Duplex): void {
    this.inner.onRequestUpgrade(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, statusMessage?: string): void {
    if (this.opts.banStatuses.includes(statusCode)) this.problem({ kind: 'ban', detail: `HTTP ${statusCode}` });
    // RFC 9110 §15.5.8: the proxy wants credentials it was not given (or refused them).
    else if (statusCode === 407) this.problem({ kind: 'failure', detail: 'HTTP 407 Proxy Authentication Required' });
    else if (statusCode >= 200) this.health.succeeded(this.key);
    this.inner.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.inner.onResponseData(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    this.inner.onResponseEnd(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.inner.onResponseError(controller, this.routeError(error));
  }

  /** The error as the caller gets it, the route rested when it was the route's doing. */
  private routeError(error: Error): Error {
    // Not by name: undici's RequestAbortedError is an AbortError too, and a refused tunnel is one.
    if (this.signal?.aborted) return error;
    // Ours: a refusal (a proxy on a private address), a secret this worker lacks.
    if (error instanceof TcrawlError) return error;
    const cls = classifyError(error);
    if (cls === null) {
      this.problem({ kind: 'failure', detail: describeError(error) });
      return new EgressFailedError(this.key, error);
    }
    if (cls.reason === 'connect' || cls.reason === 'timeout' || cls.reason === 'dns') this.problem({ kind: 'failure', detail: describeError(error) });
    return error;
  }

  private problem(problem: { kind: 'ban' | 'failure'; detail: string }): void {
    // A database that is down leaves the rest in this worker's memory; the URL's outcome is what matters here.
    this.health.problem(this.key, problem, this.opts.restBaseMs).catch(() => undefined);
  }
}

const dispatchers = new Map<string, EgressDispatcher>();

/**
 * The worker's dispatcher for a crawl's settings: the shared agent when no
 * route is configured, else an EgressDispatcher (one per distinct set of
 * egress settings and health, shared like the agents).
 */
export function egressDispatcherFor(settings: CrawlSettings, health: EgressHealth): Dispatcher {
  const egress: EgressSettings = { proxies: settings.proxies, rateGroups: settings.rateGroups.filter((g) => (g.proxies ?? []).length > 0) };
  if (egress.proxies.length === 0 && egress.rateGroups.length === 0) return agentFor(settings);
  const opts: EgressDispatcherOptions = {
    connectTimeoutMs: settings.connectTimeoutMs,
    headersTimeoutMs: settings.headersTimeoutMs,
    bodyTimeoutMs: settings.bodyTimeoutMs,
    allowPrivate: settings.allowPrivate,
    egress,
    banStatuses: settings.banStatuses,
    restBaseMs: settings.proxyRestMs,
  };
  const key = JSON.stringify(opts);
  let dispatcher = dispatchers.get(key);
  if (dispatcher === undefined || dispatcher.health !== health) {
    dispatcher = new EgressDispatcher(opts, health);
    dispatchers.set(key, dispatcher);
  }
  return dispatcher;
}

/** Closes every EgressDispatcher's routes; call on worker shutdown, beside closeAgents. */
export async function closeEgressDispatchers(): Promise<void> {
  const closing = [...dispatchers.values()];
  dispatchers.clear();
  await Promise.all(closing.map((dispatcher) => dispatcher.close()));
}
