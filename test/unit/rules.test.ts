import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseCrawlSpec } from '../../src/spec';
import { applyRule, type ResponseContext } from '../../src/rules/apply';
import { compileRules, ruleFor } from '../../src/rules/compile';
import { coerceValue } from '../../src/rules/coerce';
import { ParseError, parseDocument } from '../../src/rules/document';
import { globToRegExp } from '../../src/rules/glob';
import { requestKey, type CrawlRequest } from '../../src/rules/request';
import type { BodyKind } from '../../src/decode';

const API = 'https://api.example/';

/** The compiled rules of a spec with these keys. */
function rulesOf(spec: Record<string, unknown>) {
  return compileRules(parseCrawlSpec({ seeds: [API], ...spec }));
}

function run(spec: Record<string, unknown>, kind: BodyKind, body: string, request: CrawlRequest = { method: 'GET', url: API }, depth = 0) {
  const rules = rulesOf(spec);
  const rule = ruleFor(rules, request.url, request.label);
  const context: ResponseContext = { request, finalUrl: request.url, depth, maxDepth: 5 };
  return { rule, ...applyRule(rule, parseDocument(kind, body, request.url), context) };
}

const clans = JSON.stringify({ clans: [{ id: 907, name: 'Red' }, { id: 12, name: 'Blue' }, { id: 'x y', name: 'Odd' }], page: 1, total: 250 });

describe('rules: following', () => {
  it('a JSONPath of ids through a template makes one request per id, URL-encoded, with the label', () => {
    const out = run({ rules: [{ url: '/clans', follow: [{ jsonPath: '$.clans[*].id', template: '/clans/{id}/members', label: 'members' }] }] }, 'json', clans, { method: 'GET', url: `${API}clans?page=1` });
    assert.deepEqual(
      out.requests.map((r) => [r.request.url, r.request.label, r.depth]),
      [
        [`${API}clans/907/members`, 'members', 1],
        [`${API}clans/12/members`, 'members', 1],
        [`${API}clans/x%20y/members`, 'members', 1],
      ],
    );
    assert.equal(out.found, 3);
  });

  it('a regex over the body yields ids (group 1), a named group `value` wins', () => {
    const html = '<a href="/p?id=41">x</a> <a href="/p?id=42">y</a> <a href="/p?id=41">again</a>';
    const byGroup = run({ rules: [{ follow: [{ regex: 'id=(\\d+)', template: '/item/{id}' }] }] }, 'html', html);
    assert.deepEqual(byGroup.requests.map((r) => r.request.url), [`${API}item/41`, `${API}item/42`]);
    const named = run({ rules: [{ follow: [{ regex: '(p)\\?id=(?<value>\\d+)', template: '/n/{id}' }] }] }, 'html', html);
    assert.deepEqual(named.requests.map((r) => r.request.url), [`${API}n/41`, `${API}n/42`]);
  });

  it('a JSONPath then a regex: account names out of URLs; external and malformed ones yield nothing', () => {
    const posts = JSON.stringify({ posts: [{ source_url: 'https://alice.reblog.test/post/1' }, { source_url: 'https://other.example/x' }, { source_url: 'not a url' }, { source_url: null }, {}] });
    const out = run({ rules: [{ follow: [{ jsonPath: '$.posts[*].source_url', regex: '^https://([a-z0-9-]+)\\.reblog\\.test/', template: '/v1/blog/{id}/posts' }] }] }, 'json', posts);
    assert.deepEqual(out.requests.map((r) => r.request.url), [`${API}v1/blog/alice/posts`]);
  });

  it('CSS follow reads href by default, another attribute when asked; links beyond a maxDepth are counted, not followed', () => {
    const html = '<a class="n" href="/a">A</a><img class="n" data-src="/img">';
    const out = run({ rules: [{ follow: ['a.n', { css: 'img', attr: 'data-src', maxDepth: 0 }] }] }, 'html', html);
    assert.deepEqual(out.requests.map((r) => r.request.url), [`${API}a`]);
    assert.equal(out.found, 2);
  });

  it('POST bodies: JSON with {id} keeping its type, form fields, and query parameters; two bodies to one URL are two keys', () => {
    const out = run({ rules: [{ follow: [{ jsonPath: '$.clans[0:2].id', template: '/search', method: 'POST', body: { clan: '{id}', q: 'c-{id}' }, query: { v: '{id}' } }] }] }, 'json', clans);
    const [first, second] = out.requests.map((r) => r.request);
    assert.deepEqual(first, { method: 'POST', url: `${API}search?v=907`, body: '{"clan":907,"q":"c-907"}', contentType: 'application/json' });
    assert.notEqual(requestKey(first!), requestKey(second!));
    assert.match(requestKey(first!), /^POST https:\/\/api\.example\/search\?v=907 sha256:[0-9a-f]{64}$/);
    const form = run({ rules: [{ follow: [{ jsonPath: '$.clans[0].id', template: '/f', method: 'POST', form: { id: '{id}', kind: 'a b' } }] }] }, 'json', clans);
    assert.deepEqual(form.requests[0]!.request, { method: 'POST', url: `${API}f`, body: 'id=907&kind=a+b', contentType: 'application/x-www-form-urlencoded' });
  });

  it('a plain GET is keyed by its URL alone', () => {
    assert.equal(requestKey({ method: 'GET', url: `${API}x` }), `${API}x`);
    assert.equal(requestKey({ method: 'GET', url: `${API}x`, label: 'l' }), `${API}x`);
  });
});

describe('rules: pagination', () => {
  const page = (n: number, size: number) => JSON.stringify({ clans: Array.from({ length: size }, (_, i) => ({ id: n * 100 + i })), total: 250 });
  const listing = { url: '/clans', paginate: { param: 'page', stopWhenEmpty: '$.clans[*]' } };

  it('page numbers: the next page at the same depth and label, stopping on an empty page', () => {
    const request: CrawlRequest = { method: 'GET', url: `${API}clans?page=2&limit=100`, label: 'list' };
    const next = run({ rules: [listing] }, 'json', page(2, 100), request, 3);
    assert.deepEqual(next.requests, [{ request: { method: 'GET', url: `${API}clans?page=3&limit=100`, label: 'list', page: 1 }, depth: 3 }]);
    assert.deepEqual(run({ rules: [listing] }, 'json', page(4, 0), request).requests, []);
  });

  it('a URL without the parameter starts from `start`', () => {
    const next = run({ rules: [listing] }, 'json', page(1, 100), { method: 'GET', url: `${API}clans` });
    assert.equal(next.requests[0]!.request.url, `${API}clans?page=2`);
  });

  it('a total stops page numbers (with perPage) and offsets', () => {
    const byPage = { url: '/clans', paginate: { param: 'page', total: '$.total', perPage: 100 } };
    assert.equal(run({ rules: [byPage] }, 'json', page(2, 100), { method: 'GET', url: `${API}clans?page=2` }).requests.length, 1);
    assert.equal(run({ rules: [byPage] }, 'json', page(3, 50), { method: 'GET', url: `${API}clans?page=3` }).requests.length, 0);
    const byOffset = { url: '/clans', paginate: { param: 'offset', type: 'offset', step: 100, total: '$.total' } };
    assert.equal(run({ rules: [byOffset] }, 'json', page(1, 100), { method: 'GET', url: `${API}clans?offset=100` }).requests[0]!.request.url, `${API}clans?offset=200`);
    assert.equal(run({ rules: [byOffset] }, 'json', page(1, 50), { method: 'GET', url: `${API}clans?offset=200` }).requests.length, 0);
  });

  it('cursors: the next cursor from the response; a missing or null one stops', () => {
    const rule = { paginate: { param: 'after', type: 'cursor', cursor: '$.next' } };
    assert.equal(run({ rules: [rule] }, 'json', '{"next":"c2=="}').requests[0]!.request.url, `${API}?after=c2%3D%3D`);
    assert.deepEqual(run({ rules: [rule] }, 'json', '{"next":null}').requests, []);
    assert.deepEqual(run({ rules: [rule] }, 'json', '{}').requests, []);
  });

  it('a next-page link by selector, and maxPages caps how many pages are followed', () => {
    const rule = { paginate: { next: 'a[rel=next]', maxPages: 3 } };
    const html = '<a rel="next" href="/list?p=2">next</a>';
    assert.equal(run({ rules: [rule] }, 'html', html).requests[0]!.request.url, `${API}list?p=2`);
    assert.deepEqual(run({ rules: [rule] }, 'html', html, { method: 'GET', url: `${API}list?p=3`, page: 2 }).requests, []);
  });
});

describe('rules: items', () => {
  it('JSON items keep their types; fields by JSONPath, from the URL, coerced', () => {
    const members = JSON.stringify({ members: [{ name: 'Ann', level: '12', joined: 1700000000, active: 'yes', tags: ['a', 'b'] }, { name: 'Bo', level: 7 }] });
    const fields = { name: '$.name', level: { jsonPath: '$.level', type: 'integer' }, joined: { jsonPath: '$.joined', type: 'date' }, active: { jsonPath: '$.active', type: 'boolean' }, tags: { jsonPath: '$.tags[*]', all: true }, clan: { from: 'url', regex: '/clans/(\\d+)/', type: 'integer' } };
    const out = run({ rules: [{ items: { selector: '$.members[*]', fields } }] }, 'json', members, { method: 'GET', url: `${API}clans/907/members` });
    assert.deepEqual(out.items, [
      { name: 'Ann', level: 12, joined: '2023-11-14T22:13:20.000Z', active: true, tags: ['a', 'b'], clan: 907 },
      { name: 'Bo', level: 7, joined: null, active: null, tags: [], clan: 907 },
    ]);
  });

  it('without fields a JSON item is saved as it is', () => {
    const out = run({ rules: [{ items: { selector: '$.members[*]' } }] }, 'json', '{"members":[{"a":1},2]}');
    assert.deepEqual(out.items, [{ a: 1 }, { value: 2 }]);
  });

  it('HTML fields: text, attribute (absolute), inner HTML, a regex on the text', () => {
    const html = '<div class="p"><a href="/x">Item <b>one</b></a><span class="price">$1,234.50 each</span></div>';
    const fields = { name: 'a', link: 'a@href', markup: { css: 'a', html: true }, price: { css: '.price', type: 'number' }, cents: { css: '.price', regex: '\\.(\\d+)' } };
    assert.deepEqual(run({ rules: [{ items: { selector: '.p', fields } }] }, 'html', html).items, [{ name: 'Item one', link: `${API}x`, markup: 'Item <b>one</b>', price: 1234.5, cents: '50' }]);
  });

  it('XML responses are read with CSS', () => {
    const xml = '<feed><entry><id>7</id><link href="https://api.example/e/7"/></entry></feed>';
    const out = run({ rules: [{ follow: [{ css: 'entry > link' }], items: { selector: 'entry', fields: { id: { css: 'id', type: 'integer' } } } }] }, 'xml', xml);
    assert.deepEqual(out.items, [{ id: 7 }]);
    assert.deepEqual(out.requests.map((r) => r.request.url), [`${API}e/7`]);
  });

  it('coercion: what does not coerce is null, never an error', () => {
    assert.equal(coerceValue('twelve', 'number'), null);
    assert.equal(coerceValue('maybe', 'boolean'), null);
    assert.equal(coerceValue('not a date', 'date'), null);
    assert.equal(coerceValue({ a: 1 }, 'string'), '{"a":1}');
    assert.equal(coerceValue(1.9, 'integer'), 1);
  });
});

describe('rules: matching and parsing', () => {
  const spec = {
    rules: [
      { name: 'members', label: 'members', follow: [] },
      { name: 'clan pages', glob: 'https://api.example/clans/*/page', follow: [] },
      { name: 'lists', url: '^https://api\\.example/clans', follow: [] },
    ],
  };

  it('rules are tried in order by label, glob and regex; the fallback takes the rest', () => {
    const rules = rulesOf(spec);
    assert.equal(ruleFor(rules, `${API}clans/1/members`, 'members').name, 'members');
    assert.equal(ruleFor(rules, `${API}clans/1/page`, undefined).name, 'clan pages');
    assert.equal(ruleFor(rules, `${API}clans/1/2/page`, undefined).name, 'lists');
    assert.equal(ruleFor(rules, `${API}other`, undefined).name, 'default');
  });

  it('globs: * stops at /, ** does not, ? is literal', () => {
    assert.ok(globToRegExp('https://*.example/a?b=*').test('https://api.example/a?b=1'));
    assert.ok(!globToRegExp('https://x/*').test('https://x/a/b'));
    assert.ok(globToRegExp('https://x/**').test('https://x/a/b'));
    assert.ok(!globToRegExp('https://x/a?').test('https://x/ab'));
  });

  it('the fallback follows HTML links and ignores JSON; a user rule that reads CSS from JSON fails parse_error', () => {
    assert.deepEqual(run({}, 'json', clans).requests, []);
    assert.throws(() => run({ rules: [{ follow: ['a'] }] }, 'json', clans), ParseError);
  });

  it('a body that is not JSON fails parse_error; a byte order mark is forgiven', () => {
    assert.throws(() => parseDocument('json', '{"a":', API), (error: unknown) => error instanceof ParseError && /not valid JSON/.test(error.message));
    assert.deepEqual(parseDocument('json', '\uFEFF{"a":1}', API).json, { a: 1 });
  });
});
