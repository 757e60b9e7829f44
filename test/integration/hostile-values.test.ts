import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { insertUrls, leaseMore, type NewUrl } from '../../activities/frontier-store';
import { saveResults, type UrlResult } from '../../activities/page-store';
import { MAX_URL_LENGTH } from '../../src/url';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';

/**
 * Every value tcrawl writes comes from the web or the user. These go through
 * the activities' own store functions and must come back as they went in:
 * if any SQL were built by pasting values, a quote would break it (or worse).
 */

const HOST = 'hostile.example';
const ORIGIN = `http://${HOST}/`;

/** Strings that break naively built SQL or JSON, or that an encoding layer might mangle. */
const HOSTILE_TEXT = [
  "'); DROP TABLE pages; --",
  "it's \"quoted\" `backticked`",
  'back\\slash \\\\ double \\\' escaped quote \\',
  '$1 $$dollar quoted$$ %s ? :name E\'\\x41\'',
  'ünïcødé 日本語 🤖 \u2028\u2029 \u200b',
  '{"json": ["unterminated", ',
  '"]}\'\\"',
  '\\u0000 (an escape spelled out, not a NUL)',
  'null',
  '\r\n\t',
];

const NUL = '\u0000';

function hostileUrls(): string[] {
  const prefix = `${ORIGIN}long/`;
  const random = randomBytes(MAX_URL_LENGTH).toString('base64url');
  return [
    `${ORIGIN}'); DROP TABLE pages; --`,
    `${ORIGIN}it's/"quoted"?q='1' OR '1'='1`,
    `${ORIGIN}back\\slash\\\\double`,
    `${ORIGIN}ünïcødé/日本語/🤖`,
    `${ORIGIN}$1/$$x$$/%s?:name`,
    `${ORIGIN}a%27%3B%20DROP%20TABLE%20frontier`,
    // The longest URL canonicalization lets through, with content that does not compress.
    prefix + random.slice(0, MAX_URL_LENGTH - prefix.length),
  ];
}

describe('hostile values', () => {
  let stack: TestStack;

  before(async () => {
    stack = await openStack();
  });

  after(async () => {
    await stack?.close();
  });

  it('URLs, pages, items and frontier details with quotes, SQL, backslashes, unicode and JSON-breaking strings are stored intact; U+0000 is removed', async () => {
    const crawlId = uniqueId("hostile'; DROP TABLE crawls; --");
    const batchId = `${crawlId}/b'1`;
    const urls = hostileUrls();
    const foundOn = `${ORIGIN}'--`;

    const queued = await insertUrls(stack.pool, crawlId, urls.map((url) => ({ url, depth: 1, foundOn })));
    assert.deepEqual(queued, { [HOST]: urls.length });
    const lease = await leaseMore(stack.pool, crawlId, batchId, [{ host: HOST, limit: 100, dueByMs: Date.now() }]);
    assert.deepEqual(lease[HOST].map((p) => p.url).sort(), [...urls].sort());

    const [failedUrl, ...savedUrls] = urls as [string, ...string[]];
    const discovered: NewUrl[] = HOSTILE_TEXT.map((text, i) => ({ url: `${ORIGIN}new/${i}/${text}`, depth: 2, foundOn: savedUrls[0] ?? null }));
    const results: UrlResult[] = [
      { url: failedUrl, outcome: 'failed', status: 500, reason: "http_500'; --", detail: `${HOSTILE_TEXT.join(' | ')}${NUL}end` },
      ...savedUrls.map((url, i): UrlResult => ({
        url,
        outcome: 'saved',
        status: 200,
        finalUrl: `${url}?after='redirect'`,
        contentType: `text/html; charset="it's"${NUL}`,
        title: `${HOSTILE_TEXT[i % HOSTILE_TEXT.length]}${NUL}title`,
        depth: 1,
        bytes: 42,
        html: `<html>${HOSTILE_TEXT.join('\n')}${NUL}${'x'.repeat(100_000)}</html>`,
        rawBody: Buffer.from(`${HOSTILE_TEXT.join('\n')}${NUL}\u00ff`, 'utf8'),
        linkCount: discovered.length,
        newUrls: i === 0 ? discovered : [],
        items: [Object.fromEntries(HOSTILE_TEXT.map((text, k) => [`field ${k} "${text}"`, `${text}${NUL}${text}`])), { empty: null, nul: NUL, both: `a${NUL}b${NUL}` }],
        savePage: true,
        fetchedAt: new Date(),
      })),
    ];

    const newlyQueued = await saveResults(stack.pool, crawlId, batchId, results);
    assert.deepEqual(newlyQueued, { [HOST]: discovered.length });

    const frontier = await rowsByUrl<{ state: string; reason: string | null; detail: string | null; found_on: string | null }>(
      `SELECT url, state, reason, detail, found_on FROM frontier WHERE crawl_id = $1`,
      crawlId,
    );
    assert.deepEqual(frontier.get(failedUrl), { url: failedUrl, state: 'failed', reason: "http_500'; --", detail: `${HOSTILE_TEXT.join(' | ')}end`, found_on: foundOn });
    for (const url of savedUrls) assert.equal(frontier.get(url)?.state, 'done', url);
    for (const { url } of discovered) assert.deepEqual(frontier.get(url), { url, state: 'queued', reason: null, detail: null, found_on: savedUrls[0] }, url);

    const pages = await rowsByUrl<{ final_url: string; content_type: string; title: string; html: string }>(
      `SELECT url, final_url, content_type, title, html FROM pages WHERE crawl_id = $1`,
      crawlId,
    );
    assert.equal(pages.size, savedUrls.length);
    savedUrls.forEach((url, i) => {
      const saved = results[i + 1] as Extract<UrlResult, { outcome: 'saved' }>;
      assert.deepEqual(pages.get(url), {
        url,
        final_url: saved.finalUrl,
        content_type: `text/html; charset="it's"`,
        title: `${HOSTILE_TEXT[i % HOSTILE_TEXT.length]}title`,
        html: saved.html?.replace(NUL, ''),
      });
    });

    const { rows: items } = await stack.pool.query<{ url: string; position: number; data: unknown }>(`SELECT url, position, data FROM items WHERE crawl_id = $1`, [crawlId]);
    const expectedItems = savedUrls.flatMap((url) => [
      { url, position: 0, data: Object.fromEntries(HOSTILE_TEXT.map((text, k) => [`field ${k} "${text}"`, `${text}${text}`])) },
      { url, position: 1, data: { empty: null, nul: '', both: 'ab' } },
    ]);
    // Sorted here, not by ORDER BY: the database's collation need not agree with JavaScript's order.
    const byUrlAndPosition = (a: { url: string; position: number }, b: { url: string; position: number }) =>
      a.url < b.url ? -1 : a.url > b.url ? 1 : a.position - b.position;
    assert.deepEqual(items.sort(byUrlAndPosition), expectedItems.sort(byUrlAndPosition));

    assert.deepEqual(await tablesPresent(), ['crawls', 'frontier', 'items', 'pages', 'robots'], 'no DROP TABLE ran');
  });

  async function rowsByUrl<T extends object>(sql: string, crawlId: string): Promise<Map<string, T & { url: string }>> {
    const { rows } = await stack.pool.query<T & { url: string }>(sql, [crawlId]);
    return new Map(rows.map((row) => [row.url, row]));
  }

  async function tablesPresent(): Promise<string[]> {
    const { rows } = await stack.pool.query<{ name: string }>(
      `SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL ORDER BY name`,
      [['crawls', 'frontier', 'items', 'pages', 'robots']],
    );
    return rows.map((row) => row.name);
  }
});
