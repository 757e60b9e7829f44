import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ROBOTS_MAX_BYTES, allowAll, disallowAll, parseRobots, productToken, robotsUrlFor } from '../../src/robots';

const ROBOTS_URL = 'https://example.com/robots.txt';
const UA = 'tcrawl/0.1 (+https://github.com/tcrawl/tcrawl)';
const page = (path: string) => `https://example.com${path}`;

function policy(body: string, userAgent = UA) {
  return parseRobots(ROBOTS_URL, body, userAgent);
}

test('productToken is the part before the first / or space', () => {
  assert.equal(productToken(UA), 'tcrawl');
  assert.equal(productToken('MyBot (+https://x)'), 'MyBot');
  assert.equal(productToken('solo'), 'solo');
});

test('the longest matching rule wins, whichever comes first (RFC 9309 §2.2.2)', () => {
  const robots = policy('User-agent: *\nAllow: /shop/public\nDisallow: /shop\n');
  assert.equal(robots.isAllowed(page('/shop/cart')), false);
  assert.equal(robots.isAllowed(page('/shop/public/item')), true);
  const reversed = policy('User-agent: *\nDisallow: /shop/private\nAllow: /shop\n');
  assert.equal(reversed.isAllowed(page('/shop/private/x')), false);
  assert.equal(reversed.isAllowed(page('/shop/x')), true);
});

test('Allow wins a tie of equally long rules', () => {
  const robots = policy('User-agent: *\nDisallow: /page\nAllow: /page\n');
  assert.equal(robots.isAllowed(page('/page')), true);
});

test('$ anchors the end of the path', () => {
  const robots = policy('User-agent: *\nDisallow: /*.php$\n');
  assert.equal(robots.isAllowed(page('/index.php')), false);
  assert.equal(robots.isAllowed(page('/index.php?x=1')), true);
  assert.equal(robots.isAllowed(page('/index.php5')), true);
});

test('* matches any run of characters, including none', () => {
  const robots = policy('User-agent: *\nDisallow: /private*/secret\n');
  assert.equal(robots.isAllowed(page('/private/secret')), false);
  assert.equal(robots.isAllowed(page('/private-stuff/a/secret/b')), false);
  assert.equal(robots.isAllowed(page('/public/secret')), true);
});

test('rules match the query string too, case-sensitively', () => {
  const robots = policy('User-agent: *\nDisallow: /*?sessionid=\nDisallow: /Admin\n');
  assert.equal(robots.isAllowed(page('/a?sessionid=1')), false);
  assert.equal(robots.isAllowed(page('/admin')), true);
  assert.equal(robots.isAllowed(page('/Admin')), false);
});

test('an empty Disallow allows everything', () => {
  assert.equal(policy('User-agent: *\nDisallow:\n').isAllowed(page('/x')), true);
});

test('no robots rules: everything is allowed', () => {
  assert.equal(policy('').isAllowed(page('/x')), true);
});

test('the group naming our product token wins over *, matched case-insensitively', () => {
  const body = 'User-agent: *\nDisallow: /\n\nUser-agent: TCrawl\nDisallow: /private\n';
  const robots = policy(body);
  assert.equal(robots.isAllowed(page('/public')), true);
  assert.equal(robots.isAllowed(page('/private')), false);
  const other = policy(body, 'otherbot/2.0');
  assert.equal(other.isAllowed(page('/public')), false);
});

test('a group with several user-agent lines applies to each; groups for one token merge', () => {
  const body = [
    'User-agent: foo',
    'User-agent: tcrawl',
    'Disallow: /a',
    '',
    'User-agent: *',
    'Disallow: /',
    '',
    'User-agent: tcrawl',
    'Disallow: /b',
  ].join('\n');
  const robots = policy(body);
  assert.equal(robots.isAllowed(page('/a')), false);
  assert.equal(robots.isAllowed(page('/b')), false);
  assert.equal(robots.isAllowed(page('/c')), true);
});

test('a token that merely starts like ours does not select the group', () => {
  const robots = policy('User-agent: tcrawl-news\nDisallow: /\n');
  assert.equal(robots.isAllowed(page('/x')), true);
});

test('directive names are case-insensitive and comments are ignored', () => {
  const robots = policy('USER-AGENT: * # everyone\nDISALLOW: /tmp # scratch\n');
  assert.equal(robots.isAllowed(page('/tmp/x')), false);
  assert.equal(robots.isAllowed(page('/tmpl')), false);
  assert.equal(robots.isAllowed(page('/other')), true);
});

test('percent-encoded unreserved characters compare equal to their plain form (§2.2.2)', () => {
  const robots = policy('User-agent: *\nDisallow: /~joe\nDisallow: /%7Ebob\nDisallow: /a%2Fb\n');
  assert.equal(robots.isAllowed(page('/%7Ejoe/x')), false);
  assert.equal(robots.isAllowed(page('/~bob')), false);
  // %2F is reserved: /a/b is a different path from /a%2Fb
  assert.equal(robots.isAllowed(page('/a/b')), true);
  assert.equal(robots.isAllowed(page('/a%2Fb')), false);
});

test('/robots.txt itself is always allowed', () => {
  assert.equal(policy('User-agent: *\nDisallow: /\n').isAllowed(ROBOTS_URL), true);
});

test('a UTF-8 BOM does not hide the first line (robots-parser trims it)', () => {
  const robots = policy('\uFEFFUser-agent: *\nDisallow: /x\n');
  assert.equal(robots.isAllowed(page('/x')), false);
});

test('CRLF and CR line endings work', () => {
  assert.equal(policy('User-agent: *\r\nDisallow: /x\r\n').isAllowed(page('/x')), false);
  assert.equal(policy('User-agent: *\rDisallow: /x\r').isAllowed(page('/x')), false);
});

test('crawl-delay comes from the matching group', () => {
  const body = 'User-agent: *\nCrawl-delay: 10\n\nUser-agent: tcrawl\nCrawl-delay: 2.5\n';
  assert.equal(policy(body).crawlDelaySecs, 2.5);
  assert.equal(policy(body, 'other').crawlDelaySecs, 10);
  assert.equal(policy('User-agent: *\nDisallow: /\n').crawlDelaySecs, undefined);
});

test('junk, empty and negative crawl-delays are ignored', () => {
  for (const value of ['soon', '', '-5', '0']) {
    assert.equal(policy(`User-agent: *\nCrawl-delay: ${value}\n`).crawlDelaySecs, undefined, value);
  }
});

test('sitemaps are collected from anywhere in the file, resolved and de-duplicated', () => {
  const body = [
    'Sitemap: https://example.com/sitemap.xml',
    'User-agent: *',
    'Disallow: /x',
    'sitemap: /news-sitemap.xml',
    'Sitemap: https://example.com/sitemap.xml',
    'Sitemap: mailto:nope@example.com',
  ].join('\n');
  assert.deepEqual(policy(body).sitemaps, ['https://example.com/sitemap.xml', 'https://example.com/news-sitemap.xml']);
});

test(`only the first ${ROBOTS_MAX_BYTES} bytes are parsed (RFC 9309 §2.5)`, () => {
  const filler = `# ${'x'.repeat(98)}\n`; // 101 bytes a line
  const padding = filler.repeat(Math.ceil(ROBOTS_MAX_BYTES / filler.length));
  const robots = policy(`User-agent: *\nDisallow: /early\n${padding}Disallow: /late\n`);
  assert.equal(robots.isAllowed(page('/early')), false);
  assert.equal(robots.isAllowed(page('/late')), true);
});

test('a rule cut by the size cap is dropped, not shortened', () => {
  const head = 'User-agent: *\nDisallow: /\n';
  const allowLine = 'Allow: /public-and-more';
  const padding = '#'.repeat(ROBOTS_MAX_BYTES - head.length - 1) + '\n';
  // The cap falls inside the Allow line: "Allow: /pub…" must not survive as a broader rule.
  const body = head + padding.slice(0, -('Allow: /pub'.length)) + '\n' + allowLine + '\n';
  const robots = policy(body);
  assert.equal(robots.isAllowed(page('/public-and-more')), false);
  assert.equal(robots.isAllowed(page('/pub')), false);
});

test('isAllowed refuses to answer for another origin', () => {
  const robots = policy('User-agent: *\nDisallow: /\n');
  for (const url of ['https://other.com/', 'http://example.com/', 'https://example.com:8443/']) {
    assert.throws(() => robots.isAllowed(url), { code: 'TCRAWL_ROBOTS_WRONG_ORIGIN' }, url);
  }
});

test('a robots.txt on a non-default port governs that origin', () => {
  const robots = parseRobots('http://127.0.0.1:8080/robots.txt', 'User-agent: *\nDisallow: /x\n', UA);
  assert.equal(robots.isAllowed('http://127.0.0.1:8080/x'), false);
  assert.equal(robots.isAllowed('http://127.0.0.1:8080/y'), true);
});

test('allowAll and disallowAll', () => {
  assert.equal(allowAll.isAllowed('https://anything.example/'), true);
  assert.equal(disallowAll.isAllowed('https://anything.example/'), false);
  assert.deepEqual(allowAll.sitemaps, []);
  assert.equal(allowAll.crawlDelaySecs, undefined);
});

test('robotsUrlFor keeps scheme, host and non-default port', () => {
  assert.equal(robotsUrlFor('https://Example.com/a/b?c#d'), 'https://example.com/robots.txt');
  assert.equal(robotsUrlFor('http://example.com:8080/a'), 'http://example.com:8080/robots.txt');
  assert.equal(robotsUrlFor('https://example.com:443/a'), 'https://example.com/robots.txt');
});
