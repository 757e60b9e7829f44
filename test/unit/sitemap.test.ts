import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SITEMAP_MAX_ENTRIES, parseSitemap } from '../../src/sitemap';

const SITEMAP_URL = 'https://example.com/maps/sitemap.xml';
const NS = 'http://www.sitemaps.org/schemas/sitemap/0.9';

function urls(body: string, sitemapUrl = SITEMAP_URL): string[] {
  const parsed = parseSitemap(body, sitemapUrl);
  assert.equal(parsed.kind, 'urlset', JSON.stringify(parsed));
  return parsed.kind === 'urlset' ? parsed.urls : [];
}

test('a <urlset> with the default namespace, declaration and BOM', () => {
  const body =
    '\uFEFF<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<urlset xmlns="${NS}">\n` +
    '  <url><loc>https://example.com/</loc><lastmod>2024-01-01</lastmod><priority>0.8</priority></url>\n' +
    '  <url>\n    <loc>\n      https://example.com/about\n    </loc>\n  </url>\n' +
    '</urlset>\n';
  assert.deepEqual(urls(body), ['https://example.com/', 'https://example.com/about']);
});

test('prefixed elements (<sm:urlset><sm:url><sm:loc>) are read by local name', () => {
  const body =
    `<sm:urlset xmlns:sm="${NS}">` +
    '<sm:url><sm:loc>https://example.com/a</sm:loc></sm:url>' +
    '<sm:url><sm:loc>https://example.com/b</sm:loc></sm:url>' +
    '</sm:urlset>';
  assert.deepEqual(urls(body), ['https://example.com/a', 'https://example.com/b']);
});

test("an extension's nested <image:loc> and <xhtml:link> are not pages", () => {
  const body =
    `<urlset xmlns="${NS}" xmlns:image="http://www.google.com/schemas/sitemap-image/1.1" xmlns:xhtml="http://www.w3.org/1999/xhtml">` +
    '<url><loc>https://example.com/page</loc>' +
    '<image:image><image:loc>https://cdn.example.com/pic.jpg</image:loc></image:image>' +
    '<xhtml:link rel="alternate" hreflang="de" href="https://example.com/de/page"/>' +
    '</url></urlset>';
  assert.deepEqual(urls(body), ['https://example.com/page']);
});

test('a <sitemapindex> lists sitemaps, not pages', () => {
  const body =
    `<?xml version="1.0"?><sitemapindex xmlns="${NS}">` +
    '<sitemap><loc>https://example.com/sitemap-1.xml</loc><lastmod>2024-01-01</lastmod></sitemap>' +
    '<sitemap><loc>https://example.com/sitemap-2.xml.gz</loc></sitemap>' +
    '</sitemapindex>';
  assert.deepEqual(parseSitemap(body, SITEMAP_URL), {
    kind: 'index',
    sitemaps: ['https://example.com/sitemap-1.xml', 'https://example.com/sitemap-2.xml.gz'],
  });
});

test('CDATA and XML entities are decoded (protocol: "entity-escaped" URLs)', () => {
  const body =
    `<urlset xmlns="${NS}">` +
    '<url><loc><![CDATA[ https://example.com/q?a=1&b=2 ]]></loc></url>' +
    '<url><loc>https://example.com/r?a=1&amp;b=&apos;x&apos;&amp;c=&#x41;&#66;</loc></url>' +
    '</urlset>';
  assert.deepEqual(urls(body), ['https://example.com/q?a=1&b=2', 'https://example.com/r?a=1&b=%27x%27&c=AB']);
});

test('locs are canonicalized, resolved against the sitemap URL, de-duplicated; non-http dropped', () => {
  const body =
    `<urlset xmlns="${NS}">` +
    '<url><loc>HTTPS://Example.COM:443/a/../b#frag</loc></url>' +
    '<url><loc>page-2</loc></url>' +
    '<url><loc>/root</loc></url>' +
    '<url><loc>https://example.com/b</loc></url>' +
    '<url><loc>mailto:someone@example.com</loc></url>' +
    '<url><loc>ftp://example.com/file</loc></url>' +
    '<url><loc>   </loc></url>' +
    '<url><lastmod>2024-01-01</lastmod></url>' +
    '</urlset>';
  assert.deepEqual(urls(body), ['https://example.com/b', 'https://example.com/maps/page-2', 'https://example.com/root']);
});

test('the plain-text format: one absolute URL per line, anything else ignored', () => {
  const body = 'https://example.com/one\r\n\n  https://example.com/two  \nnot a url\n/relative\nhttps://example.com/one\rjavascript:alert(1)\n';
  assert.deepEqual(urls(body), ['https://example.com/one', 'https://example.com/two']);
});

test('RSS 2.0 and Atom 1.0 feeds are sitemaps too (protocol: "Other sitemap formats")', () => {
  const rss = '<rss version="2.0"><channel><link>https://example.com/</link><item><link>https://example.com/post-1</link></item><item><link>https://example.com/post-2</link></item></channel></rss>';
  assert.deepEqual(urls(rss), ['https://example.com/post-1', 'https://example.com/post-2']);
  const atom =
    '<feed xmlns="http://www.w3.org/2005/Atom"><link href="https://example.com/"/>' +
    '<entry><link href="https://example.com/e1"/><link rel="edit" href="https://example.com/edit/e1"/></entry>' +
    '<entry><link rel="alternate" href="/e2"/></entry></feed>';
  assert.deepEqual(urls(atom), ['https://example.com/e1', 'https://example.com/e2']);
});

test('malformed input is an empty urlset, never an exception', () => {
  const junk = [
    '',
    '   \n ',
    '<<<>>> &&& </x>',
    '<urlset',
    '<?xml version="1.0"?>',
    '<html><body><h1>Not found</h1><a href="/x">x</a></body></html>',
    '<!doctype html><title>Sitemap</title>',
    String.fromCharCode(0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x00, 0x01),
    '<unknown><url><loc>https://example.com/x</loc></url></unknown>',
  ];
  for (const body of junk) assert.deepEqual(parseSitemap(body, SITEMAP_URL), { kind: 'urlset', urls: [] }, JSON.stringify(body));
});

test('a truncated file yields its complete entries, not the URL cut in half', () => {
  const head = `<urlset xmlns="${NS}"><url><loc>https://example.com/1</loc></url><url><loc>https://example.com/2</loc>`;
  assert.deepEqual(urls(`${head}</url><url><loc>https://exa`), ['https://example.com/1', 'https://example.com/2']);
  assert.deepEqual(urls(head), ['https://example.com/1', 'https://example.com/2'], 'a <loc> closed by its tag counts even if <url> is not');
});

test(`at most ${SITEMAP_MAX_ENTRIES} URLs per file, the first ones (protocol limit)`, () => {
  const entries = Array.from({ length: SITEMAP_MAX_ENTRIES + 10 }, (_, i) => `<url><loc>https://example.com/p/${i}</loc></url>`);
  const xml = urls(`<urlset xmlns="${NS}">${entries.join('')}</urlset>`);
  assert.equal(xml.length, SITEMAP_MAX_ENTRIES);
  assert.equal(xml[0], 'https://example.com/p/0');
  assert.equal(xml.at(-1), `https://example.com/p/${SITEMAP_MAX_ENTRIES - 1}`);
  const text = urls(Array.from({ length: SITEMAP_MAX_ENTRIES + 10 }, (_, i) => `https://example.com/t/${i}`).join('\n'));
  assert.equal(text.length, SITEMAP_MAX_ENTRIES);
});
