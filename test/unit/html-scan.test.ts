import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { renderBenchPage } from '../../bench/site';
import { applyRule, scanRule } from '../../src/rules/apply';
import { compileRules } from '../../src/rules/compile';
import { parseDocument } from '../../src/rules/document';

/**
 * The default rule's fast path (htmlparser2 tokens, no DOM) against the full
 * parse (cheerio's parse5 tree): on every page it reads, the same title,
 * links (in order), link count and items; where they could differ it reads
 * nothing and the crawl parses the page fully.
 */

const { fallback } = compileRules({ rules: [], items: undefined });
const PAGE = 'https://example.com/dir/page.html';

function bothWays(html: string, url = PAGE) {
  const context = { request: { method: 'GET' as const, url }, finalUrl: url, depth: 2, maxDepth: 5 };
  return { scanned: scanRule(fallback, html, context), parsed: applyRule(fallback, parseDocument('html', html, url), context) };
}

function assertSameRows(html: string, url = PAGE): void {
  const { scanned, parsed } = bothWays(html, url);
  assert.notEqual(scanned, null, 'the fast path read the page');
  assert.deepEqual(scanned, parsed);
}

// PostgreSQL 15's documentation (PostgreSQL License), as Debian's postgresql-doc-15 installs it: the benchmark's real HTML.
const pgDocs = path.join(__dirname, '../fixtures/pg-docs');

for (const file of fs.readdirSync(pgDocs)) {
  test(`PostgreSQL docs ${file}: the same rows as the full parse`, () => {
    const html = fs.readFileSync(path.join(pgDocs, file), 'utf8');
    assertSameRows(html, `http://127.0.0.1:8080/c/${file}`);
    assert.ok(bothWays(html).parsed.found > 5, 'a page with links');
  });
}

test('synthetic bench pages: the same rows as the full parse', () => {
  for (const i of [0, 1, 17, 999, 19_999]) assertSameRows(renderBenchPage(i, 20_000), `http://127.0.0.1:8080/p/${i}`);
});

const tokenCases: Record<string, string> = {
  'entities in hrefs and title': '<title>A &amp; B &lt;c&gt; &copy 1&nbsp;2</title><a href="/x?a=1&amp;b=2&copy=3">x</a><a href="/y?q&notit;z">y</a><a href=/z&#x41;>z</a>',
  'upper case tags and attributes': '<HTML><HEAD><TITLE>Up</TITLE><BASE HREF="/base/"></HEAD><BODY><A HREF="one">1</A><AREA Href="two"></BODY></HTML>',
  'unquoted, single-quoted, spaced and empty hrefs': `<a href=plain>p</a><a href='single'>s</a><a href = " spaced ">sp</a><a href="">empty</a><a href>bare</a><a href=slash/>sl</a>`,
  'duplicate attributes: the first wins': '<a href="/first" href="/second">d</a><base href="/b1/" href="/b2/"><a href="rel">r</a>',
  'markup inside script, style, textarea and title is text': `<title>T <a href="/no-title">x</a></title><script>var s = '<a href="/no-script">';</script><style>a[href="/no-style"]{}</style><textarea><a href="/no-textarea"></textarea><a href="/yes">y</a>`,
  'comments and processing instructions': '<?xml version="1.0"?><!-- <a href="/commented"> --><a href="/after">a</a><!----><a href="/after2">b</a>',
  'misnested and unclosed anchors, tables, paragraphs': '<p><a href="/one"><div>block</a></div><table><tr><td><a href="/cell">c</td></tr></table><a href="/two"><a href="/three">t</a><b><a href="/four">f</b></a>',
  'a table with an anchor outside its cells': '<table><a href="/fostered">f</a><tr><td><a href="/cell">c</a></td></tr></table>',
  'several titles, one in the body': '<head></head><body><title>Body title</title><title>Second</title></body>',
  'a blank title': '<title>  \n </title><a href="/x">x</a>',
  'no title, base after links': '<a href="a">a</a><base href="https://other.example/dir/"><a href="b">b</a>',
  'non-http, fragment, protocol-relative and bad links': '<a href="mailto:x@example.com">m</a><a href="#top">t</a><a href="//cdn.example.com/y">c</a><a href="http://[bad">b</a><a href="javascript:void(0)">j</a>',
  'CRLF, tabs and non-breaking spaces': '<title>\r\nLine\tone\u00a0two\r\n</title><a href="/c\r\nr">cr</a>',
  'after </html>': '<html><body><a href="/in">i</a></body></html><a href="/after-html">a</a>',
  'a <base> in the body': '<body><a href="x">x</a><base href="/later/"><a href="y">y</a></body>',
  'attributes without values and odd names': '<a data-x href="/v" download>v</a><a hreflang="en">no href</a><a xlink:href="/xlink">xl</a>',
};

for (const [name, html] of Object.entries(tokenCases)) {
  test(`${name}: the same rows as the full parse`, () => assertSameRows(html));
}

const treeCases: Record<string, string> = {
  'template contents': '<template><a href="/hidden">h</a></template><a href="/shown">s</a>',
  'an svg title': '<svg><title>Icon</title></svg><title>Page</title>',
  noscript: '<noscript><a href="/ns">n</a></noscript>',
  iframe: '<iframe><a href="/if">i</a></iframe>',
  select: '<select><a href="/sel">s</a></select>',
  plaintext: '<plaintext><a href="/pt">p</a>',
  'CDATA in HTML': '<![CDATA[ x > <a href="/cd"> ]]>',
  'a comment closed by --!>': '<!-- x --!><a href="/c">c</a>-->',
  'an escaped script': '<script><!--<script>x</script><a href="/esc">--></script>',
  'a title the end of input closes': '<title>Open <a href="/x">',
  'a NUL character': '<title>a\0b</title>',
};

for (const [name, html] of Object.entries(treeCases)) {
  test(`${name}: left to the full parse`, () => {
    assert.equal(bothWays(html).scanned, null);
  });
}

test('a rule that asks for more than links and titles is not scanned', () => {
  const withItems = compileRules({ rules: [], items: { selector: 'a', fields: { href: 'a@href' } } }).fallback;
  const context = { request: { method: 'GET' as const, url: PAGE }, finalUrl: PAGE, depth: 0, maxDepth: 5 };
  assert.equal(scanRule(withItems, '<a href="/x">x</a>', context), null);
});

test('links beyond maxDepth are counted, not requested, as by the full parse', () => {
  const context = { request: { method: 'GET' as const, url: PAGE }, finalUrl: PAGE, depth: 5, maxDepth: 5 };
  const html = '<a href="/a">a</a><a href="/b">b</a>';
  const scanned = scanRule(fallback, html, context);
  assert.deepEqual(scanned, applyRule(fallback, parseDocument('html', html, PAGE), context));
  assert.deepEqual(scanned, { title: null, items: [], requests: [], found: 2 });
});
