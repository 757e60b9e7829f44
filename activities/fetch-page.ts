import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import type { Dispatcher } from 'undici';
import { contentCodings, decodeBody, isHtmlType } from '../src/decode';
import { canonicalizeUrl } from '../src/url';
import {
  BodyTooLargeError,
  FetchTimeoutError,
  TooManyEncodingsError,
  UnsupportedEncodingError,
  classifyError,
  describeError,
  isTransientStatus,
  parseRetryAfter,
  type FailureReason,
} from './fetch-errors';
import type { CrawlSettings } from '../src/crawl-types';
import type { EgressContext } from './egress-dispatcher';
import { egressDispatcherFor } from './egress-dispatcher';
import { EgressHealth } from './egress-health';
import { privateLiteralError } from './http-agent';
import type { RequestSent } from './request-gate';
import { watchWireStart } from './wire-starts';

export type { FailureReason } from './fetch-errors';

/** Where a caller paces a request: resolves when it may be sent, to what is told when it was (see {@link RequestSent}). */
export type BeforeRequest = (url: string) => Promise<void | RequestSent>;

/**
 * One GET of one page, redirects followed by hand, body size-limited and
 * decoded. Every expected failure (HTTP status, network, limits) comes back as
 * a `failed` outcome with a stable reason; only bugs and cancellation throw.
 */

export interface FetchOptions {
  /** The worker's pooled agent, from `agentFor`. */
  dispatcher: Dispatcher;
  /** Sent as `User-Agent` on every hop. */
  userAgent: string;
  /** Largest body accepted, in bytes, counted both as received and after decompression. */
  maxBodyBytes: number;
  /** Redirect hops followed before giving up with `redirect_limit`. */
  maxRedirects: number;
  /** Cap on an honoured `Retry-After`, in milliseconds. */
  retryMaxMs: number;
  /** Off: an IP-literal hop to a non-public address fails `private_address` before dispatch. Names are checked by the agent when resolved. */
  allowPrivate: boolean;
  /**
   * Asked about every redirect target before it is requested (scope, robots:
   * the caller's rules). Returns a refusal reason code, or null to follow it.
   */
  checkHop?: (url: string) => Promise<string | null>;
  /**
   * Total milliseconds for this URL: every redirect hop, headers and body,
   * counted while a request is in flight (waiting in `beforeRequest` or
   * `checkHop` is the caller's time, not the server's). The agent's timeouts
   * are idle ones, which a body trickling in a byte at a time never trips;
   * past this the fetch fails `timeout`.
   */
  fetchTimeoutMs: number;
  /** Cancels the fetch; an aborted fetch throws instead of returning an outcome. */
  signal?: AbortSignal;
  /**
   * Awaited right before each request is sent, redirect hops included: where
   * the caller paces request starts. What it resolves to, if anything, is
   * told when the request's headers are written (or null: never sent).
   */
  beforeRequest?: BeforeRequest;
  /**
   * Which 2xx bodies to read, by Content-Type; any other is skipped
   * `unsupported_type` without downloading it. @default HTML only
   */
  acceptsType?: (contentType: string) => boolean;
  /** @default 'GET' */
  method?: string;
  /** Sent on the first hop only: a redirect is a new request (the caller queues it). */
  body?: string;
  /** Headers beyond User-Agent, Accept and Accept-Encoding, which they override (names case-insensitive). */
  headers?: Record<string, string>;
  /**
   * Query parameters added to each request as it is sent and nowhere else:
   * not to `finalUrl`, not to messages — they carry secrets (API keys).
   */
  secretQuery?: Record<string, string>;
  /**
   * Also gunzip a body that is itself a gzip file (it starts with the magic
   * bytes 1f 8b, RFC 1952 §2.3.1, once any Content-Encoding is undone): a
   * `sitemap.xml.gz` is served as `application/gzip` without Content-Encoding.
   * The decompressed size counts against `maxBodyBytes`. @default false
   */
  unwrapGzip?: boolean;
}

export type FetchOutcome =
  /**
   * `body`: decoded to text by its charset; `bytes`: as received, once any Content-Encoding is undone;
   * `egress`: the route it came through, when the dispatcher has routes (a ban page found in it rests that route).
   */
  | { kind: 'body'; finalUrl: string; status: number; contentType: string; body: string; bytes: Buffer; redirects: string[]; egress?: string }
  | { kind: 'skipped'; reason: 'unsupported_type'; finalUrl: string; status: number; contentType: string; redirects: string[] }
  | {
      kind: 'failed';
      reason: FailureReason;
      /** Whether trying again later may succeed. */
      transient: boolean;
      /** The last response's status, when there was one. */
      status?: number;
      /** The last URL requested or attempted (a redirect target refused at connect time included). */
      finalUrl: string;
      /** From `Retry-After` on a 429 or 503, capped at `retryMaxMs`. */
      retryAfterMs?: number;
      /** For `redirect_refused`: the reason `checkHop` gave. */
      detail?: string;
      /** For redirect failures: the resolved target that was not followed. */
      location?: string;
      message: string;
      redirects: string[];
      /** The route the failing response came through (a ban through one route may be that route's alone). */
      egress?: string;
    };

type FailedOutcome = Extract<FetchOutcome, { kind: 'failed' }>;
type Response = Dispatcher.ResponseData;
/** A redirect response, its body already drained: what `followRedirect` needs of it. */
interface Redirect {
  kind: 'redirect';
  status: number;
  location: string | undefined;
}

/** Where a fetch stands: the URL about to be (or last) requested and the hops so far. */
interface Trail {
  url: string;
  /** Redirect targets followed, in order; the last one is `url`. */
  redirects: string[];
  seen: Set<string>;
  /** What is left of `fetchTimeoutMs`, in milliseconds. */
  leftMs: number;
}

const ACCEPT = 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.5';
const ACCEPT_ENCODING = 'gzip, deflate, br';
/** RFC 9110 §15.4: the redirects that carry a Location to follow (300, 304, 305 do not). */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/**
 * A body we do not want is read to the end when it is at most this long, so
 * its connection can go back to the pool; longer ones are cut off, which costs
 * the connection but not the download.
 */
const DISCARD_LIMIT_BYTES = 64 * 1024;
/**
 * Content codings undone per response. Each is another decompressor whose
 * output is capped at `maxBodyBytes`; servers apply one, rarely two, and a
 * longer stack is an attempt to multiply work, not a page.
 */
const MAX_CONTENT_CODINGS = 3;

/** Routes' health for callers that were given none: this process's own. */
const localEgressHealth = new EgressHealth(null);

/**
 * The fetch options a crawl's settings decide, with the worker's dispatcher
 * for them: its pooled agent, composed with the crawl's egress routes when
 * it has any (their health shared through `egress`, when given).
 */
export function fetchOptionsFor(
  settings: CrawlSettings,
  egress: EgressHealth = localEgressHealth,
): Pick<FetchOptions, 'dispatcher' | 'userAgent' | 'maxBodyBytes' | 'maxRedirects' | 'retryMaxMs' | 'allowPrivate' | 'fetchTimeoutMs'> {
  const { userAgent, maxBodyBytes, maxRedirects, retryMaxMs, allowPrivate, fetchTimeoutMs } = settings;
  return { dispatcher: egressDispatcherFor(settings, egress), userAgent, maxBodyBytes, maxRedirects, retryMaxMs, allowPrivate, fetchTimeoutMs };
}

export async function fetchPage(url: string, opts: FetchOptions): Promise<FetchOutcome> {
  const trail: Trail = { url, redirects: [], seen: new Set([url, canonicalizeUrl(url) ?? url]), leftMs: opts.fetchTimeoutMs };
  for (;;) {
    opts.signal?.throwIfAborted();
    // The agent refuses these too; checking here keeps the refusal independent
    // of which dispatcher the caller passed and avoids a pointless dispatch.
    const refusal = opts.allowPrivate ? null : privateLiteralError(new URL(trail.url).hostname);
    if (refusal) return errorOutcome(refusal, trail, opts);
    const sent = (await opts.beforeRequest?.(trail.url)) ?? undefined;
    let result: Redirect | FetchOutcome;
    try {
      result = await withDeadline(trail, opts, (signal) => exchange(trail, opts, signal, sent));
    } finally {
      // Not sent after all (a deadline, a refusal), or told already: this one is a no-op then.
      sent?.(null);
    }
    if (result.kind !== 'redirect') return result;
    const refused = await followRedirect(result, trail, opts);
    if (refused) return refused;
  }
}

/**
 * Runs one request of the URL on what is left of `fetchTimeoutMs`. The signal
 * `work` gets aborts with FetchTimeoutError when that runs out, or with the
 * caller's reason when the caller cancels (which `errorOutcome` rethrows).
 * `work` must be done with the response body when it returns: undici ties
 * the signal to the body too, which is how a trickling body is cut off.
 */
async function withDeadline<T>(trail: Trail, opts: FetchOptions, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  opts.signal?.throwIfAborted();
  const deadline = new AbortController();
  const cancel = (): void => deadline.abort(opts.signal?.reason);
  opts.signal?.addEventListener('abort', cancel, { once: true });
  const timer = setTimeout(() => deadline.abort(new FetchTimeoutError(opts.fetchTimeoutMs)), Math.max(0, trail.leftMs));
  const startedMs = performance.now();
  try {
    return await work(deadline.signal);
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', cancel);
    trail.leftMs -= performance.now() - startedMs;
  }
}

/**
 * One GET of `trail.url`, answered: a redirect (body drained so its
 * connection is reused for the next hop) or the URL's outcome. Network
 * failures come back as outcomes.
 */
async function exchange(trail: Trail, opts: FetchOptions, signal: AbortSignal, sent?: RequestSent): Promise<Redirect | FetchOutcome> {
  const target = new URL(trail.url);
  for (const [name, value] of Object.entries(opts.secretQuery ?? {})) target.searchParams.set(name, value);
  const firstHop = trail.redirects.length === 0;
  const method = firstHop ? (opts.method ?? 'GET') : 'GET';
  const path = target.pathname + target.search;
  const stopWatching = sent && watchWireStart(target.origin, method, path, sent);
  let response: Response;
  try {
    response = await opts.dispatcher.request({ origin: target.origin, path, method, headers: requestHeaders(opts), body: firstHop ? opts.body : undefined, signal });
  } catch (err) {
    return errorOutcome(err, trail, opts);
  } finally {
    stopWatching?.();
  }
  const status = response.statusCode;
  if (!REDIRECT_STATUSES.has(status)) {
    const outcome = await settle(response, trail, opts);
    const egress = (response.context as EgressContext | undefined)?.egress;
    return outcome.kind !== 'skipped' && egress !== undefined ? { ...outcome, egress } : outcome;
  }
  await discard(response.body);
  // A deadline that ran out while the redirect body drained ends the fetch here, not on the next hop.
  if (signal.aborted) return errorOutcome(signal.reason, trail, opts, status);
  return { kind: 'redirect', status, location: headerValue(response.headers, 'location') };
}

function requestHeaders(opts: FetchOptions): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': opts.userAgent, accept: ACCEPT, 'accept-encoding': ACCEPT_ENCODING };
  for (const [name, value] of Object.entries(opts.headers ?? {})) headers[name.toLowerCase()] = value;
  return headers;
}

/** Moves `trail` on to the redirect's Location, or returns why not. */
async function followRedirect({ status, location }: Redirect, trail: Trail, opts: FetchOptions): Promise<FailedOutcome | null> {
  // RFC 9110 §10.2.2: a relative Location is resolved against the request URL.
  const next = location === undefined ? null : canonicalizeUrl(location, trail.url);
  if (next === null) {
    return failed(trail, 'bad_redirect', false, `HTTP ${status} without a usable Location (${location ?? 'missing'})`, { status });
  }
  if (trail.seen.has(next)) {
    return failed(trail, 'redirect_limit', false, `Redirect loop: ${next} was already visited`, { status, location: next });
  }
  if (trail.redirects.length >= opts.maxRedirects) {
    return failed(trail, 'redirect_limit', false, `More than ${opts.maxRedirects} redirects`, { status, location: next });
  }
  const refused = (await opts.checkHop?.(next)) ?? null;
  if (refused !== null) {
    return failed(trail, 'redirect_refused', false, `Redirect to ${next} refused: ${refused}`, { status, location: next, detail: refused });
  }
  trail.redirects.push(next);
  trail.seen.add(next);
  trail.url = next;
  // undici hands a keep-alive socket back one event-loop turn after its
  // response ends (client-h1 onMessageComplete, to catch servers that close
  // it anyway); a hop dispatched sooner would open a second connection.
  await new Promise(setImmediate);
  return null;
}

/** The outcome of a final (non-redirect) response. */
async function settle(response: Response, trail: Trail, opts: FetchOptions): Promise<FetchOutcome> {
  const status = response.statusCode;
  if (status < 200 || status > 299) {
    await discard(response.body);
    return httpFailure(response, trail, opts);
  }
  const contentType = headerValue(response.headers, 'content-type') ?? '';
  if (!(opts.acceptsType ?? isHtmlType)(contentType)) {
    await discard(response.body);
    return { kind: 'skipped', reason: 'unsupported_type', finalUrl: trail.url, status, contentType, redirects: trail.redirects };
  }
  return readBody(response, contentType, trail, opts);
}

function httpFailure(response: Response, trail: Trail, opts: FetchOptions): FailedOutcome {
  const status = response.statusCode;
  const transient = isTransientStatus(status);
  const message = `HTTP ${status}${response.statusText ? ` ${response.statusText}` : ''}`;
  // RFC 9110 §10.2.3 (503) and RFC 6585 §4 (429): the server says when to come back.
  const retryAfter =
    status === 429 || status === 503 ? parseRetryAfter(headerValue(response.headers, 'retry-after')) : undefined;
  const retryAfterMs = retryAfter === undefined ? undefined : Math.min(retryAfter, opts.retryMaxMs);
  return failed(trail, `http_${status}`, transient, message, { status, retryAfterMs });
}

async function readBody(response: Response, contentType: string, trail: Trail, opts: FetchOptions): Promise<FetchOutcome> {
  const status = response.statusCode;
  // Content-Length counts the encoded bytes (RFC 9110 §8.6); too many of
  // those is reason enough, the decoded count is enforced while reading.
  const declared = Number(headerValue(response.headers, 'content-length'));
  if (declared > opts.maxBodyBytes) {
    abandon(response.body);
    return errorOutcome(new BodyTooLargeError(opts.maxBodyBytes), trail, opts, status);
  }
  try {
    let bytes = await decodedBytes(response.body, response.headers['content-encoding'], opts.maxBodyBytes);
    if (opts.unwrapGzip && isGzip(bytes)) bytes = await gunzipFile(bytes, opts.maxBodyBytes);
    return { kind: 'body', finalUrl: trail.url, status, contentType, body: decodeBody(bytes, contentType), bytes, redirects: trail.redirects };
  } catch (err) {
    return errorOutcome(err, trail, opts, status);
  }
}

/**
 * The body, decompressed, failing with BodyTooLargeError the moment the byte
 * count received, or coming out of any decoding stage, passes `limit`: a
 * decoded count stops a zip bomb, the received one a stream of padding that
 * decodes to nothing, and the ones in between a stacked coding whose inner
 * layer is such padding. Any failure destroys the body, which closes its
 * connection.
 */
async function decodedBytes(body: Readable, contentEncoding: string | string[] | undefined, limit: number): Promise<Buffer> {
  let decoders: Transform[];
  try {
    decoders = decodersFor(contentEncoding);
  } catch (err) {
    abandon(body);
    throw err;
  }
  if (decoders.length === 0) return readLimited(body, limit);
  return collect(body, [byteLimit(limit), ...decoders.flatMap((decoder) => [decoder, byteLimit(limit)])]);
}

/**
 * A body without content codings, read straight to its end. Most pages come
 * so, and a stream pipeline per page cost more than the read: its stages,
 * and the AbortController it aborts when done (a DOMException, stack and
 * all). Past `limit` the body is destroyed, which closes its connection.
 */
async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let seen = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    seen += chunk.length;
    if (seen > limit) {
      abandon(body);
      throw new BodyTooLargeError(limit);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, seen);
}

/** A gzip file as a body (see `unwrapGzip`), decompressed under the same decoded-size limit as a Content-Encoding. */
function gunzipFile(bytes: Buffer, limit: number): Promise<Buffer> {
  return collect(Readable.from([bytes]), [decoderFor('gzip'), byteLimit(limit)]);
}

/** RFC 1952 §2.3.1: every gzip member starts with ID1 = 0x1f, ID2 = 0x8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

async function collect(source: Readable, stages: Transform[]): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  await pipeline([source, ...stages, sink]);
  return Buffer.concat(chunks);
}

function byteLimit(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      callback(seen > limit ? new BodyTooLargeError(limit) : null, chunk);
    },
  });
}

/**
 * Decoders for a Content-Encoding, in decoding order: codings are listed in
 * the order they were applied (RFC 9110 §8.4), so they are undone in reverse.
 * Lenient flushing, as browsers and undici's fetch do, keeps a truncated but
 * otherwise valid stream from failing as corrupt.
 */
function decodersFor(contentEncoding: string | string[] | undefined): Transform[] {
  const codings = contentCodings(contentEncoding);
  if (codings.length > MAX_CONTENT_CODINGS) throw new TooManyEncodingsError(codings, MAX_CONTENT_CODINGS);
  return codings.reverse().map(decoderFor);
}

function decoderFor(coding: string): Transform {
  const lenient = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  switch (coding) {
    case 'gzip':
    case 'x-gzip': // RFC 9110 §8.4.1.3
      return zlib.createGunzip(lenient);
    case 'deflate': // RFC 9110 §8.4.1.2: the zlib format, not raw deflate
      return zlib.createInflate(lenient);
    case 'br':
      return zlib.createBrotliDecompress({
        flush: zlib.constants.BROTLI_OPERATION_FLUSH,
        finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
      });
    default:
      throw new UnsupportedEncodingError(coding);
  }
}

function headerValue(headers: Response['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Drops a body we do not need: read to the end if short (connection reused),
 * destroyed otherwise. Never throws; a failing body is a closed connection.
 */
async function discard(body: Response['body']): Promise<void> {
  await body.dump({ limit: DISCARD_LIMIT_BYTES }).catch(() => undefined);
}

/**
 * Stops a body mid-download, closing its connection. undici's body emits
 * `RequestAbortedError` when destroyed without an error, which would be an
 * uncaught exception without a listener.
 */
function abandon(body: Readable): void {
  body.on('error', () => undefined).destroy();
}

/** An outcome for a thrown error; rethrows cancellation and anything unexpected. */
function errorOutcome(err: unknown, trail: Trail, opts: FetchOptions, status?: number): FailedOutcome {
  if (opts.signal?.aborted) throw err;
  const cls = classifyError(err);
  if (cls === null) throw err;
  return failed(trail, cls.reason, cls.transient, describeError(err), { status });
}

function failed(
  trail: Trail,
  reason: FailureReason,
  transient: boolean,
  message: string,
  extra: Pick<FailedOutcome, 'status' | 'retryAfterMs' | 'detail' | 'location'> = {},
): FailedOutcome {
  // Absent rather than undefined: outcomes are compared, logged and serialized.
  const present = Object.fromEntries(Object.entries(extra).filter(([, value]) => value !== undefined));
  return { kind: 'failed', reason, transient, finalUrl: trail.url, message, redirects: trail.redirects, ...present };
}
