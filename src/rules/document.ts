import { load, type CheerioAPI } from 'cheerio';
import type { BodyKind } from '../decode';
import { TcrawlError } from '../errors';
import { canonicalizeUrl } from '../url';

/** A response body parsed the way its rule asks: the one thing every source reads from. */
export interface ParsedDocument {
  kind: BodyKind;
  /** The body as text. */
  text: string;
  /** JSON documents: the parsed value. */
  json?: unknown;
  /** HTML and XML documents. */
  $?: CheerioAPI;
  /** What relative URLs resolve against: the first `<base href>` of an HTML page, else the response URL. */
  baseUrl: string;
  /** HTML: the `<title>`, whitespace collapsed; null if absent, blank, or not HTML. */
  title: string | null;
}

/** A body that is not what its rule parses it as (invalid JSON): the URL's failure `parse_error`. */
export class ParseError extends TcrawlError {
  constructor(message: string) {
    super('TCRAWL_PARSE_ERROR', message);
  }
}

export function parseDocument(kind: BodyKind, text: string, url: string): ParsedDocument {
  switch (kind) {
    case 'html': {
      const $ = load(text);
      // <template> contents are inert in a browser, so they are ignored here too.
      $('template').remove();
      return { kind, text, $, baseUrl: baseUrlOf($, url), title: titleOf($) };
    }
    case 'xml':
      return { kind, text, $: load(text, { xml: true }), baseUrl: url, title: null };
    case 'json':
      return { kind, text, json: parseJson(text), baseUrl: url, title: null };
    case 'text':
      return { kind, text, baseUrl: url, title: null };
  }
}

function parseJson(text: string): unknown {
  try {
    // A byte order mark is not JSON (RFC 8259 §8.1), but servers send one.
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    throw new ParseError(`The body is not valid JSON: ${(error as Error).message}`);
  }
}

function baseUrlOf($: CheerioAPI, pageUrl: string): string {
  const href = $('base[href]').first().attr('href');
  return (href !== undefined && canonicalizeUrl(href, pageUrl)) || pageUrl;
}

function titleOf($: CheerioAPI): string | null {
  // An inline SVG's <title> is a tooltip, not the document's title.
  const title = $('title').filter((_, el) => $(el).closest('svg').length === 0).first();
  if (title.length === 0) return null;
  const text = collapseWhitespace(title.text());
  return text === '' ? null : text;
}

/** HTML's "strip and collapse ASCII whitespace" (non-breaking spaces are content). */
export function collapseWhitespace(text: string): string {
  return text.replace(/[\t\n\f\r ]+/g, ' ').trim();
}
