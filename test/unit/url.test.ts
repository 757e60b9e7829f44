import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalizeUrl, hostOf, MAX_URL_LENGTH, parseSeedUrl } from '../../src/url';
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

test('canonicalizeUrl strips what a browser strips around an href, and escapes a no-break space as it does', () => {
  assert.equal(canonicalizeUrl('\f\u0000/a\r\n', 'https://example.com/'), 'https://example.com/a');
  assert.equal(canonicalizeUrl('\u00a0/a\ufeff', 'https://example.com/'), 'https://example.com/%C2%A0/a%EF%BB%BF');
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

test('canonicalizeUrl: /%7euser, /%7Euser and /~user are one page; other escapes are upper-cased, never decoded', () => {
  for (const raw of ['http://x.com/%7euser', 'http://x.com/%7Euser', 'http://x.com/~user']) assert.equal(canonicalizeUrl(raw), 'http://x.com/~user', raw);
  assert.equal(canonicalizeUrl('http://x.com/%41%2d%5F%2e%30'), 'http://x.com/A-_.0');
  assert.equal(canonicalizeUrl('http://x.com/a%2fb%3f%25%20%c3%a9'), 'http://x.com/a%2Fb%3F%25%20%C3%A9');
});

test('canonicalizeUrl leaves an escape after a stray % alone, so that decoding cannot create a new escape', () => {
  assert.equal(canonicalizeUrl('http://x.com/%%37E'), 'http://x.com/%%37E');
  assert.equal(canonicalizeUrl('http://x.com/%7%46'), 'http://x.com/%7%46');
  assert.equal(canonicalizeUrl('http://x.com/100%/%7E'), 'http://x.com/100%/~');
});

test('canonicalizeUrl keeps escapes in the query byte for byte', () => {
  assert.equal(canonicalizeUrl('http://x.com/%7e?q=%7e%2f%41'), 'http://x.com/~?q=%7e%2f%41');
});

test('canonicalizeUrl drops URLs longer than MAX_URL_LENGTH once canonical; parseSeedUrl refuses them', () => {
  const prefix = 'https://example.com/';
  const longest = prefix + 'a'.repeat(MAX_URL_LENGTH - prefix.length);
  assert.equal(canonicalizeUrl(longest), longest);
  assert.equal(canonicalizeUrl(`${longest}b`), null);
  // Escapes count as they are sent: 683 "é" are 4,098 characters canonical.
  assert.equal(canonicalizeUrl(prefix + 'é'.repeat(683)), null);
  assert.throws(() => parseSeedUrl(`${longest}b`), { code: 'TCRAWL_INVALID_URL', message: /is longer than 2048 characters/ });
});

test('canonicalizeUrl compresses IPv6 hosts and keeps their port', () => {
  assert.equal(canonicalizeUrl('http://[::1]:8080/'), 'http://[::1]:8080/');
  assert.equal(canonicalizeUrl('http://[0:0:0:0:0:0:0:1]:80/a'), 'http://[::1]/a');
  assert.equal(canonicalizeUrl('https://[2001:DB8:0:0:1:0:0:1]:443'), 'https://[2001:db8::1:0:0:1]/');
  assert.equal(canonicalizeUrl('http://[::ffff:127.0.0.1]/'), 'http://[::ffff:7f00:1]/');
});

describe('canonicalizeUrl properties', () => {
  const hosts = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((ip) => `[${ip}]`));
  // Characters that exercise the parser: escapes, stray %, dots and slashes, backslashes, spaces, non-ASCII.
  const nasty = fc.string({ unit: fc.constantFrom('%', '2', 'e', 'E', '7', 'f', 'A', '.', '/', '\\', '?', '#', '&', '=', ' ', '~', ';', '@', ':', 'é', '日', '\u0000', '\t') });
  const urls = fc.oneof(
    fc.webUrl({ validSchemes: ['http', 'https'], withQueryParameters: true, withFragments: true }),
    fc.tuple(fc.constantFrom('http', 'HTTPS', 'hTtP'), hosts, nasty).map(([scheme, host, rest]) => `${scheme}://${host}/${rest}`),
  );

  it('is idempotent, and its output is canonical again', () => {
    fc.assert(
      fc.property(urls, (raw) => {
        const once = canonicalizeUrl(raw);
        if (once === null) return;
        assert.equal(canonicalizeUrl(once), once);
      }),
      { numRuns: 2000 },
    );
  });

  it('is idempotent for relative links resolved against a page', () => {
    fc.assert(
      fc.property(nasty, urls, (link, page) => {
        const once = canonicalizeUrl(link, page);
        if (once === null) return;
        assert.equal(canonicalizeUrl(once), once);
      }),
      { numRuns: 1000 },
    );
  });

  it('decodes escaped unreserved characters in the path, in either case', () => {
    const unreserved = fc.string({ unit: fc.constantFrom(...'AZaz09-._~'.split('')), minLength: 1 });
    fc.assert(
      fc.property(unreserved, fc.boolean(), (text, lower) => {
        const escaped = [...text].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');
        const expected = canonicalizeUrl(`http://x.com/p/${text}`);
        assert.equal(canonicalizeUrl(`http://x.com/p/${lower ? escaped.toLowerCase() : escaped.toUpperCase()}`), expected);
      }),
    );
  });

  it('upper-cases, and never decodes, escapes of other bytes in the path', () => {
    const reservedByte = fc.integer({ min: 0, max: 255 }).filter((b) => !/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)));
    fc.assert(
      fc.property(reservedByte, (byte) => {
        const hex = byte.toString(16).padStart(2, '0');
        assert.equal(canonicalizeUrl(`http://x.com/a%${hex.toLowerCase()}b`), `http://x.com/a%${hex.toUpperCase()}b`);
      }),
    );
  });

  it('keeps the query as is: order, case, escapes', () => {
    // Characters the WHATWG parser leaves raw in a special URL's query (it escapes space, ", #, <, >, ').
    const query = fc.string({ unit: fc.constantFrom(...'abcXYZ019-._~!$&()*+,;=:@/?%[]\\^`{|}'.split('')) });
    fc.assert(
      fc.property(query, (q) => {
        assert.equal(canonicalizeUrl(`http://x.com/p?${q}`), `http://x.com/p?${q}`);
      }),
    );
  });

  it('drops the fragment, whatever it holds', () => {
    fc.assert(
      fc.property(urls, fc.string(), (raw, fragment) => {
        // Stripped first: like the parser, which drops surrounding spaces and controls, but keeps them before a `#`.
        const withoutFragment = (raw.split('#')[0] as string).replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, '');
        assert.equal(canonicalizeUrl(`${withoutFragment}#${fragment}`), canonicalizeUrl(withoutFragment));
      }),
    );
  });

  it('drops exactly the default port of the scheme', () => {
    fc.assert(
      fc.property(fc.constantFrom('http', 'https'), fc.integer({ min: 1, max: 65535 }), fc.nat(2), (scheme, port, zeros) => {
        const isDefault = port === (scheme === 'http' ? 80 : 443);
        const spelled = `${'0'.repeat(zeros)}${port}`;
        assert.equal(canonicalizeUrl(`${scheme}://x.com:${spelled}/a`), isDefault ? `${scheme}://x.com/a` : `${scheme}://x.com:${port}/a`);
      }),
    );
  });

  it('resolves dot segments', () => {
    const segment = fc.stringMatching(/^[a-z0-9]{1,5}$/);
    // Each segment of the clean path may be preceded by `.`/`%2e` segments and `x/..` detours.
    const noise = fc.array(fc.constantFrom('./', '%2e/', '%2E/', 'zz/../', 'zz/%2e%2e/', 'zz/.%2E/'), { maxLength: 3 });
    fc.assert(
      fc.property(fc.array(fc.tuple(noise, segment), { minLength: 1, maxLength: 6 }), (parts) => {
        const clean = parts.map(([, s]) => s).join('/');
        const dotted = parts.map(([n, s]) => n.join('') + s).join('/');
        assert.equal(canonicalizeUrl(`http://x.com/${dotted}`), `http://x.com/${clean}`);
      }),
    );
  });

  it('spells every IPv6 address one way (RFC 5952: lower case, no leading zeros, longest zero run as ::)', () => {
    const group = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
    const address = fc.array(group, { minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(address, fc.nat(), fc.boolean(), (groups, seed, upper) => {
        const expected = `http://[${rfc5952(groups)}]:8080/`;
        for (const spelling of [fullForm(groups, seed), compressedForm(groups)]) {
          const host = upper ? spelling.toUpperCase() : spelling;
          assert.equal(canonicalizeUrl(`http://[${host}]:8080`), expected, host);
          assert.equal(hostOf(expected), `[${rfc5952(groups)}]:8080`);
        }
      }),
    );
  });
});

/** Each group in hex with 0–3 leading zeros, chosen from `seed`. */
function fullForm(groups: number[], seed: number): string {
  return groups.map((g, i) => g.toString(16).padStart(1 + ((seed >> (2 * i)) & 3), '0')).join(':');
}

/** The first run of zero groups (even a single one) written as `::`. */
function compressedForm(groups: number[]): string {
  const start = groups.indexOf(0);
  if (start === -1) return groups.map((g) => g.toString(16)).join(':');
  let end = start;
  while (groups[end] === 0) end++;
  return `${groups.slice(0, start).map((g) => g.toString(16)).join(':')}::${groups.slice(end).map((g) => g.toString(16)).join(':')}`;
}

/** RFC 5952 §4: the longest run of two or more zero groups (the first, on a tie) becomes `::`. */
function rfc5952(groups: number[]): string {
  let best = { start: -1, length: 1 };
  for (let i = 0; i < groups.length; ) {
    let j = i;
    while (groups[j] === 0) j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = (part: number[]) => part.map((g) => g.toString(16)).join(':');
  if (best.start === -1) return hex(groups);
  return `${hex(groups.slice(0, best.start))}::${hex(groups.slice(best.start + best.length))}`;
}
