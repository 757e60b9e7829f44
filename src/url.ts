import { InvalidInputError } from './errors';

/**
 * URL canonicalization: one spelling per page, so the frontier de-duplicates
 * `HTTP://Example.com:80/a/../b#top` and `/b` (on that host) into one entry.
 *
 * The WHATWG URL parser already lower-cases scheme and host, punycodes IDN
 * hosts, drops the scheme's default port, resolves dot segments and turns an
 * empty path into `/` for http(s). What it keeps and we drop is listed below.
 */

const HTTP_SCHEMES = new Set(['http:', 'https:']);

/**
 * The canonical form of `raw` resolved against `base`, or null when it is not
 * a parsable http(s) URL (mailto:, javascript:, data:, tel:, ftp:, garbage).
 * The query string is kept byte for byte: reordering parameters can change
 * what a server returns.
 */
export function canonicalizeUrl(raw: string, base?: string): string | null {
  const url = parseUrl(raw.trim(), base);
  if (url === null || !HTTP_SCHEMES.has(url.protocol)) return null;
  // The fragment never reaches the server: `/a#x` and `/a#y` are one page.
  url.hash = '';
  // Credentials in a link must not be stored in the database or sent on.
  url.username = '';
  url.password = '';
  return url.href;
}

/**
 * The canonical form of a seed URL given by a user.
 * @throws InvalidInputError (`TCRAWL_INVALID_URL`) naming the value and what is wrong with it.
 */
export function parseSeedUrl(raw: string): string {
  const trimmed = raw.trim();
  if (looksSchemeless(trimmed)) {
    throw invalidUrl(`"${raw}" is not an absolute URL (did you mean https://${trimmed}?)`);
  }
  const url = parseUrl(trimmed);
  if (url === null) throw invalidUrl(`"${raw}" is not a valid URL`);
  if (!HTTP_SCHEMES.has(url.protocol)) throw invalidUrl(`"${raw}" is not an http(s) URL`);
  return canonicalizeUrl(trimmed) as string;
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
  if (value === '' || value.startsWith('/')) return false;
  const hasScheme = /^[a-z][a-z0-9+.-]*:/i.test(value);
  const hostAndPort = /^[^/:?#\s]+:\d+(?:[/?#]|$)/.test(value);
  return !hasScheme || hostAndPort;
}

function invalidUrl(message: string): InvalidInputError {
  return new InvalidInputError(message, 'TCRAWL_INVALID_URL');
}
