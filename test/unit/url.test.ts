import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalizeUrl, hostOf, parseSeedUrl } from '../../src/url';
import { InvalidInputError } from '../../src/errors';

test('canonicalizeUrl lower-cases scheme and host, drops default port, dot segments and fragment', () => {
  assert.equal(canonicalizeUrl('HTTP://Example.COM:80/a/../b#x'), 'http://example.com/b');
});

test('canonicalizeUrl turns an empty path into / and drops :443 on https', () => {
  assert.equal(canonicalizeUrl('https://x.com:443'), 'https://x.com/');
});

test('canonicalizeUrl keeps a non-default port', () => {
  assert.equal(canonicalizeUrl('https://x.com:80/'), 'https://x.com:80/');
  assert.equal(canonicalizeUrl('http://x.com:8080'), 'http://x.com:8080/');
});

test('relative and absolute spellings of one URL canonicalize equal', () => {
  const base = 'https://example.com/dir/page.html';
  const spellings = ['other?q=1', './other?q=1#top', '../dir/other?q=1', '/dir/other?q=1', '//EXAMPLE.com/dir/./other?q=1'];
  for (const raw of spellings) {
    assert.equal(canonicalizeUrl(raw, base), 'https://example.com/dir/other?q=1', raw);
  }
});

test('canonicalizeUrl punycodes IDN hosts', () => {
  assert.equal(canonicalizeUrl('http://Bücher.DE/straße'), 'http://xn--bcher-kva.de/stra%C3%9Fe');
});

test('canonicalizeUrl drops userinfo', () => {
  assert.equal(canonicalizeUrl('https://user:secret@example.com/a'), 'https://example.com/a');
});

test('canonicalizeUrl keeps the query as is (order and empty values)', () => {
  assert.equal(canonicalizeUrl('https://example.com/s?b=2&a=1&a='), 'https://example.com/s?b=2&a=1&a=');
});

test('canonicalizeUrl trims surrounding whitespace', () => {
  assert.equal(canonicalizeUrl('  \n https://example.com/a \t'), 'https://example.com/a');
});

test('canonicalizeUrl returns null for non-http schemes', () => {
  for (const raw of ['mailto:a@example.com', 'javascript:alert(1)', 'data:text/html,hi', 'tel:+123', 'ftp://example.com/f']) {
    assert.equal(canonicalizeUrl(raw, 'https://example.com/'), null, raw);
  }
});

test('canonicalizeUrl returns null for unparsable URLs and relative ones without base', () => {
  assert.equal(canonicalizeUrl('http://'), null);
  assert.equal(canonicalizeUrl('https://exa mple.com/'), null);
  assert.equal(canonicalizeUrl('/relative'), null);
  assert.equal(canonicalizeUrl('a', 'not a base'), null);
});

test('a fragment-only link resolves to the page itself', () => {
  assert.equal(canonicalizeUrl('#section', 'https://example.com/p?x=1#old'), 'https://example.com/p?x=1');
});

test('parseSeedUrl returns the canonical form', () => {
  assert.equal(parseSeedUrl(' HTTPS://Example.com '), 'https://example.com/');
});

test('parseSeedUrl rejects non-http schemes naming the value', () => {
  assert.throws(
    () => parseSeedUrl('ftp://x'),
    (error: unknown) =>
      error instanceof InvalidInputError && error.code === 'TCRAWL_INVALID_URL' && error.message === '"ftp://x" is not an http(s) URL',
  );
});

test('parseSeedUrl suggests https:// for a bare host', () => {
  assert.throws(() => parseSeedUrl('example.com'), {
    code: 'TCRAWL_INVALID_URL',
    message: '"example.com" is not an absolute URL (did you mean https://example.com?)',
  });
  assert.throws(() => parseSeedUrl('localhost:8080/a'), { message: /did you mean https:\/\/localhost:8080\/a\?/ });
});

test('parseSeedUrl rejects garbage', () => {
  assert.throws(() => parseSeedUrl('http://'), { code: 'TCRAWL_INVALID_URL', message: '"http://" is not a valid URL' });
  assert.throws(() => parseSeedUrl(''), { code: 'TCRAWL_INVALID_URL' });
});

test('hostOf includes only non-default ports', () => {
  assert.equal(hostOf('https://example.com/a'), 'example.com');
  assert.equal(hostOf('http://example.com:8080/a'), 'example.com:8080');
  assert.equal(hostOf('http://[::1]:3000/'), '[::1]:3000');
  assert.throws(() => hostOf('nope'), { code: 'TCRAWL_INVALID_URL' });
});
