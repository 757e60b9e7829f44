import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { InvalidArgumentError } from 'commander';
import { parseCrawlSpec } from '../../src/spec';
import { crawlSpecFrom, numberArg } from '../../src/cli/crawl-options';
import { InvalidInputError } from '../../src/errors';

const SEED = 'https://example.com/';

/** The message of the InvalidInputError (TCRAWL_INVALID_SPEC) that `input` is refused with. */
function refusal(input: unknown): string {
  try {
    parseCrawlSpec(input);
  } catch (error) {
    assert.ok(error instanceof InvalidInputError, `expected InvalidInputError, got ${String(error)}`);
    assert.equal(error.code, 'TCRAWL_INVALID_SPEC');
    return error.message;
  }
  assert.fail(`accepted ${JSON.stringify(input)}`);
}

function seedRefusal(seed: unknown): string {
  return refusal({ seeds: [seed] });
}

describe('header values (userAgent)', () => {
  it('regression: a non-Latin-1 User-Agent ("tcrawl — my bot") is refused; it passed and undici threw on every request, wedging the crawl', () => {
    const message = refusal({ seeds: [SEED], userAgent: 'tcrawl — my bot' });
    assert.match(message, /userAgent: "—" \(U\+2014\) at position 7 is not allowed in an HTTP header value \(RFC 9110 §5\.5/);
  });

  it('control characters are refused by code point, without printing them', () => {
    for (const [ua, code] of [['a\nb', 'U+000A'], ['a\r\nX-Evil: 1', 'U+000D'], ['a\u0000', 'U+0000'], ['a\u007f', 'U+007F'], ['a\u0085', 'U+0085']]) {
      const message = refusal({ seeds: [SEED], userAgent: ua });
      assert.match(message, new RegExp(`userAgent: a control character \\(${code.replace('+', '\\+')}\\) at position 1 `), JSON.stringify(ua));
    }
  });

  it('positions count characters, not UTF-16 units', () => {
    assert.match(refusal({ seeds: [SEED], userAgent: '🤖 bot ✓' }), /"🤖" \(U\+1F916\) at position 0/);
    assert.match(refusal({ seeds: [SEED], userAgent: 'bot 🤖 ✓' }), /"🤖" \(U\+1F916\) at position 4/);
  });

  it('tabs and printable Latin-1 are accepted; surrounding whitespace is trimmed; blank is refused', () => {
    for (const ua of ['bot/1.0\t(tab)', 'café-bot/1.0 © 2026', 'a\u00a0b\u00ffc']) {
      assert.equal(parseCrawlSpec({ seeds: [SEED], userAgent: ua }).userAgent, ua);
    }
    assert.equal(parseCrawlSpec({ seeds: [SEED], userAgent: '  bot/1.0 \t' }).userAgent, 'bot/1.0');
    assert.match(refusal({ seeds: [SEED], userAgent: '   ' }), /userAgent: must not be blank/);
  });

  it('the default User-Agent passes its own check', () => {
    assert.equal(parseCrawlSpec({ seeds: [SEED] }).userAgent, 'tcrawl/0.1 (+https://github.com/tcrawl/tcrawl)');
  });
});

describe('seeds', () => {
  it('come out canonical from parseCrawlSpec, not only from the CLI', () => {
    assert.deepEqual(parseCrawlSpec({ seeds: ['HTTP://Example.COM:80/a/../b#top', ' https://x.example '] }).seeds, ['http://example.com/b', 'https://x.example/']);
  });

  it('valid IDN hosts are accepted and punycoded', () => {
    assert.deepEqual(parseCrawlSpec({ seeds: ['http://bücher.example/'] }).seeds, ['http://xn--bcher-kva.example/']);
    assert.deepEqual(parseCrawlSpec({ seeds: ['https://MÜNCHEN.example/straße'] }).seeds, ['https://xn--mnchen-3ya.example/stra%C3%9Fe']);
  });

  it('relative URLs are refused, naming the seed and its index', () => {
    assert.match(refusal({ seeds: [SEED, '/path'] }), /seeds\.1: "\/path" is a relative URL: a seed must be absolute/);
    for (const seed of ['./a', '../a', '?q=1', '#top', '..']) assert.match(seedRefusal(seed), /seeds\.0: .* is a relative URL/, seed);
    assert.match(seedRefusal('//example.com/a'), /seeds\.0: "\/\/example\.com\/a" has no scheme \(did you mean https:\/\/example\.com\/a\?\)/);
    assert.match(seedRefusal('example.com/a'), /seeds\.0: "example\.com\/a" is not an absolute URL \(did you mean https:\/\/example\.com\/a\?\)/);
  });

  it('schemes other than http(s) are refused', () => {
    for (const seed of ['ftp://example.com/f', 'javascript:alert(1)', 'data:text/html,hi', 'file:///etc/passwd', 'mailto:a@example.com', 'ws://example.com/']) {
      assert.match(seedRefusal(seed), /seeds\.0: ".*" is not an http\(s\) URL/, seed);
    }
  });

  it('hosts the WHATWG parser refuses are refused; those it accepts are left to DNS', () => {
    for (const seed of ['http://exa mple.com/', 'http://', 'http://[::1/', 'http://256.0.0.1/', 'http://a<b.com/', 'http://%zz.com/']) {
      assert.match(seedRefusal(seed), /seeds\.0: ".*" is not a valid URL/, seed);
    }
    assert.deepEqual(parseCrawlSpec({ seeds: ['http://-x-.com', 'http://a_b.example/', 'http://0x7f.1/', 'http://[0:0::1]:8080/'] }).seeds, [
      'http://-x-.com/',
      'http://a_b.example/',
      'http://127.0.0.1/',
      'http://[::1]:8080/',
    ]);
  });

  it('credentials are refused, and the message does not repeat them', () => {
    for (const seed of ['http://user:hunter2@example.com/', 'https://hunter2@example.com/', 'http://:hunter2@example.com/']) {
      const message = seedRefusal(seed);
      assert.match(message, /seeds\.0: "https?:\/\/example\.com\/" was given with credentials \(user:password@\), which tcrawl never sends and a spec must not hold/);
      assert.doesNotMatch(message, /hunter2/);
    }
  });

  it('an empty, missing or mistyped seed list is refused', () => {
    assert.match(refusal({ seeds: [] }), /seeds: needs at least one seed URL/);
    assert.match(refusal({}), /seeds: needs at least one seed URL/);
    assert.match(refusal({ seeds: SEED }), /seeds: Invalid input: expected array, received string/);
    assert.match(refusal({ seeds: [42] }), /seeds\.0: Invalid input: expected string, received number/);
    assert.match(seedRefusal('  '), /seeds\.0: a seed URL is empty/);
  });
});

describe('outputs and binary rules', () => {
  it('an output of an unknown type, or without its path, is refused naming it', () => {
    assert.match(refusal({ seeds: [SEED], outputs: [{ type: 'zip', path: 'x.zip' }] }), /outputs\.0/);
    assert.match(refusal({ seeds: [SEED], outputs: [{ type: 'mirror' }] }), /outputs\.0\.dir/);
    assert.match(refusal({ seeds: [SEED], outputs: [{ type: 'jsonl', path: 'x.jsonl', rotateBytes: 0 }] }), /outputs\.0\.rotateBytes: Too small/);
    assert.deepEqual(parseCrawlSpec({ seeds: [SEED], outputs: [{ type: 'jsonl', path: 'x.jsonl' }] }).outputs, [{ type: 'jsonl', path: 'x.jsonl', what: 'items' }]);
  });

  it('a binary rule that would read its responses is refused: it reads nothing', () => {
    assert.match(refusal({ seeds: [SEED], rules: [{ glob: '**/*.png', parse: 'binary', follow: ['a'] }] }), /rules\.0\.follow: a rule with parse: "binary" reads nothing/);
    assert.match(refusal({ seeds: [SEED], rules: [{ parse: 'binary', items: { selector: 'li', fields: { a: 'b' } } }] }), /rules\.0\.items: a rule with parse: "binary"/);
    assert.equal(parseCrawlSpec({ seeds: [SEED], rules: [{ glob: '**/*.png', parse: 'binary' }] }).rules[0].parse, 'binary');
  });
});

describe('the rest of the spec', () => {
  it('unknown keys are refused with the known ones, at the top level and nested', () => {
    assert.match(refusal({ seeds: [SEED], maxPagez: 3 }), /unknown key "maxPagez" at \(top level\) \(known keys: seeds, maxPages, .*userAgent.*\)/);
    assert.match(refusal({ seeds: [SEED], items: { selector: 'li', fields: {}, filds: {} } }), /unknown key "filds" at items \(known keys: selector, fields\)/);
    assert.match(refusal({ seeds: [SEED], rateGroups: [{ name: 'a', hosts: ['a.example'], rate: 1, burst: 2 }] }), /unknown key "burst" at rateGroups\.0 \(known keys: name, hosts, rate, proxies\)/);
  });

  it('wrong types are refused naming the key', () => {
    assert.match(refusal({ seeds: [SEED], maxPages: '10' }), /maxPages: Invalid input: expected number, received string/);
    assert.match(refusal({ seeds: [SEED], obeyRobots: 'false' }), /obeyRobots: Invalid input: expected boolean, received string/);
    assert.match(refusal({ seeds: [SEED], include: 'x' }), /include: Invalid input: expected array, received string/);
    assert.match(refusal({ seeds: [SEED], scope: 'planet' }), /scope: Invalid option: expected one of "host"\|"domain"\|"any"/);
    assert.match(refusal({ seeds: [SEED], items: 'li' }), /items: Invalid input: expected object, received string/);
  });

  it('out-of-range numbers are refused naming the key', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ rate: -1 }, /rate: Too small: expected number to be >=0/],
      [{ totalRate: -0.5 }, /totalRate: Too small/],
      [{ batchSize: 0 }, /batchSize: Too small: expected number to be >0/],
      [{ batchSize: 5000 }, /batchSize: Too big: expected number to be <=1000/],
      [{ batchSize: 1.5 }, /batchSize: Invalid input: expected int, received number/],
      [{ maxPages: 0 }, /maxPages: Too small/],
      [{ concurrency: 0 }, /concurrency: Too small/],
      [{ maxDepth: -1 }, /maxDepth: Too small/],
      [{ targetConcurrency: 0 }, /targetConcurrency: Too small/],
      [{ banStatuses: [99] }, /banStatuses\.0: Too small/],
      [{ banStatuses: [600] }, /banStatuses\.0: Too big/],
      // Not expressible in JSON, but a script (or a flag parser) could hand them over.
      [{ rate: Number.NaN }, /rate: Invalid input: expected number, received NaN/],
      [{ rate: Number.POSITIVE_INFINITY }, /rate: Invalid input: expected number, received Infinity/],
      [{ maxPages: Number.MAX_SAFE_INTEGER + 2 }, /maxPages: Too big/],
    ];
    for (const [values, message] of cases) assert.match(refusal({ seeds: [SEED], ...values }), message, JSON.stringify(values));
  });

  it('invalid regexes are refused naming the key, the index and the reason', () => {
    assert.match(refusal({ seeds: [SEED], include: ['ok', '(['] }), /include\.1: is not a valid regular expression \(\/\(\[\/: Unterminated character class\)/);
    assert.match(refusal({ seeds: [SEED], exclude: ['a{2,1}'] }), /exclude\.0: is not a valid regular expression \(.*numbers out of order/);
    assert.match(refusal({ seeds: [SEED], banBodyMarkers: ['(?<x'] }), /banBodyMarkers\.0: is not a valid regular expression/);
  });

  it('invalid item selectors are refused by the schema, naming the field', () => {
    assert.match(refusal({ seeds: [SEED], items: { selector: 'li', fields: { price: '::bogus(' } } }), /items\.fields\.price: invalid CSS selector "::bogus\("/);
    assert.match(refusal({ seeds: [SEED], items: { selector: 'div[', fields: {} } }), /items\.selector: invalid CSS selector "div\["/);
    assert.match(refusal({ seeds: [SEED], items: { selector: 5 } }), /items\.selector: must be string or object$/m);
  });

  it('a NUL in any spec string is refused: the spec is stored as jsonb, which cannot hold U+0000', () => {
    const message = refusal({
      seeds: [SEED],
      include: ['a\u0000'],
      rateGroups: [{ name: 'g\u0000', hosts: ['h\u0000'], rate: 1 }],
      items: { selector: 'li\u0000', fields: { 'k\u0000': 'p', ok: 'p\u0000' } },
    });
    for (const where of ['include\\.0', 'rateGroups\\.0\\.name', 'rateGroups\\.0\\.hosts\\.0', 'items\\.selector', 'items\\.fields\\.k\\\\u0000 \\(the key\\)', 'items\\.fields\\.ok']) {
      assert.match(message, new RegExp(`^  ${where}: must not contain U\\+0000 \\(NUL\\), which Postgres cannot store$`, 'm'), where);
    }
    // A seed is safe: its canonical form escapes the NUL.
    assert.deepEqual(parseCrawlSpec({ seeds: ['https://example.com/a\u0000b'] }).seeds, ['https://example.com/a%00b']);
  });

  it('control characters in echoed keys are escaped, not sent to the terminal', () => {
    assert.match(refusal({ seeds: [SEED], 'bad\nkey\u001b[2J': 1 }), /unknown key "bad\\u000akey\\u001b\[2J" at \(top level\)/);
  });

  it('a parsed spec, stored as JSON and parsed again (as workers do), comes back the same', () => {
    const spec = parseCrawlSpec({
      seeds: ['HTTP://Bücher.example/%7ea/../b', 'https://x.example'],
      userAgent: '  bot/1.0  ',
      include: ['/products/'],
      items: { selector: 'li', fields: { name: 'h2', link: 'a@href' } },
      rateGroups: [{ name: 'api', hosts: ['*.example.net'], rate: 2 }],
    });
    assert.deepEqual(parseCrawlSpec(JSON.parse(JSON.stringify(spec))), spec);
  });

  it('every problem is reported at once', () => {
    const message = refusal({ seeds: ['ftp://x/'], rate: -1, userAgent: 'a\nb', include: ['('] });
    for (const key of ['seeds.0', 'rate', 'userAgent', 'include.0']) assert.match(message, new RegExp(`^  ${key.replace('.', '\\.')}: `, 'm'), key);
  });
});

describe('crawlSpecFrom (CLI flags over a spec file)', () => {
  function specFile(content: string, name = 'spec.json'): string {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tcrawl-spec-')), name);
    writeFileSync(file, content);
    return file;
  }

  function cliRefusal(seeds: string[], flags: Parameters<typeof crawlSpecFrom>[1]): InvalidInputError {
    try {
      crawlSpecFrom(seeds, flags);
    } catch (error) {
      assert.ok(error instanceof InvalidInputError, String(error));
      return error;
    }
    assert.fail('accepted');
  }

  it('flags go through the same schema: the User-Agent regression, a negative rate, batchSize out of range', () => {
    const error = cliRefusal(['http://x/'], { userAgent: 'tcrawl — my bot', rate: -1, batchSize: 5000 });
    assert.equal(error.code, 'TCRAWL_INVALID_SPEC');
    assert.match(error.message, /^Invalid crawl options:/);
    assert.match(error.message, /userAgent: "—" \(U\+2014\) at position 7/);
    assert.match(error.message, /rate: Too small/);
    assert.match(error.message, /batchSize: Too big/);
  });

  it('seed arguments replace the file\'s seeds and come out canonical; flags override file values', () => {
    const file = specFile(JSON.stringify({ seeds: ['https://from-file.example/'], maxPages: 5, rate: 3 }));
    const spec = crawlSpecFrom(['HTTP://Bücher.Example:80/./a'], { spec: file, rate: 0 });
    assert.deepEqual(spec.seeds, ['http://xn--bcher-kva.example/a']);
    assert.equal(spec.maxPages, 5);
    assert.equal(spec.rate, 0);
  });

  it('a bad seed in the spec file is refused naming the file', () => {
    const file = specFile(JSON.stringify({ seeds: ['https://user:pw@example.com/'] }));
    assert.match(cliRefusal([], { spec: file }).message, new RegExp(`^Invalid crawl spec \\(${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} and flags\\):\\n  seeds\\.0: .*credentials`));
  });

  it('a spec file that is not a JSON object is refused', () => {
    assert.match(cliRefusal([], { spec: specFile('{"seeds": [') }).message, /is not valid JSON/);
    assert.match(cliRefusal([], { spec: specFile('["https://example.com/"]') }).message, /must hold a JSON object/);
    assert.match(cliRefusal([], { spec: '/nonexistent/spec.json' }).message, /Cannot read spec file/);
  });

  it('a .yaml or .yml spec file is read as YAML 1.2, through the same schema', () => {
    const yaml = ['seeds:', '  - https://shop.example.com/', 'maxPages: 50', 'include: ["/products/"]', 'sitemaps: true', 'items:', '  selector: .product', '  fields:', '    name: h2', '    link: a@href', ''].join('\n');
    const spec = crawlSpecFrom([], { spec: specFile(yaml, 'products.yaml') });
    assert.deepEqual(spec.seeds, ['https://shop.example.com/']);
    assert.equal(spec.maxPages, 50);
    assert.equal(spec.sitemaps, true);
    assert.deepEqual(spec.items?.fields, { name: 'h2', link: 'a@href' });
    // YAML 1.1's `yes` is a string in 1.2: the schema refuses it as a boolean rather than guessing.
    assert.match(cliRefusal([], { spec: specFile('seeds: [https://x.example/]\nsitemaps: yes\n', 'spec.yml') }).message, /sitemaps: /);
  });

  it('a broken YAML spec file is refused with where it broke; duplicate keys and non-mappings too', () => {
    assert.match(cliRefusal([], { spec: specFile('seeds: [https://x.example/\nmaxPages: 5\n', 'spec.yaml') }).message, /is not valid YAML: .*line \d+/s);
    assert.match(cliRefusal([], { spec: specFile('maxPages: 5\nmaxPages: 6\n', 'spec.yaml') }).message, /is not valid YAML: .*unique/is);
    assert.match(cliRefusal([], { spec: specFile('- https://x.example/\n', 'spec.yaml') }).message, /must hold a mapping of spec keys/);
  });
});

describe('numberArg (numeric flags)', () => {
  it('refuses what is not a finite number, NaN and Infinity included', () => {
    for (const value of ['fast', '', ' ', 'NaN', 'Infinity', '-Infinity', '1,5']) {
      assert.throws(() => numberArg(value), (error: unknown) => error instanceof InvalidArgumentError && error.message === `"${value}" is not a number.`, value);
    }
  });

  it('leaves ranges to the schema', () => {
    assert.equal(numberArg('-1'), -1);
    assert.equal(numberArg('1e3'), 1000);
    assert.equal(numberArg('0.5'), 0.5);
  });
});
