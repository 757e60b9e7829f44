import { load, type CheerioAPI } from 'cheerio';
import { canonicalizeUrl } from './url';

/**
 * Sitemap files (https://www.sitemaps.org/protocol.html): the XML `<urlset>`
 * and `<sitemapindex>` formats, the plain-text format, and the RSS 2.0 / Atom
 * 1.0 feeds the protocol also accepts ("Other sitemap formats"). Parsing never
 * throws: a file that is none of these (an HTML soft-404, binary junk, broken
 * XML) is an empty urlset, since a missing sitemap is normal.
 */

export type ParsedSitemap = { kind: 'urlset'; urls: string[] } | { kind: 'index'; sitemaps: string[] };

/** Protocol limit: "no more than 50,000 URLs" per sitemap, and 50,000 sitemaps per index. */
export const SITEMAP_MAX_ENTRIES = 50_000;

type Selection = ReturnType<CheerioAPI>;

/** A parsed XML file and the text it came from (element end indices point into it). */
interface XmlDoc {
  $: CheerioAPI;
  source: string;
}

/**
 * The page URLs of a sitemap, or the sitemap URLs of a sitemap index:
 * canonical http(s) URLs, de-duplicated, in file order, at most
 * {@link SITEMAP_MAX_ENTRIES}. `<loc>` values are trimmed (CDATA and XML
 * entities decoded); relative ones, which the protocol forbids but sites
 * write anyway, are resolved against `sitemapUrl`.
 * @param sitemapUrl where the file was fetched from (after redirects).
 */
export function parseSitemap(body: string, sitemapUrl: string): ParsedSitemap {
  const source = body.replace(/^\uFEFF/, '').trimStart();
  // "Text file": one absolute URL per line, nothing else. Anything that starts like markup is XML or nothing.
  if (!source.startsWith('<')) return { kind: 'urlset', urls: textUrls(source) };
  const doc: XmlDoc = { $: load(source, { xml: { withStartIndices: true, withEndIndices: true } }), source };
  const root = childElements(doc, doc.$.root())[0];
  if (root === undefined) return { kind: 'urlset', urls: [] };
  switch (localName(root)) {
    case 'sitemapindex':
      return { kind: 'index', sitemaps: collect(locs(doc, root, 'sitemap'), sitemapUrl) };
    case 'urlset':
      return { kind: 'urlset', urls: collect(locs(doc, root, 'url'), sitemapUrl) };
    case 'rss':
      return { kind: 'urlset', urls: collect(rssLinks(doc, root), sitemapUrl) };
    case 'feed':
      return { kind: 'urlset', urls: collect(atomLinks(doc, root), sitemapUrl) };
    default:
      return { kind: 'urlset', urls: [] };
  }
}

/**
 * `<loc>` texts of `<urlset><url><loc>` or `<sitemapindex><sitemap><loc>`.
 * Only direct children count: extensions nest their own `loc`s deeper
 * (`<url><image:image><image:loc>`), and those are not pages.
 */
function* locs(doc: XmlDoc, root: Selection, entry: string): Generator<string> {
  for (const element of named(doc, root, entry)) {
    const [loc] = named(doc, element, 'loc');
    if (loc !== undefined && closedByTag(doc, loc)) yield loc.text();
  }
}

/** RSS 2.0: `<rss><channel><item><link>`. */
function* rssLinks(doc: XmlDoc, root: Selection): Generator<string> {
  for (const channel of named(doc, root, 'channel')) {
    for (const item of named(doc, channel, 'item')) {
      const [link] = named(doc, item, 'link');
      if (link !== undefined && closedByTag(doc, link)) yield link.text();
    }
  }
}

/** Atom 1.0: `<feed><entry><link href>`, the alternate link (RFC 4287 §4.2.7.2: no `rel` means alternate). */
function* atomLinks(doc: XmlDoc, root: Selection): Generator<string> {
  for (const entry of named(doc, root, 'entry')) {
    const link = named(doc, entry, 'link').find((candidate) => (candidate.attr('rel') ?? 'alternate') === 'alternate');
    const href = link?.attr('href');
    if (href !== undefined) yield href;
  }
}

/**
 * False for an element the parser closed because the file ended: the text of
 * a `<loc>` cut off mid-URL (a truncated download) is a URL, just not the one meant.
 */
function closedByTag(doc: XmlDoc, element: Selection): boolean {
  const end = element.get(0)?.endIndex;
  return typeof end === 'number' && doc.source[end] === '>';
}

function named(doc: XmlDoc, parent: Selection, name: string): Selection[] {
  return childElements(doc, parent).filter((child) => localName(child) === name);
}

function childElements(doc: XmlDoc, parent: Selection): Selection[] {
  return parent
    .children()
    .toArray()
    .filter((node) => node.type === 'tag')
    .map((node) => doc.$(node));
}

/**
 * `urlset` for `<urlset>`, `<sm:urlset>` and `<URLSET>`. Prefixes are dropped
 * rather than resolved to namespaces: the structure already tells the
 * sitemap's elements from an extension's.
 */
function localName(element: Selection): string {
  const name = element.prop('tagName') ?? '';
  return name.slice(name.indexOf(':') + 1).toLowerCase();
}

function textUrls(text: string): string[] {
  // "You must fully specify URLs, including the http": no base to resolve against.
  return collect(text.split(/\r\n|\r|\n/), undefined);
}

/** Canonical, unique, capped. */
function collect(raw: Iterable<string>, base: string | undefined): string[] {
  const urls = new Set<string>();
  for (const value of raw) {
    if (urls.size >= SITEMAP_MAX_ENTRIES) break;
    const trimmed = value.trim();
    const url = trimmed === '' ? null : canonicalizeUrl(trimmed, base);
    if (url !== null) urls.add(url);
  }
  return [...urls];
}
