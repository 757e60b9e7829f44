import { errors as undiciErrors } from 'undici';
import { TcrawlError } from '../src/errors';

/**
 * Why fetching a page failed: stable codes, stored with the page and matched
 * on by the workflow. Whether a failure is worth retrying travels next to the
 * code (`transient`) rather than being implied by it, because `dns` and
 * `http_<status>` can be either.
 *
 * - `http_<status>`: the final response was neither 2xx nor a followed
 *   redirect (`http_404`, `http_503`, `http_999`). Transient for 408, 429
 *   and 5xx (RFC 9110 §15.5.9, RFC 6585 §4, §15.6), permanent otherwise,
 *   statuses outside the five classes (600–999) included.
 * - `too_large`: the body (declared or counted, before or after
 *   decompression) exceeded `maxBodyBytes`. Permanent.
 * - `redirect_limit`: more than `maxRedirects` hops, or a hop back to a URL
 *   already visited. Permanent.
 * - `redirect_refused`: the caller's `checkHop` turned a redirect target down;
 *   its reason is in `detail`. Permanent.
 * - `bad_redirect`: a redirect without a usable `Location` (missing,
 *   unparsable, or not http(s)). Permanent.
 * - `dns`: the host name did not resolve. Transient for `EAI_AGAIN` (the
 *   resolver could not answer), permanent for `ENOTFOUND` (no such name).
 * - `connect`: the connection was refused, reset or dropped. Transient.
 * - `timeout`: connecting, waiting for headers, or an idle body took too
 *   long (`connectTimeoutMs`, `headersTimeoutMs`, `bodyTimeoutMs`), or the
 *   whole fetch did: every redirect hop, headers and body together past
 *   `fetchTimeoutMs` (a body trickling in a byte at a time). Transient.
 * - `private_address`: the host is, or resolves only to, a loopback,
 *   private, link-local or unspecified address and `allowPrivate` is off,
 *   however spelt (IPv4-mapped IPv6, decimal/octal/hex IPv4, which the URL
 *   parser normalizes) and whatever the name resolved to when checked
 *   earlier: the address is judged when connecting. Permanent.
 * - `tls`: the TLS handshake failed (bad certificate, name mismatch, not TLS
 *   at all). Permanent.
 * - `decode`: the body's `Content-Encoding` is unsupported, stacks more
 *   than three codings, or its compressed data is corrupt. Permanent.
 * - `egress`: the egress route (a proxy, a local address) could not carry
 *   the request: the proxy refused the tunnel or the login, or the address
 *   could not be bound. Transient: the route rests and another carries the
 *   URL's next attempt.
 * - `secret_missing`: a secret the request needs (a proxy's credentials) is
 *   not set on this worker. Permanent until it is set.
 * - `protocol`: the server's response was not valid HTTP/1.1 (parse error
 *   such as a non-numeric status, length mismatch, oversized headers, a
 *   `100 Continue` or protocol switch nobody asked for). Permanent.
 */
export type FailureReason =
  | `http_${number}`
  | 'too_large'
  | 'redirect_limit'
  | 'redirect_refused'
  | 'bad_redirect'
  | 'dns'
  | 'connect'
  | 'timeout'
  | 'private_address'
  | 'tls'
  | 'decode'
  | 'egress'
  | 'secret_missing'
  | 'protocol';

/** A failure reason and whether retrying later may help. */
export interface FailureClass {
  reason: FailureReason;
  transient: boolean;
}

/** The body outgrew `maxBodyBytes`; raised mid-stream so the download stops there. */
export class BodyTooLargeError extends TcrawlError {
  constructor(readonly limitBytes: number) {
    super('TCRAWL_TOO_LARGE', `The response body exceeds the ${limitBytes}-byte limit (maxBodyBytes).`);
  }
}

/** The whole fetch of one URL outran `fetchTimeoutMs`; the abort reason of its requests. */
export class FetchTimeoutError extends TcrawlError {
  constructor(readonly limitMs: number) {
    super(
      'TCRAWL_FETCH_TIMEOUT',
      `The fetch took longer than ${limitMs} ms in total (fetchTimeoutMs), counting every redirect hop, headers and body.`,
    );
  }
}

/**
 * A `Content-Encoding` stacking more codings than tcrawl undoes. Each one is
 * another decompressor to run; servers apply one, rarely two.
 */
export class TooManyEncodingsError extends TcrawlError {
  constructor(
    readonly codings: string[],
    readonly maxCodings: number,
  ) {
    super(
      'TCRAWL_TOO_MANY_ENCODINGS',
      `The response stacks ${codings.length} content codings (${codings.join(', ')}); tcrawl decodes at most ${maxCodings}.`,
    );
  }
}

/** A `Content-Encoding` we did not ask for in `Accept-Encoding` and cannot decode. */
export class UnsupportedEncodingError extends TcrawlError {
  constructor(readonly coding: string) {
    super('TCRAWL_UNSUPPORTED_ENCODING', `The response uses Content-Encoding "${coding}", which tcrawl cannot decode.`);
  }
}

const permanent = (reason: FailureReason): FailureClass => ({ reason, transient: false });
const transient = (reason: FailureReason): FailureClass => ({ reason, transient: true });

/** Exact error codes (a Map, so a code like `constructor` cannot hit Object.prototype); prefixes below cover the open-ended families. */
const BY_CODE = new Map<string, FailureClass>(Object.entries({
  TCRAWL_PRIVATE_ADDRESS: permanent('private_address'),
  TCRAWL_TOO_LARGE: permanent('too_large'),
  TCRAWL_UNSUPPORTED_ENCODING: permanent('decode'),
  TCRAWL_TOO_MANY_ENCODINGS: permanent('decode'),
  TCRAWL_FETCH_TIMEOUT: transient('timeout'),
  TCRAWL_EGRESS_FAILED: transient('egress'),
  TCRAWL_SECRET_MISSING: permanent('secret_missing'),
  ENOTFOUND: permanent('dns'),
  ENODATA: permanent('dns'),
  EAI_FAIL: permanent('dns'),
  EAI_AGAIN: transient('dns'),
  UND_ERR_CONNECT_TIMEOUT: transient('timeout'),
  UND_ERR_HEADERS_TIMEOUT: transient('timeout'),
  UND_ERR_BODY_TIMEOUT: transient('timeout'),
  ETIMEDOUT: transient('timeout'),
  ECONNREFUSED: transient('connect'),
  ECONNRESET: transient('connect'),
  ECONNABORTED: transient('connect'),
  EPIPE: transient('connect'),
  EHOSTUNREACH: transient('connect'),
  EHOSTDOWN: transient('connect'),
  ENETUNREACH: transient('connect'),
  ENETDOWN: transient('connect'),
  // undici: "other side closed" and friends, i.e. the socket went away mid-exchange.
  UND_ERR_SOCKET: transient('connect'),
  UND_ERR_CLOSED: transient('connect'),
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: permanent('protocol'),
  UND_ERR_HEADERS_OVERFLOW: permanent('protocol'),
  UND_ERR_INFO: permanent('protocol'),
  EPROTO: permanent('tls'),
  HOSTNAME_MISMATCH: permanent('tls'),
  DEPTH_ZERO_SELF_SIGNED_CERT: permanent('tls'),
  SELF_SIGNED_CERT_IN_CHAIN: permanent('tls'),
}));

const BY_PREFIX: [prefix: string, cls: FailureClass][] = [
  ['ERR_TLS_', permanent('tls')],
  ['ERR_SSL_', permanent('tls')],
  ['CERT_', permanent('tls')],
  ['UNABLE_TO_', permanent('tls')],
  // zlib reports `Z_DATA_ERROR` and the like, brotli `ERR__ERROR_FORMAT_…`.
  ['Z_', permanent('decode')],
  ['ERR__ERROR_', permanent('decode')],
  // llhttp parse errors (`HPE_INVALID_CONSTANT`, …).
  ['HPE_', permanent('protocol')],
];

/**
 * The failure class of an error thrown while fetching, or null when the error
 * is not a network or content failure (a bug, a cancellation): those are
 * rethrown rather than recorded against the page.
 */
export function classifyError(err: unknown): FailureClass | null {
  if (isProtocolViolation(err)) return permanent('protocol');
  const code = errorCode(err);
  if (code === undefined) return null;
  return BY_CODE.get(code) ?? BY_PREFIX.find(([prefix]) => code.startsWith(prefix))?.[1] ?? null;
}

/**
 * undici errors whose code does not say what happened. Its HTTPParserError
 * has no code at all (undici 7 looks the parser's error number up in llhttp's
 * name → number table, so `HPE_…` is never set). And a SocketError
 * (`UND_ERR_SOCKET`, otherwise a dropped connection, worth retrying) also
 * reports a server that answered `100 Continue` unasked ("bad response":
 * undici cannot read past it, RFC 9110 §15.2 notwithstanding) or switched
 * protocols unasked ("bad upgrade"), which asking again will not change.
 */
function isProtocolViolation(err: unknown): boolean {
  if (err instanceof undiciErrors.HTTPParserError) return true;
  return err instanceof undiciErrors.SocketError && (err.message === 'bad response' || err.message === 'bad upgrade');
}

/**
 * The code of an error, looking through the wrappers Node and undici put
 * around the real cause: `cause`, and the `AggregateError` net raises when
 * every address tried by happy eyeballs failed.
 */
export function errorCode(err: unknown, depth = 0): string | undefined {
  if (typeof err !== 'object' || err === null || depth > 3) return undefined;
  const { code, cause, errors } = err as { code?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && code !== 'ERR_AGGREGATE_ERROR') return code;
  if (Array.isArray(errors) && errors.length > 0) return errorCode(errors[0], depth + 1);
  return errorCode(cause, depth + 1);
}

/** A one-line description of an error for the page record. */
export function describeError(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
}

/**
 * Statuses worth retrying: timeouts, rate limits and server errors (RFC 9110
 * §15.5.9, §15.6; RFC 6585 §4). A status past 599 has no class (§15) and says
 * nothing about trying again: LinkedIn's 999, for one, refuses crawlers.
 */
export function isTransientStatus(status: number): boolean {
  return (status >= 500 && status <= 599) || status === 408 || status === 429;
}

/**
 * Milliseconds to wait according to a `Retry-After` value, or undefined when
 * it is absent or unparsable. RFC 9110 §10.2.3: `Retry-After = HTTP-date /
 * delay-seconds`; a date is relative to now and one in the past means "now".
 */
export function parseRetryAfter(value: string | undefined, nowMs = Date.now()): number | undefined {
  const trimmed = value?.trim();
  if (!trimmed) return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Every HTTP-date form (IMF-fixdate and the obsolete RFC 850 and asctime
  // ones recipients must accept, §5.6.7) starts with a day name; requiring it
  // keeps Date.parse's leniency from reading "1.5" or "soon" as a date.
  if (!/^[A-Za-z]{3}/.test(trimmed)) return undefined;
  const dateMs = Date.parse(trimmed);
  return Number.isNaN(dateMs) ? undefined : Math.max(0, dateMs - nowMs);
}
