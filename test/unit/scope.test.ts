import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isInScope, scopeRejection, scopeRulesFor, type ScopeRules } from '../../src/scope';

type ScopeSpec = Parameters<typeof scopeRulesFor>[0];

function rules(spec: Partial<ScopeSpec> & Pick<ScopeSpec, 'seeds'>): ScopeRules {
  return scopeRulesFor({ scope: 'host', include: [], exclude: [], ...spec });
}

test('scopeRulesFor collects seed hosts (with port) and registrable domains', () => {
  const result = rules({
    seeds: ['https://www.example.com/', 'https://blog.example.com/a', 'http://127.0.0.1:8080/', 'http://localhost/', 'https://shop.example.co.uk/'],
  });
  assert.deepEqual(result.hosts, ['www.example.com', 'blog.example.com', '127.0.0.1:8080', 'localhost', 'shop.example.co.uk']);
  assert.deepEqual(result.domains, ['example.com', '127.0.0.1', 'localhost', 'example.co.uk']);
});

test('rules are plain JSON', () => {
  const result = rules({ seeds: ['https://example.com/'], include: ['a'], exclude: ['b'] });
  assert.deepEqual(JSON.parse(JSON.stringify(result)), result);
});

test('host scope: exact host only, scheme does not matter, port does', () => {
  const r = rules({ seeds: ['https://www.example.com/'] });
  assert.equal(isInScope('https://www.example.com/x', r), true);
  assert.equal(isInScope('http://www.example.com/x', r), true);
  assert.equal(scopeRejection('https://blog.example.com/', r), 'off_scope');
  assert.equal(scopeRejection('https://example.com/', r), 'off_scope');
  assert.equal(scopeRejection('https://www.example.com:8443/', r), 'off_scope');
});

test('domain scope: www and blog subdomains share example.com', () => {
  const r = rules({ seeds: ['https://www.example.com/'], scope: 'domain' });
  assert.equal(isInScope('https://blog.example.com/post', r), true);
  assert.equal(isInScope('https://example.com/', r), true);
  assert.equal(isInScope('https://a.b.example.com:8080/', r), true);
  assert.equal(scopeRejection('https://example.org/', r), 'off_scope');
  assert.equal(scopeRejection('https://notexample.com/', r), 'off_scope');
});

test('domain scope handles multi-label public suffixes (co.uk)', () => {
  const r = rules({ seeds: ['https://shop.example.co.uk/'], scope: 'domain' });
  assert.equal(isInScope('https://www.example.co.uk/', r), true);
  assert.equal(isInScope('https://other.co.uk/', r), false);
});

test('domain scope treats private suffixes as separate sites (github.io)', () => {
  const r = rules({ seeds: ['https://alice.github.io/'], scope: 'domain' });
  assert.equal(isInScope('https://alice.github.io/repo', r), true);
  assert.equal(isInScope('https://bob.github.io/', r), false);
});

test('IP seeds scope by the address itself', () => {
  const host = rules({ seeds: ['http://127.0.0.1:8080/'] });
  assert.equal(isInScope('http://127.0.0.1:8080/a', host), true);
  assert.equal(isInScope('http://127.0.0.1:9090/a', host), false);
  const domain = rules({ seeds: ['http://127.0.0.1:8080/'], scope: 'domain' });
  assert.equal(isInScope('http://127.0.0.1:9090/a', domain), true);
  assert.equal(isInScope('http://127.0.0.2/', domain), false);
  const v6 = rules({ seeds: ['http://[::1]:8080/'], scope: 'domain' });
  assert.equal(isInScope('http://[::1]/', v6), true);
});

test('any scope accepts every host', () => {
  const r = rules({ seeds: ['https://example.com/'], scope: 'any' });
  assert.equal(isInScope('https://elsewhere.org/', r), true);
});

test('unparsable URLs are off scope', () => {
  assert.equal(scopeRejection('not a url', rules({ seeds: ['https://example.com/'], scope: 'any' })), 'off_scope');
});

test('include: at least one regex must match the full URL', () => {
  const r = rules({ seeds: ['https://example.com/'], include: ['/docs/', '\\?page=\\d+$'] });
  assert.equal(isInScope('https://example.com/docs/intro', r), true);
  assert.equal(isInScope('https://example.com/list?page=2', r), true);
  assert.equal(scopeRejection('https://example.com/blog/', r), 'not_included');
});

test('regexes see the whole URL, host included', () => {
  const r = rules({ seeds: ['https://example.com/'], scope: 'any', include: ['^https://example\\.com/'] });
  assert.equal(isInScope('https://example.com/a', r), true);
  assert.equal(isInScope('https://other.com/example.com/', r), false);
});

test('exclude wins over include', () => {
  const r = rules({ seeds: ['https://example.com/'], include: ['/docs/'], exclude: ['\\.pdf$'] });
  assert.equal(scopeRejection('https://example.com/docs/a.pdf', r), 'excluded');
  assert.equal(scopeRejection('https://example.com/docs/a.html', r), null);
});

test('scope is checked before include/exclude', () => {
  const r = rules({ seeds: ['https://example.com/'], exclude: ['.*'] });
  assert.equal(scopeRejection('https://other.com/', r), 'off_scope');
});

test('repeated checks against the same rules stay correct (cached regexes carry no state)', () => {
  const r = rules({ seeds: ['https://example.com/'], include: ['/a$'] });
  for (let i = 0; i < 3; i++) {
    assert.equal(isInScope('https://example.com/a', r), true);
    assert.equal(isInScope('https://example.com/b', r), false);
  }
});
