import { isIP } from 'node:net';
import { z } from 'zod';
import { hostMatches } from '../workflows/host-schedule';
import { secretSchema, type Secret } from './rules/schema';
import { text } from './spec-values';

/**
 * Egress routes: the ways out a crawl's requests may take — HTTP proxies,
 * and local source addresses of the worker's machine. This module is the
 * pure part: the spec's schema for them, their names (credentials never in
 * one), which pool serves a host, which route of a pool goes next, and the
 * back-off of a route that met a ban or a failure. The undici side is
 * activities/egress-dispatcher.ts, the fleet-wide health activities/egress-health.ts.
 *
 * Routes never add to a host's rate: a request picks its route after it has
 * passed the host's pacers, so however many routes a pool has, the host sees
 * one stream of requests at the crawl's rate.
 */

/** Proxy URL schemes: HTTP proxies (plain or TLS to the proxy), and SOCKS5 (RFC 1928), the proxy resolving names in both spellings. */
const proxySchemes = new Set(['http:', 'https:', 'socks5:', 'socks5h:']);

/** A proxy's URL as the spec may hold it: no credentials (they would be stored with the crawl), nothing past the port. */
const proxyUrl = text.superRefine((raw, ctx) => {
  const problem = proxyUrlProblem(raw);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});

function proxyUrlProblem(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return `"${raw}" is not an absolute URL (e.g. http://proxy.example:3128)`;
  }
  if (url.protocol === 'socks:' || url.protocol === 'socks4:' || url.protocol === 'socks4a:') {
    return 'only SOCKS5 proxies are supported: socks5://host:port (or socks5h://, the same: the proxy resolves names)';
  }
  if (!proxySchemes.has(url.protocol)) return `a proxy URL must be http://, https://, socks5:// or socks5h://, not ${url.protocol}//`;
  if (url.hostname === '') return 'a proxy URL names its host (socks5://host:port)';
  if (url.username !== '' || url.password !== '') {
    return 'credentials in a proxy URL would be stored with the crawl and its history: give them as { url, username, password: { env: NAME } }';
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') return 'a proxy URL has no path, query or fragment (http://host:port)';
  return null;
}

const ipAddress = text.refine((value) => isIP(value) !== 0, 'must be an IPv4 or IPv6 address of this machine (no brackets, no port)');

/** A password is a secret or nothing: a plain one would be stored with the crawl and in its history. */
const passwordSecret = z.strictObject(secretSchema.shape, {
  error: (issue) => (issue.code === 'invalid_type' ? 'must be a secret { env: NAME }: a plain password would be stored with the crawl and in its history' : undefined),
});

const proxyEntry = z
  .strictObject({
    url: proxyUrl.meta({ description: 'The proxy, `http://host:port`, `https://host:port` (TLS to the proxy) or `socks5://host:port` (SOCKS5; port 1080 if none).' }),
    username: z.union([text.min(1), secretSchema]).optional().meta({ description: 'Proxy user name (Basic auth, or SOCKS5 username/password): plain, or a secret `{ env: NAME }`.' }),
    password: passwordSecret.optional().meta({ description: 'Proxy password: always a secret `{ env: NAME }`, read by each worker from its environment.' }),
  })
  .refine((entry) => entry.password === undefined || entry.username !== undefined, { message: 'a proxy password needs a username', path: ['password'] });

const localEntry = z.strictObject({
  localAddress: ipAddress.meta({ description: "A source address of the worker's machine: requests leave from it, without a proxy." }),
});

export const egressEntrySchema = z
  .union([proxyUrl, proxyEntry, localEntry])
  .meta({ description: 'A proxy URL (`http://host:port`, `socks5://host:port`), a proxy with credentials `{ url, username, password: { env } }`, or a local source address `{ localAddress }`.' });

/** A pool of routes: no two with one name. */
export const egressPoolSchema = z.array(egressEntrySchema).superRefine((entries, ctx) => {
  const seen = new Set<string>();
  entries.forEach((entry, index) => {
    const key = egressKey(entry);
    if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `${key} is listed twice`, path: [index] });
    seen.add(key);
  });
});

export type EgressEntry = z.output<typeof egressEntrySchema>;

/** A route as the worker uses it: its name, and how to reach it. */
export type EgressRoute =
  | { key: string; kind: 'proxy'; url: string; username?: string | Secret; password?: Secret }
  | { key: string; kind: 'local'; localAddress: string };

/**
 * A route's name: in status, in the health table, in messages. A proxy's is
 * its scheme and authority (`http://proxy.example:3128`, the origin of an
 * HTTP proxy; `socks5://proxy.example:1080`), which the spec keeps free of
 * credentials; a local address's is `local:<address>`.
 */
export function egressKey(entry: EgressEntry): string {
  if (typeof entry === 'string') return proxyKey(entry);
  if ('localAddress' in entry) return `local:${entry.localAddress}`;
  return proxyKey(entry.url);
}

/** `scheme://host[:port]` (a socks5: URL has no origin in WHATWG terms: it is not a special scheme). */
function proxyKey(raw: string): string {
  const url = new URL(raw);
  return `${url.protocol}//${url.host}`;
}

export function routeOf(entry: EgressEntry): EgressRoute {
  const key = egressKey(entry);
  if (typeof entry === 'string') return { key, kind: 'proxy', url: key };
  if ('localAddress' in entry) return { key, kind: 'local', localAddress: entry.localAddress };
  return { key, kind: 'proxy', url: key, ...(entry.username === undefined ? {} : { username: entry.username }), ...(entry.password === undefined ? {} : { password: entry.password }) };
}

/** What of a spec decides a host's routes. */
export interface EgressSettings {
  proxies: EgressEntry[];
  rateGroups: Array<{ hosts: string[]; proxies?: EgressEntry[] }>;
}

/**
 * The routes of `host` (`hostname[:port]`): those of the first rate group
 * that covers it and has its own, else the crawl's; empty means direct.
 * Group patterns match as in the workflow's rate groups: exact, or
 * `*.example.com` for the name and any subdomain.
 */
export function routesForHost(settings: EgressSettings, host: string): EgressRoute[] {
  const group = settings.rateGroups.find((g) => g.proxies !== undefined && g.proxies.length > 0 && g.hosts.some((pattern) => hostMatches(host, pattern)));
  return (group?.proxies ?? settings.proxies).map(routeOf);
}

/** Every route the spec names (the crawl's and its groups'), once each: what `tcrawl status` shows. */
export function allRoutes(settings: EgressSettings): EgressRoute[] {
  const byKey = new Map<string, EgressRoute>();
  for (const entry of [...settings.proxies, ...settings.rateGroups.flatMap((g) => g.proxies ?? [])]) {
    const route = routeOf(entry);
    if (!byKey.has(route.key)) byKey.set(route.key, route);
  }
  return [...byKey.values()];
}

/** A rest never lasts longer than this, however many in a row. */
export const maxRestMs = 30 * 60_000;

/** The `strikes`-th rest in a row: `baseMs·2^(strikes-1)`, at most `maxRestMs`. */
export function restMs(strikes: number, baseMs: number): number {
  return Math.min(maxRestMs, baseMs * 2 ** Math.max(0, strikes - 1));
}

/** A route's health as every worker shares it. */
export interface RouteHealth {
  /** Rests in a row without a good answer between them: the back-off's exponent. */
  strikes: number;
  /** Epoch ms the current rest ends; null or past: usable. */
  restingUntilMs: number | null;
}

export const healthy: RouteHealth = { strikes: 0, restingUntilMs: null };

export function isResting(health: RouteHealth, nowMs: number): boolean {
  return health.restingUntilMs !== null && health.restingUntilMs > nowMs;
}

/**
 * A route met a ban or a failure: it rests for the next back-off step. A
 * route already resting keeps the rest it has — requests sent through it
 * before the rest began answer after it, and each would otherwise double the
 * rest again for what is one episode.
 */
export function afterProblem(health: RouteHealth, nowMs: number, baseMs: number): RouteHealth {
  if (isResting(health, nowMs)) return health;
  const strikes = health.strikes + 1;
  return { strikes, restingUntilMs: nowMs + restMs(strikes, baseMs) };
}

/** A good answer through a route that is not resting: the next problem starts the back-off over. */
export function afterSuccess(health: RouteHealth, nowMs: number): RouteHealth {
  return isResting(health, nowMs) || health.strikes === 0 ? health : { strikes: 0, restingUntilMs: null };
}

/** A route's answers from one host in one batch. */
export interface RouteAnswers {
  bans: number;
  /** Any other answer (a page, a 404, a redirect). */
  others: number;
}

/**
 * Of a batch's ban answers from one host, those that say "the site refuses
 * this route" rather than "the host wants fewer requests": the bans of the
 * routes that met nothing but bans in the batch while another route of the
 * host got other answers in it. A site that has blocked one proxy's address
 * answers it 403 however slowly it is asked; halving the host's rate for it
 * would slow every route for one that is resting anyway (each time it came
 * back from a rest, for the rest of the crawl). A site pushing back on the
 * host refuses every route, or a route after good answers: those bans count.
 */
export function refusedRouteBans(routes: ReadonlyMap<string, RouteAnswers>): number {
  const answered = [...routes.values()].some((route) => route.others > 0);
  if (!answered) return 0;
  let refused = 0;
  for (const route of routes.values()) if (route.others === 0) refused += route.bans;
  return refused;
}

/**
 * The route a request takes: of those not resting, the one this worker has
 * sent the fewest requests through (the first listed of equals), so a pool
 * shares the load evenly and a route back from a rest gets its turn at once.
 * With every route resting: when the first one is back.
 */
export function pickRoute(routes: ReadonlyArray<{ key: string; health: RouteHealth; sent: number }>, nowMs: number): { key: string } | { waitUntilMs: number } {
  let best: { key: string; sent: number } | null = null;
  for (const route of routes) {
    if (isResting(route.health, nowMs)) continue;
    if (best === null || route.sent < best.sent) best = route;
  }
  if (best !== null) return { key: best.key };
  return { waitUntilMs: Math.min(...routes.map((route) => route.health.restingUntilMs ?? nowMs)) };
}
