import robotsParser from 'robots-parser';
import { TcrawlError } from './errors';
import { canonicalizeUrl } from './url';

/**
 * robots.txt (RFC 9309) on top of the `robots-parser` package, which already
 * does what the RFC asks of matching:
 * - §2.2.1: groups are chosen by case-insensitive product token, falling back
 *   to `*`; several groups naming the same token are merged.
 * - §2.2.2: the longest (most octets) matching rule wins, Allow wins a tie,
 *   and an empty `Disallow:` disallows nothing. Paths match case-sensitively.
 * - §2.2.3: `*` matches any run of characters, a final `$` anchors the end.
 * (A UTF-8 BOM is harmless: its `String#trim` strips U+FEFF.)
 * What it does not do is fixed here: the size cap (§2.5), the implicit
 * allow of /robots.txt (§2.2.2), percent-encoded unreserved characters
 * (§2.2.2), the product token (it only strips a `/version`, so a UA such as
 * `tcrawl (+https://…)` would match no group), and resolving sitemap URLs.
 */

/** What a site's robots.txt says about one crawler. */
export interface RobotsPolicy {
  /**
   * Whether the crawler may fetch `url`. Ask only about URLs of the origin
   * (scheme, host, port) the robots.txt came from (RFC 9309 §2.3 scopes a
   * robots.txt to its origin); any other URL throws
   * `TCRAWL_ROBOTS_WRONG_ORIGIN`, since silently allowing or refusing it
   * would hide a bug in the caller.
   */
  isAllowed(url: string): boolean;
  /** `Crawl-delay` of the matching group in seconds (not in RFC 9309, but widely used), if any. */
  crawlDelaySecs: number | undefined;
  /** Absolute http(s) URLs from `Sitemap:` lines, in file order, duplicates removed. */
  sitemaps: string[];
}

/** RFC 9309 §2.5: crawlers must parse at least 500 KiB; we parse exactly that much. */
export const ROBOTS_MAX_BYTES = 500 * 1024;

/** The policy when there is no usable robots.txt: RFC 9309 §2.3.1.3 lets a crawler access anything after a 4xx. */
export const allowAll: RobotsPolicy = Object.freeze({
  isAllowed: () => true,
  crawlDelaySecs: undefined,
  sitemaps: [],
});

/** The policy when robots.txt is unreachable or answers 5xx: RFC 9309 §2.3.1.4 says assume complete disallow. */
export const disallowAll: RobotsPolicy = Object.freeze({
  isAllowed: () => false,
  crawlDelaySecs: undefined,
  sitemaps: [],
});

/** `https://example.com:8443/robots.txt` for any URL on that origin (RFC 9309 §2.3). */
export function robotsUrlFor(url: string): string {
  return `${new URL(url).origin}/robots.txt`;
}

/**
 * Parses a robots.txt body for the crawler whose User-Agent header is
 * `userAgent`. Groups are matched on its product token (RFC 9309 §2.2.1), the
 * part before the first `/` or space: `tcrawl/0.1 (+https://…)` → `tcrawl`.
 * @param robotsUrl the URL the body was fetched from; it fixes the origin the rules apply to.
 * @param body the response body; only its first {@link ROBOTS_MAX_BYTES} bytes are read.
 */
export function parseRobots(robotsUrl: string, body: string, userAgent: string): RobotsPolicy {
  const robots = robotsParser(robotsUrl, decodeUnreserved(truncateToCap(body)));
  const token = productToken(userAgent);
  const origin = new URL(robotsUrl).origin;
  return {
    isAllowed(url: string): boolean {
      const parsed = new URL(url);
      if (parsed.origin !== origin) throw wrongOrigin(url, robotsUrl);
      // §2.2.2: "The /robots.txt URI is implicitly allowed."
      if (parsed.pathname === '/robots.txt') return true;
      // undefined only comes back for another origin, ruled out above.
      return robots.isAllowed(decodeUnreserved(url), token) !== false;
    },
    crawlDelaySecs: validDelay(robots.getCrawlDelay(token)),
    sitemaps: resolveSitemaps(robots.getSitemaps(), robotsUrl),
  };
}

/** The product token of a User-Agent header, e.g. `tcrawl` for `tcrawl/0.1 (+https://…)`. */
export function productToken(userAgent: string): string {
  return userAgent.trim().split(/[/\s]/, 1)[0] ?? '';
}

/**
 * Cuts the body to {@link ROBOTS_MAX_BYTES} of UTF-8 and then back to the last
 * complete line: a rule cut in half (`Allow: /a` from `Allow: /admin-help`)
 * could allow far more than the site meant.
 */
function truncateToCap(body: string): string {
  const bytes = Buffer.from(body, 'utf8');
  if (bytes.length <= ROBOTS_MAX_BYTES) return body;
  const head = bytes.subarray(0, ROBOTS_MAX_BYTES).toString('utf8');
  const lastNewline = Math.max(head.lastIndexOf('\n'), head.lastIndexOf('\r'));
  return lastNewline === -1 ? '' : head.slice(0, lastNewline);
}

/**
 * RFC 9309 §2.2.2: a percent-encoded unreserved character (RFC 3986 §2.3:
 * letters, digits, `-._~`) must be decoded before comparison, so that
 * `Disallow: /~joe` covers `/%7Ejoe` and the other way round. robots-parser
 * compares the encoded forms, so both sides are decoded here; reserved
 * characters such as `%2F` stay encoded, as the RFC requires.
 */
function decodeUnreserved(text: string): string {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(char) ? char : escape;
  });
}

/** robots-parser turns an empty `Crawl-delay:` into 0 and keeps negatives and Infinity. */
function validDelay(delay: number | undefined): number | undefined {
  return delay !== undefined && Number.isFinite(delay) && delay > 0 ? delay : undefined;
}

/** Sitemap lines may be relative or junk; robots-parser hands them back raw. */
function resolveSitemaps(raw: string[], robotsUrl: string): string[] {
  const urls = raw.map((value) => canonicalizeUrl(value, robotsUrl)).filter((url) => url !== null);
  return [...new Set(urls)];
}

function wrongOrigin(url: string, robotsUrl: string): TcrawlError {
  return new TcrawlError(
    'TCRAWL_ROBOTS_WRONG_ORIGIN',
    `robots.txt at ${robotsUrl} was asked about ${url}, which is on another origin; fetch ${robotsUrlFor(url)} for it`,
  );
}
