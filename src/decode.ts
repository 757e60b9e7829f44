import { TextDecoder } from 'node:util';
import { ResultType, Sniffer } from 'encoding-sniffer/sniffer';
import { decode } from 'whatwg-encoding';
import MIMEType from 'whatwg-mimetype';

/**
 * From a response's headers and bytes to the text a browser would see: its
 * media type, its content codings, and its character encoding. Pure, so each
 * rule is unit-tested without a server; fetching lives in activities/.
 */

const HTML_TYPES = new Set(['text/html', 'application/xhtml+xml']);

/**
 * The essence of a Content-Type (`text/html` from `Text/HTML; charset=utf-8`),
 * or null when it is missing or unparsable (MIME Sniffing §4.4, "parse a MIME
 * type": type and subtype lower-cased, parameters after `;`).
 */
export function mediaType(contentType: string): string | null {
  return MIMEType.parse(contentType)?.essence ?? null;
}

/** Whether a Content-Type is one tcrawl parses as HTML. */
export function isHtmlType(contentType: string): boolean {
  return HTML_TYPES.has(mediaType(contentType) ?? '');
}

/** How a body is parsed. */
export type BodyKind = 'html' | 'json' | 'xml' | 'text';

/**
 * What a Content-Type says a body is: HTML; JSON (`application/json` and any
 * `+json` suffix, RFC 6839); XML (`application/xml`, `text/xml`, `+xml`);
 * other `text/*`; null for anything else (images, PDFs, archives).
 */
export function bodyKindOf(contentType: string): BodyKind | null {
  const essence = mediaType(contentType);
  if (essence === null) return null;
  if (HTML_TYPES.has(essence)) return 'html';
  if (essence === 'application/json' || essence.endsWith('+json')) return 'json';
  if (essence === 'application/xml' || essence === 'text/xml' || essence.endsWith('+xml')) return 'xml';
  return essence.startsWith('text/') ? 'text' : null;
}

/**
 * The content codings of a Content-Encoding value, in the order they were
 * applied (RFC 9110 §8.4): lower-cased, `identity` and empty members dropped.
 * Several header lines are one comma-separated list (RFC 9110 §5.3).
 */
export function contentCodings(contentEncoding: string | string[] | undefined): string[] {
  const value = Array.isArray(contentEncoding) ? contentEncoding.join(',') : (contentEncoding ?? '');
  return value
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
}

/**
 * Labels of ISO-8859-8-I (Encoding §4.2), which whatwg-encoding does not
 * know: it would ignore such a header and decode Hebrew pages as UTF-8. The
 * "I" (implicit, logical order) only matters for bidi layout; the bytes decode
 * exactly as ISO-8859-8.
 */
const ISO_8859_8_I_LABELS = new Set(['csiso88598i', 'iso-8859-8-i', 'logical']);

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A body as text, its encoding chosen by the HTML standard's sniffing
 * (§13.2.3.2): a byte order mark; else the Content-Type charset, if it is a
 * known label; else a `<meta>` charset (or XML declaration) in the first 1024
 * bytes — so the header wins over a `<meta>` that disagrees, as in browsers.
 * Undecodable bytes become U+FFFD, never errors. Used for every text body
 * (HTML, robots.txt, sitemaps); XML declarations are sniffed the same way.
 */
export function decodeBody(bytes: Uint8Array, contentType: string): string {
  const sniffer = new Sniffer({ transportLayerEncodingLabel: transportCharset(contentType) });
  sniffer.write(bytes);
  return sniffer.resultType === ResultType.DEFAULT ? decodeUndeclared(bytes) : decode(bytes, sniffer.encoding);
}

function transportCharset(contentType: string): string | undefined {
  const charset = MIMEType.parse(contentType)?.parameters.get('charset');
  return charset !== undefined && ISO_8859_8_I_LABELS.has(charset.toLowerCase()) ? 'iso-8859-8' : charset;
}

/**
 * No encoding declared anywhere. §13.2.3.2 step 8 allows autodetection and
 * notes that UTF-8 is reliably detected when the whole body is at hand, as it
 * is here: valid UTF-8 is UTF-8; anything else is windows-1252, the step 9
 * default for most locales. (Decoding all of them as UTF-8 would turn every
 * accented letter of an undeclared legacy page into U+FFFD.)
 */
function decodeUndeclared(bytes: Uint8Array): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    // windows-1252 through iconv-lite's table: Node ≥ 20.18.3 decodes the
    // label as ISO-8859-1, turning curly quotes and € into C1 controls
    // (nodejs/node#56542, #60888).
    return decode(bytes, 'windows-1252');
  }
}
