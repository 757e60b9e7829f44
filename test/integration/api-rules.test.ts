import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { workflowIdFor } from '../../src/client';
import { crawlTables } from '../../src/results/delete';
import type { CrawlSpecInput } from '../../src/spec';
import { apiItems, failingTreeNode, itemsPerPage, startApiSite, treeSize, type ApiSite } from '../fixtures/api-site';
import { openStack, runCrawl, uniqueId, type TestStack } from '../helpers/stack';

/** The path (and query) of a request key's URL: `POST http://host/search sha256:…` → `/search`. */
function pathOf(key: string): string {
  const url = new URL(key.replace(/^[A-Z]+ /, '').replace(/ sha256:[0-9a-f]+$/, ''));
  return url.pathname + url.search;
}

/** Every string and byte string of a history as text: payloads are bytes, which JSON.stringify would spell as numbers. */
function historyText(value: unknown): string {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(historyText).join('\n');
  if (value !== null && typeof value === 'object') return Object.values(value).map(historyText).join('\n');
  return '';
}

const apiKey = `key-${uniqueId('k')}`;
const apiToken = `token-${uniqueId('t')}`;
const keyVariable = 'TCRAWL_TEST_API_KEY';
const tokenVariable = 'TCRAWL_TEST_API_TOKEN';

/** A handler as a user writes one: plain JavaScript, loaded by the worker. */
const treeHandler = `
export async function handle(response, context) {
  const { id, children } = response.json;
  if (id === ${failingTreeNode}) throw new Error('node ${failingTreeNode} is cursed');
  return { items: [{ node: id, depth: context.depth, rule: context.rule }], requests: children.map((child) => '/tree/' + child) };
}
`;

function apiSpec(origin: string, handlerFile: string): CrawlSpecInput {
  return {
    seeds: [`${origin}/start`],
    headers: { 'X-Key': { env: keyVariable } },
    links: 'all' as const,
    rules: [
      {
        name: 'listing',
        url: '/items\\?',
        query: { token: { env: tokenVariable } },
        paginate: { param: 'page', stopWhenEmpty: '$.items[*]' },
        follow: [
          { jsonPath: '$.items[*].id', template: '/items/{id}', label: 'item' },
          { jsonPath: '$.items[*].name', template: '/search', method: 'POST' as const, body: { q: '{id}' }, label: 'search' },
        ],
        items: { selector: '$.items[*]', fields: { id: '$.id', name: '$.name', price: { jsonPath: '$.price', type: 'number' as const } } },
      },
      {
        name: 'item',
        label: 'item',
        save: false,
        follow: [{ jsonPath: '$.related[*]', template: '/items/{id}', label: 'item' }],
        items: { fields: { id: '$.id', tags: { jsonPath: '$.tags[*]', all: true } } },
      },
      { name: 'search', label: 'search', items: { fields: { q: '$.q', hits: '$.hits' } } },
      { name: 'feed', glob: '**/feed.xml', follow: [{ css: 'entry > link', label: 'item' }], items: { selector: 'entry', fields: { entry: { css: 'id', type: 'integer' as const } } } },
      { name: 'tree', url: '/tree/\\d+$', handler: handlerFile },
    ],
  };
}

describe('rules against a JSON API: pagination, ids, POST bodies, secrets, XML, handlers', () => {
  let stack: TestStack;
  let site: ApiSite;
  const crawlId = uniqueId('api');
  let summary: Awaited<ReturnType<typeof runCrawl>>;
  const rows = async (sql: string) => (await stack.pool.query(sql, [crawlId])).rows;

  before(async () => {
    stack = await openStack();
    site = await startApiSite({ apiKey, apiToken });
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-handler-'));
    writeFileSync(path.join(dir, 'tree.mjs'), treeHandler);
    process.env[keyVariable] = apiKey;
    process.env[tokenVariable] = apiToken;
    summary = await runCrawl(stack, apiSpec(site.origin, path.join(dir, 'tree.mjs')), crawlId);
  });

  after(async () => {
    delete process.env[keyVariable];
    delete process.env[tokenVariable];
    await site?.close();
    await stack?.close();
  });

  it('every request is made once, with the secret header and query parameter; none is refused', () => {
    assert.deepEqual(site.requests.filter((r) => r.status === 401), []);
    const seen = site.requests.map((r) => `${r.method} ${r.path.replace(`token=${apiToken}`, 'token=*')} ${r.body}`);
    assert.equal(new Set(seen).size, seen.length, `a request made twice: ${seen.join('\n')}`);
    const listing = site.requests.filter((r) => r.path.startsWith('/items?'));
    assert.deepEqual(listing.map((r) => r.path).sort(), [0, 1, 2, 3, 4].map((page) => `/items?page=${page}&token=${apiToken}`));
  });

  it('pagination stops at the empty page; listing items carry typed fields', async () => {
    const items = await rows(`SELECT data FROM items WHERE crawl_id = $1 AND url LIKE '%/items?page=%' ORDER BY url, position`);
    assert.deepEqual(
      items.map((row) => row.data).sort((a, b) => a.id - b.id),
      apiItems.map(({ id, name, price }) => ({ id, name, price: Number(price) })).sort((a, b) => a.id - b.id),
    );
    assert.equal(items.length, apiItems.length);
    assert.ok(apiItems.length % itemsPerPage === 0);
  });

  it('ids through a template: each item once, however often it is found (listing, related, feed); save: false keeps no page but its items', async () => {
    const frontier = await rows(`SELECT url, state FROM frontier WHERE crawl_id = $1 AND url ~ '/items/[0-9]+$'`);
    assert.deepEqual(frontier.map((row) => pathOf(row.url)).sort(), apiItems.map((item) => `/items/${item.id}`).sort());
    assert.ok(frontier.every((row) => row.state === 'done'));
    assert.deepEqual(await rows(`SELECT url FROM pages WHERE crawl_id = $1 AND url ~ '/items/[0-9]+$'`), []);
    const details = await rows(`SELECT data FROM items WHERE crawl_id = $1 AND url ~ '/items/[0-9]+$'`);
    assert.deepEqual(details.map((row) => row.data).sort((a, b) => a.id - b.id), apiItems.map(({ id, tags }) => ({ id, tags })).sort((a, b) => a.id - b.id));
  });

  it('POST bodies are part of the request key: one request per distinct body, its key and request in the frontier', async () => {
    const posts = await rows(`SELECT url, request FROM frontier WHERE crawl_id = $1 AND url LIKE 'POST %'`);
    const names = [...new Set(apiItems.map((item) => item.name))];
    assert.equal(posts.length, names.length);
    for (const row of posts) {
      assert.match(row.url, /^POST http:\/\/127\.0\.0\.1:\d+\/search sha256:[0-9a-f]{64}$/);
      assert.equal(row.request.method, 'POST');
      assert.equal(row.request.label, 'search');
      assert.equal(row.request.contentType, 'application/json');
    }
    assert.deepEqual(posts.map((row) => JSON.parse(row.request.body).q).sort(), names.sort());
    const sent = site.requests.filter((r) => r.method === 'POST');
    assert.deepEqual(sent.map((r) => JSON.parse(r.body).q).sort(), names.sort());
    assert.ok(sent.every((r) => r.headers['content-type'] === 'application/json'));
    const hits = await rows(`SELECT data FROM items WHERE crawl_id = $1 AND url LIKE 'POST %'`);
    assert.equal(hits.find((row) => row.data.q === 'red')?.data.hits, 2);
  });

  it('XML is read with CSS; text is saved; an image is skipped unsupported_type; invalid JSON fails parse_error', async () => {
    const feed = await rows(`SELECT data FROM items WHERE crawl_id = $1 AND url LIKE '%/feed.xml' ORDER BY position`);
    assert.deepEqual(feed.map((row) => row.data.entry), apiItems.slice(0, 3).map((item) => item.id));
    const pages = Object.fromEntries((await rows('SELECT url, content_type FROM pages WHERE crawl_id = $1')).map((row) => [pathOf(row.url), row.content_type]));
    assert.equal(pages['/notes.txt'], 'text/plain; charset=utf-8');
    const outcomes = Object.fromEntries((await rows(`SELECT url, state, reason, detail FROM frontier WHERE crawl_id = $1 AND state <> 'done'`)).map((row) => [pathOf(row.url), row]));
    assert.equal(outcomes['/logo.png']?.reason, 'unsupported_type');
    assert.equal(outcomes['/broken.json']?.reason, 'parse_error');
    assert.match(outcomes['/broken.json']?.detail, /not valid JSON/);
  });

  it('a handler yields items and requests; the one that throws fails handler_error with its message, the rest of the batch goes on', async () => {
    const items = await rows(`SELECT data FROM items WHERE crawl_id = $1 AND url ~ '/tree/'`);
    const nodes = Array.from({ length: treeSize - 1 }, (_, i) => i + 1).filter((n) => n !== failingTreeNode);
    assert.deepEqual(items.map((row) => row.data.node).sort((a, b) => a - b), nodes);
    assert.ok(items.every((row) => row.data.rule === 'tree' && row.data.depth === Math.floor(Math.log2(row.data.node)) + 1));
    const [failed] = await rows(`SELECT state, reason, detail FROM frontier WHERE crawl_id = $1 AND url LIKE '%/tree/${failingTreeNode}'`);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.reason, 'handler_error');
    assert.match(failed.detail, new RegExp(`threw: node ${failingTreeNode} is cursed`));
    assert.equal(summary.byReason.handler_error, 1);
  });

  it('links: all records every link followed, to URLs seen before too', async () => {
    const edges = await rows(`SELECT from_url, to_url FROM links WHERE crawl_id = $1`);
    const into = (target: string) => edges.filter((edge) => pathOf(edge.to_url) === target).map((edge) => pathOf(edge.from_url));
    const first = apiItems[0]!;
    const pointing = apiItems.filter((item) => item.related.includes(first.id)).map((item) => `/items/${item.id}`);
    assert.deepEqual(into(`/items/${first.id}`).sort(), ['/feed.xml', '/items?page=1', ...pointing].sort());
    assert.ok(edges.some((edge) => pathOf(edge.from_url) === '/items?page=1' && pathOf(edge.to_url) === '/items?page=2'));
  });

  it('regression: a redirect echoing the secret query parameter put it in the frontier — the target is kept without it', async () => {
    const [moved] = await rows(`SELECT state, reason, detail FROM frontier WHERE crawl_id = $1 AND url LIKE '%/items?page=0'`);
    assert.deepEqual(moved, { state: 'skipped', reason: 'redirected', detail: `→ ${site.origin}/items?page=1` });
  });

  it('the secrets appear in no table and not in the recorded history', async () => {
    const history = historyText(await stack.client.workflow.getHandle(workflowIdFor(crawlId)).fetchHistory());
    assert.ok(history.includes(`${site.origin}/start`) && history.includes(keyVariable), 'the history was read: it holds the seed and the secret\'s name');
    for (const secret of [apiKey, apiToken]) {
      assert.ok(!history.includes(secret), `${secret} in the history`);
      for (const table of crawlTables) {
        const found = await rows(`SELECT t::text AS row FROM ${table} t WHERE crawl_id = $1 AND t::text LIKE '%' || '${secret}' || '%'`);
        assert.deepEqual(found, [], `${secret} in table ${table}`);
      }
    }
  });

  it('a secret the worker does not have fails each URL secret_missing, naming the variable only', async () => {
    const missing = await runCrawl(stack, { seeds: [`${site.origin}/start`], headers: { 'X-Key': { env: 'TCRAWL_TEST_UNSET_SECRET' } } });
    assert.equal(missing.failed, 1);
    assert.equal(missing.byReason.secret_missing, 1);
    const [row] = (await stack.pool.query(`SELECT detail FROM frontier WHERE crawl_id = $1`, [missing.crawlId])).rows;
    assert.match(row.detail, /Environment variable TCRAWL_TEST_UNSET_SECRET is not set on this worker/);
  });
});
