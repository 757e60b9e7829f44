import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as iconv from 'iconv-lite';
import { contentCodings, decodeBody, isHtmlType, mediaType } from '../../src/decode';

const bytes = (text: string, encoding: string) => iconv.encode(text, encoding);
const latin1 = (text: string) => Buffer.from(text, 'latin1');

describe('mediaType and isHtmlType (MIME Sniffing §4.4)', () => {
  test('the essence, lower-cased, without parameters', () => {
    assert.equal(mediaType('Text/HTML; Charset="UTF-8"'), 'text/html');
    assert.equal(mediaType('application/xhtml+xml;charset=utf-8'), 'application/xhtml+xml');
  });

  test('missing or unparsable is null, and not HTML', () => {
    for (const contentType of ['', 'html', 'text/', '/html', 'text html']) {
      assert.equal(mediaType(contentType), null, contentType);
      assert.equal(isHtmlType(contentType), false, contentType);
    }
  });

  test('text/html and application/xhtml+xml are HTML; text/plain and XML are not', () => {
    assert.equal(isHtmlType('text/html'), true);
    assert.equal(isHtmlType('APPLICATION/XHTML+XML'), true);
    assert.equal(isHtmlType('text/plain'), false);
    assert.equal(isHtmlType('application/xml'), false);
  });
});

describe('contentCodings (RFC 9110 §8.4)', () => {
  test('in the order applied, lower-cased, identity and empty members dropped', () => {
    assert.deepEqual(contentCodings(' GZIP , identity,, br'), ['gzip', 'br']);
    assert.deepEqual(contentCodings(undefined), []);
    assert.deepEqual(contentCodings(''), []);
  });

  test('several header lines are one list (RFC 9110 §5.3)', () => {
    assert.deepEqual(contentCodings(['gzip', 'deflate, br']), ['gzip', 'deflate', 'br']);
  });
});

describe('decodeBody: the HTML encoding sniffing algorithm (HTML §13.2.3.2)', () => {
  test('the Content-Type charset: windows-1251 and Shift_JIS', () => {
    assert.equal(decodeBody(bytes('<p>Привет, мир</p>', 'windows-1251'), 'text/html; charset=windows-1251'), '<p>Привет, мир</p>');
    assert.equal(decodeBody(bytes('<p>日本語のページ</p>', 'Shift_JIS'), 'text/html; charset="Shift_JIS"'), '<p>日本語のページ</p>');
  });

  test('a UTF-8 byte order mark wins over the header and is dropped', () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<p>café</p>')]);
    assert.equal(decodeBody(body, 'text/html; charset=windows-1251'), '<p>café</p>');
  });

  test('a UTF-16LE byte order mark is honoured', () => {
    const body = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('<p>naïve</p>', 'utf16le')]);
    assert.equal(decodeBody(body, 'text/html'), '<p>naïve</p>');
  });

  test('the header wins over a <meta> that disagrees (transport before prescan, steps 4 and 5)', () => {
    const body = bytes('<meta charset="shift_jis"><p>Привет</p>', 'windows-1251');
    assert.equal(decodeBody(body, 'text/html; charset=windows-1251'), '<meta charset="shift_jis"><p>Привет</p>');
  });

  test('without a header charset, <meta charset> or <meta http-equiv> decides', () => {
    assert.equal(decodeBody(bytes('<meta charset="windows-1251"><p>Привет</p>', 'windows-1251'), 'text/html'), '<meta charset="windows-1251"><p>Привет</p>');
    const httpEquiv = '<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS"><p>日本</p>';
    assert.equal(decodeBody(bytes(httpEquiv, 'Shift_JIS'), 'text/html'), httpEquiv);
  });

  test('a <meta> inside a comment is not a declaration', () => {
    assert.equal(decodeBody(Buffer.from('<!-- <meta charset="windows-1251"> --><p>Привет</p>'), 'text/html'), '<!-- <meta charset="windows-1251"> --><p>Привет</p>');
  });

  test('an unknown label is ignored: the <meta>, else detection, decides', () => {
    assert.equal(decodeBody(Buffer.from('<p>café</p>'), 'text/html; charset=x-no-such-charset'), '<p>café</p>');
    const withMeta = bytes('<meta charset="windows-1251"><p>Привет</p>', 'windows-1251');
    assert.equal(decodeBody(withMeta, 'text/html; charset=x-no-such-charset'), '<meta charset="windows-1251"><p>Привет</p>');
  });

  test('windows-1252 is what latin1, iso-8859-1 and us-ascii mean: curly quotes and € (not C1 controls, as Node ≥ 20.18.3 decodes them)', () => {
    const body = latin1('\x93quoted\x94 \x91x\x92 \x80 caf\xe9');
    for (const label of ['windows-1252', 'latin1', 'ISO-8859-1', 'us-ascii']) {
      assert.equal(decodeBody(body, `text/html; charset=${label}`), '“quoted” ‘x’ € café', label);
    }
  });

  test('nothing declared: valid UTF-8 is UTF-8, anything else windows-1252 (steps 8 and 9)', () => {
    assert.equal(decodeBody(Buffer.from('<p>café €</p>'), 'text/html'), '<p>café €</p>');
    assert.equal(decodeBody(latin1('<p>caf\xe9 \x80</p>'), 'text/html'), '<p>café €</p>');
    assert.equal(decodeBody(latin1('<p>caf\xe9</p>'), ''), '<p>café</p>');
  });

  test('an XML declaration names the encoding of a sitemap', () => {
    const xml = '<?xml version="1.0" encoding="windows-1251"?><urlset><loc>http://пример.рф/</loc></urlset>';
    assert.equal(decodeBody(bytes(xml, 'windows-1251'), 'application/xml'), xml);
  });

  test('regression: the ISO-8859-8-I labels, which whatwg-encoding does not know, decode as ISO-8859-8', () => {
    assert.equal(decodeBody(bytes('<p>שלום</p>', 'ISO-8859-8'), 'text/html; charset=ISO-8859-8-I'), '<p>שלום</p>');
    assert.equal(decodeBody(bytes('<p>שלום</p>', 'ISO-8859-8'), 'text/html; charset=logical'), '<p>שלום</p>');
  });

  test('x-user-defined from the header maps high bytes to U+F780 + (byte − 0x80) (Encoding §14.5)', () => {
    assert.equal(decodeBody(Buffer.from([0x61, 0x80, 0xff]), 'text/html; charset=x-user-defined'), 'a\uF780\uF7FF');
  });

  test('binary junk decodes to some string, never throws', () => {
    const junk = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) & 0xff));
    for (const contentType of ['text/html', 'text/html; charset=utf-8', 'text/html; charset=Shift_JIS', 'text/html; charset=utf-16le']) {
      assert.equal(typeof decodeBody(junk, contentType), 'string', contentType);
    }
    assert.match(decodeBody(Buffer.from([0x3c, 0xff, 0xfe, 0x3e]), 'text/html; charset=utf-8'), /\uFFFD/);
  });
});
