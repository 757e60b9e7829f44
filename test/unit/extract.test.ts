import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractPage } from '../../src/extract';
import { parseCrawlSpec } from '../../src/spec';
import { InvalidInputError } from '../../src/errors';

const PAGE = 'https://example.com/dir/page.html';

test('links are resolved, canonicalized, de-duplicated in first-seen order', () => {
  const html = `
    <a href="b.html">B</a>
    <a href="/a">A</a>
    <a href="HTTPS://EXAMPLE.com:443/dir/b.html#frag">B again</a>
    <map><area href="../area"></map>
    <a href="https://other.org/x?q=1">other</a>
    <a href="/a">A again</a>`;
  assert.deepEqual(extractPage(html, PAGE).links, [
    'https://example.com/dir/b.html',
    'https://example.com/a',
    'https://example.com/area',
    'https://other.org/x?q=1',
  ]);
});

test('non-http links and anchors without href are dropped; nofollow links are kept', () => {
  const html = `
    <a href="mailto:x@example.com">mail</a>
    <a href="javascript:void(0)">js</a>
    <a href="tel:+1">tel</a>
    <a href="data:text/html,hi">data</a>
    <a name="anchor">no href</a>
    <a href="http://[bad">bad</a>
    <a rel="nofollow" href="/nf">nofollow</a>`;
  assert.deepEqual(extractPage(html, PAGE).links, ['https://example.com/nf']);
});

test('links resolve against <base href>, itself relative to the page', () => {
  const html = `<head><base href="/other/dir/"><base href="https://ignored.example/"></head>
    <a href="x">x</a><a href="//cdn.example.com/y">y</a>`;
  assert.deepEqual(extractPage(html, PAGE).links, ['https://example.com/other/dir/x', 'https://cdn.example.com/y']);
});

test('a non-http <base href> is ignored', () => {
  const html = '<base href="javascript:alert(1)"><a href="x">x</a>';
  assert.deepEqual(extractPage(html, PAGE).links, ['https://example.com/dir/x']);
});

test('links inside <template> are skipped', () => {
  const html = '<template><a href="/hidden">h</a></template><a href="/shown">s</a>';
  assert.deepEqual(extractPage(html, PAGE).links, ['https://example.com/shown']);
});

test('IDN links are punycoded', () => {
  assert.deepEqual(extractPage('<a href="https://bücher.de/">b</a>', PAGE).links, ['https://xn--bcher-kva.de/']);
});

test('title is trimmed with whitespace collapsed', () => {
  const html = '<html><head><title>\n  Hello,\t\n  world &amp; co  </title></head></html>';
  assert.equal(extractPage(html, PAGE).title, 'Hello, world & co');
});

test('title is null when absent or blank', () => {
  assert.equal(extractPage('<p>no title</p>', PAGE).title, null);
  assert.equal(extractPage('<title>  \n </title>', PAGE).title, null);
});

test('an inline SVG <title> is not the page title', () => {
  const html = '<body><svg><title>Close icon</title></svg></body>';
  assert.equal(extractPage(html, PAGE).title, null);
  const both = '<head><title>Real</title></head><body><svg><title>Icon</title></svg></body>';
  assert.equal(extractPage(both, PAGE).title, 'Real');
});

const PRODUCTS = `
  <ul>
    <li class="product" data-sku="A1">
      <h2 class="name">  Blue
        mug </h2>
      <span class="price">$5</span>
      <a class="link" href="/p/a1#reviews">details</a>
      <img src="img/a1.png" alt="mug">
    </li>
    <li class="product" data-sku="B2">
      <h2 class="name">Red cup</h2>
      <a class="link" href="mailto:sales@example.com">ask</a>
    </li>
  </ul>`;

test('items: one object per element, text and attribute fields, missing ones null', () => {
  const { items } = extractPage(PRODUCTS, PAGE, {
    selector: 'li.product',
    fields: {
      name: '.name',
      price: '.price',
      url: 'a.link@href',
      image: 'img@src',
      alt: 'img@alt',
      sku: '@data-sku',
      missingAttr: '.name@title',
    },
  });
  assert.deepEqual(items, [
    {
      name: 'Blue mug',
      price: '$5',
      url: 'https://example.com/p/a1',
      image: 'https://example.com/dir/img/a1.png',
      alt: 'mug',
      sku: 'A1',
      missingAttr: null,
    },
    {
      name: 'Red cup',
      price: null,
      url: 'mailto:sales@example.com',
      image: null,
      alt: null,
      sku: 'B2',
      missingAttr: null,
    },
  ]);
});

test('items: a field takes the first match within its own item only', () => {
  const html = '<div class="i"><b>one</b><b>two</b></div><div class="i"></div>';
  const { items } = extractPage(html, PAGE, { selector: '.i', fields: { b: 'b' } });
  assert.deepEqual(items, [{ b: 'one' }, { b: null }]);
});

test('items: :scope means the item itself, and an @ inside CSS stays CSS', () => {
  const html = '<p class="i">Hi <a href="mailto:a@b.c">mail</a> <a href="/x">x</a></p>';
  const { items } = extractPage(html, PAGE, {
    selector: '.i',
    fields: { text: ':scope', mailText: 'a[href*="@"]', direct: ':scope > a[href^="/"]@href' },
  });
  assert.deepEqual(items, [{ text: 'Hi mail x', mailText: 'mail', direct: 'https://example.com/x' }]);
});

test('items: href/src resolve against <base href>', () => {
  const html = '<base href="https://cdn.example.net/assets/"><div class="i"><img src="x.png"></div>';
  const { items } = extractPage(html, PAGE, { selector: '.i', fields: { img: 'img@src' } });
  assert.deepEqual(items, [{ img: 'https://cdn.example.net/assets/x.png' }]);
});

test('items: an item selector that looks like HTML selects nothing instead of creating elements', () => {
  // $('<div>') would build a new <div> and report one item.
  assert.deepEqual(extractPage('<div></div>', PAGE, { selector: '<div>', fields: { a: 'a' } }).items, []);
});

test('no items spec, no items', () => {
  assert.deepEqual(extractPage(PRODUCTS, PAGE).items, []);
});

test('the spec accepts valid item selectors, including cheerio extensions', () => {
  parseCrawlSpec({ seeds: [PAGE], items: { selector: 'li.product:not(.ad)', fields: { a: 'a@href', b: '@data-x', c: 'p:contains(Price)', d: ':scope' } } });
});

test('the spec names the bad item selector', () => {
  assert.throws(
    () => parseCrawlSpec({ seeds: [PAGE], items: { selector: 'div[', fields: {} } }),
    (error: unknown) => error instanceof InvalidInputError && error.code === 'TCRAWL_INVALID_SPEC' && /items\.selector: invalid CSS selector "div\["/.test(error.message),
  );
});

test('the spec names the field and its selector', () => {
  assert.throws(() => parseCrawlSpec({ seeds: [PAGE], items: { selector: 'div', fields: { ok: 'p', price: 'span:price@title' } } }), {
    code: 'TCRAWL_INVALID_SPEC',
    message: /items\.fields\.price: invalid CSS selector "span:price".*Unknown pseudo-class :price/,
  });
});

test('the spec refuses a field that ends in a bare @', () => {
  assert.throws(() => parseCrawlSpec({ seeds: [PAGE], items: { selector: 'div', fields: { x: 'a@' } } }), {
    code: 'TCRAWL_INVALID_SPEC',
    message: /items\.fields\.x: invalid CSS selector "a@"/,
  });
});
