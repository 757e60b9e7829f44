import { InvalidInputError } from './errors';

/**
 * URL canonicalization: one spelling per page, so the frontier de-duplicates
 * `HTTP://Example.com:80/a/../b#top` and `/b` (on that host) into one entry.
 *
 * The WHATWG URL parser already lower-cases scheme and host, punycodes IDN
 * hosts, compresses IPv6 addresses, drops the scheme's default port, resolves
 * dot segments (`%2e` included) and turns an empty path into `/` for http(s).
 * What it keeps and we change is listed below.
 */

const HTTP_SCHEMES = new Set(['http:', 'https:']);

/**
 * Longer URLs are dropped as links and refused as seeds. A URL is part of the
 * primary key of `frontier` and `pages`, and Postgres caps a btree entry at
 * 2,704 bytes: one longer link failed the insert, and with it the whole batch
 * that found it. 2,048 is the sitemaps protocol's limit and leaves room for
 * the crawl id (at most 128 characters). The canonical form is ASCII, so
 * characters are bytes.
 */
export const MAX_URL_LENGTH = 2048;

// RFC 3986 §2.3: escaping these never changes what a URL means.
const UNRESERVED = /^[A-Za-z0-9._~-]$/;
const HEX = /^[0-9A-Fa-f]$/;

/**
 * The canonical form of `raw` resolved against `base`, or null when it is not
 * a parsable http(s) URL (mailto:, javascript:, data:, tel:, ftp:, garbage) or
 * is longer than MAX_URL_LENGTH.
 * Percent-escapes in the path are normalized (see normalizePathEscapes). The
 * query string is kept as the parser left it (which only escapes characters
 * that may not appear raw): reordering parameters or decoding escapes can
 * change what a server returns.
 */
export function canonicalizeUrl(raw: string, base?: string): string | null {
  // No trim(): the parser strips surrounding ASCII whitespace and controls itself, as a
  // browser does with an href; trim() would also strip U+00A0 and U+FEFF, which it escapes.
  const url = parseUrl(raw, base);
  if (url === null || !HTTP_SCHEMES.has(url.protocol)) return null;
  // Each setter re-serializes the URL: only what needs changing is set (a link rarely has any of these).
  // The fragment never reaches the server: `/a#x` and `/a#y` are one page.
  if (url.hash !== '' || url.href.endsWith('#')) url.hash = '';
  // Credentials in a link must not be stored in the database or sent on.
  if (url.username !== '') url.username = '';
  if (url.password !== '') url.password = '';
  if (url.pathname.includes('%')) url.pathname = normalizePathEscapes(url.pathname);
  const { href } = url;
  return href.length <= MAX_URL_LENGTH ? href : null;
}

/**
 * RFC 3986 §6.2.2.1–2: escapes upper-cased and escaped unreserved characters
 * decoded, so `/%7euser`, `/%7Euser` and `/~user` are one page. An escape
 * right after a stray `%` (or `%` and one hex digit) is only upper-cased:
 * decoding the `%37` of `/%%37E` would create a new escape, `%7E`, and the
 * result would change again when canonicalized a second time.
 */
function normalizePathEscapes(path: string): string {
  return path.replace(/%([0-9A-Fa-f]{2})/g, (escape: string, hex: string, offset: number) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    const afterStrayPercent = path[offset - 1] === '%' || (path[offset - 2] === '%' && HEX.test(path[offset - 1] ?? ''));
    return UNRESERVED.test(char) && !afterStrayPercent ? char : escape.toUpperCase();
  });
}

/**
 * The canonical form of a seed URL given by a user. Hosts are what the WHATWG
 * parser accepts, as in a browser: `exa mple.com` is refused, `-x-.com` and
 * `a_b.example` are left to DNS.
 * @throws InvalidInputError (`TCRAWL_INVALID_URL`) naming the value and what is wrong with it.
 */
export function parseSeedUrl(raw: string): string {
  const trimmed = raw.trim();
  if (trimmed === '') throw invalidUrl('a seed URL is empty');
  if (trimmed.startsWith('//')) throw invalidUrl(`"${raw}" has no scheme (did you mean https:${trimmed}?)`);
  if (/^(?:\.{1,2}(?:\/|$)|[/?#])/.test(trimmed)) throw invalidUrl(`"${raw}" is a relative URL: a seed must be absolute, like https://example.com/path`);
  if (looksSchemeless(trimmed)) {
    throw invalidUrl(`"${raw}" is not an absolute URL (did you mean https://${trimmed}?)`);
  }
  const url = parseUrl(trimmed);
  if (url === null) throw invalidUrl(`"${raw}" is not a valid URL`);
  if (!HTTP_SCHEMES.has(url.protocol)) throw invalidUrl(`"${raw}" is not an http(s) URL`);
  // Links lose their credentials silently; a seed is the user's own input, and a spec
  // (stored with the crawl) must never hold a secret, so say so instead.
  if (url.username !== '' || url.password !== '') {
    // The message must not repeat the secret either.
    url.username = '';
    url.password = '';
    throw invalidUrl(`"${url.href}" was given with credentials (user:password@), which tcrawl never sends and a spec must not hold: remove them`);
  }
  const canonical = canonicalizeUrl(trimmed);
  if (canonical === null) throw invalidUrl(`"${trimmed.slice(0, 60)}…" is longer than ${MAX_URL_LENGTH} characters (canonical form)`);
  return canonical;
}

/**
 * The host of a URL, with its port when it is not the default one
 * (`example.com`, `example.com:8080`, `[::1]:3000`): tcrawl's per-host key
 * for rate limits, concurrency and robots.txt.
 * @throws InvalidInputError (`TCRAWL_INVALID_URL`) if `url` does not parse.
 */
export function hostOf(url: string): string {
  const parsed = parseUrl(url);
  if (parsed === null) throw invalidUrl(`"${url}" is not a valid URL`);
  return parsed.host;
}

function parseUrl(raw: string, base?: string): URL | null {
  try {
    return new URL(raw, base);
  } catch {
    return null;
  }
}

/**
 * `example.com`, `example.com/path` and `localhost:8080` have no `scheme://`.
 * The last one even parses, as scheme `localhost:`, hence the port check.
 */
function looksSchemeless(value: string): boolean {
  const hasScheme = /^[a-z][a-z0-9+.-]*:/i.test(value);
  const hostAndPort = /^[^/:?#\s]+:\d+(?:[/?#]|$)/.test(value);
  return !hasScheme || hostAndPort;
}

function invalidUrl(message: string): InvalidInputError {
  return new InvalidInputError(message, 'TCRAWL_INVALID_URL');
}
