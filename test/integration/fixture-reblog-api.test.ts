/**
 * The imitation reblog API (test/fixtures/reblog-api.ts) and the graph
 * functions the reblog-graph test computes its expectations with: the served
 * pages, the links a crawl must follow from each, breadth-first levels, and
 * that the example spec follows exactly the reblogs.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import {
  breadthFirst,
  edgesFrom,
  generateReblogGraph,
  limitLevel,
  linksFrom,
  pageCount,
  pagePath,
  parsePagePath,
  POSTS_PER_PAGE,
  startReblogApi,
  type BlogPost,
  type ReblogApi,
  type ReblogGraph,
} from '../fixtures/reblog-api';
import { readExampleSpec } from '../helpers/api-examples';

async function withApi(fn: (api: ReblogApi) => Promise<void>): Promise<void> {
  const api = await startReblogApi({ blogs: 300 });
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}

async function get(api: ReblogApi, urlPath: string) {
  const started = performance.now();
  const res = await request(api.url(urlPath));
  const json = await res.body.json();
  return { status: res.statusCode, json: json as Record<string, unknown>, elapsedMs: performance.now() - started };
}

/** A hand-made graph: a → b, c (twice), an external and a malformed post; b → a, itself; c's posts span two pages, page 2 reblogs d (deleted). */
function smallGraph(): ReblogGraph {
  const post = (kind: BlogPost['kind'], target?: string): BlogPost => ({ id: 1, source_url: target ? `https://${target}.reblog.test/post/1` : 'x', kind, target });
  return {
    seed: 'a',
    blogs: new Map([
      ['a', [post('reblog', 'b'), post('reblog', 'c'), post('external'), post('reblog', 'c'), post('malformed')]],
      ['b', [post('reblog', 'a'), post('reblog', 'b'), post('original')]],
      ['c', [...Array.from({ length: POSTS_PER_PAGE }, () => post('original')), post('reblog', 'd')]],
    ]),
    deleted: new Set(['d']),
  };
}

describe('reblog graph functions', () => {
  it('writes and reads page paths: the first page without a page parameter', () => {
    assert.equal(pagePath('moss-fern-1'), '/v1/blog/moss-fern-1/posts');
    assert.equal(pagePath('moss-fern-1', 3), '/v1/blog/moss-fern-1/posts?page=3');
    assert.deepEqual(parsePagePath('/v1/blog/moss-fern-1/posts?page=3'), { blog: 'moss-fern-1', page: 3 });
    assert.deepEqual(parsePagePath('/v1/blog/a/posts'), { blog: 'a', page: 1 });
    assert.equal(parsePagePath('/v1/blog/a/posts?page=0'), undefined);
    assert.equal(parsePagePath('/v1/blog/a'), undefined);
  });

  it('follows the reblogs of a page, each blog once, then its next page; nothing from a deleted blog', () => {
    const graph = smallGraph();
    assert.deepEqual(linksFrom(graph, '/v1/blog/a/posts'), ['/v1/blog/b/posts', '/v1/blog/c/posts']);
    assert.deepEqual(linksFrom(graph, '/v1/blog/b/posts'), ['/v1/blog/a/posts', '/v1/blog/b/posts']);
    assert.deepEqual(linksFrom(graph, '/v1/blog/c/posts'), ['/v1/blog/c/posts?page=2']);
    assert.deepEqual(linksFrom(graph, '/v1/blog/c/posts?page=2'), ['/v1/blog/d/posts']);
    assert.deepEqual(linksFrom(graph, '/v1/blog/d/posts'), []);
    assert.deepEqual(linksFrom(graph, '/v1/blog/c/posts?page=3'), []);
  });

  it('levels pages breadth-first (a next page one level below its previous) and finds where a page limit stops', () => {
    const { order, level } = breadthFirst(smallGraph());
    assert.deepEqual(order, ['/v1/blog/a/posts', '/v1/blog/b/posts', '/v1/blog/c/posts', '/v1/blog/c/posts?page=2', '/v1/blog/d/posts']);
    assert.deepEqual([...level.values()], [0, 1, 1, 2, 3]);
    assert.deepEqual(limitLevel(level, 1), { level: 0, above: 0, through: 1 });
    assert.deepEqual(limitLevel(level, 2), { level: 1, above: 1, through: 3 });
    assert.deepEqual(limitLevel(level, 3), { level: 1, above: 1, through: 3 });
    assert.deepEqual(limitLevel(level, 4), { level: 2, above: 3, through: 4 });
    assert.deepEqual(limitLevel(level, 99), { level: 3, above: 4, through: 5 });
  });

  it('lists the edges a crawl of some pages records: self-reblogs and blogs seen before included', () => {
    assert.deepEqual(edgesFrom(smallGraph(), ['/v1/blog/b/posts', '/v1/blog/a/posts']), [
      { from: '/v1/blog/a/posts', to: '/v1/blog/b/posts' },
      { from: '/v1/blog/a/posts', to: '/v1/blog/c/posts' },
      { from: '/v1/blog/b/posts', to: '/v1/blog/a/posts' },
      { from: '/v1/blog/b/posts', to: '/v1/blog/b/posts' },
    ]);
  });
});

describe('generated reblog graph', () => {
  const graph = generateReblogGraph(1500, 8702);
  const posts = [...graph.blogs.values()].flat();

  it('is the same for the same seed, and differs for another', () => {
    assert.deepEqual(generateReblogGraph(200, 3), generateReblogGraph(200, 3));
    assert.notDeepEqual(generateReblogGraph(200, 3).blogs, generateReblogGraph(200, 4).blogs);
  });

  it('has every kind of source, paginated blogs, deleted blogs, self-reblogs, and reblogs of blogs many others reblog', () => {
    const kinds = new Set(posts.map((p) => p.kind));
    assert.deepEqual(kinds, new Set(['reblog', 'original', 'external', 'malformed']));
    assert.ok(posts.some((p) => typeof p.source_url !== 'string' && p.kind === 'malformed'), 'non-string malformed sources');
    assert.ok([...graph.blogs.keys()].filter((b) => pageCount(graph, b) > 1).length >= 50, 'paginated blogs');
    assert.ok(graph.deleted.size > 0 && [...graph.deleted].every((b) => !graph.blogs.has(b)));
    assert.ok([...graph.blogs].some(([blog, ps]) => ps.some((p) => p.target === blog)), 'a self-reblog');
    const reblogs = posts.filter((p) => p.kind === 'reblog');
    assert.ok(new Set(reblogs.map((p) => p.target)).size < reblogs.length / 3, 'many reblogs name the same blogs');
    assert.ok(reblogs.every((p) => graph.blogs.has(p.target!) || graph.deleted.has(p.target!)));
  });

  it("has the example's node limit fall well inside a breadth-first level, so the pages fetched are known but for that level", () => {
    const { maxPages } = exampleSpec();
    const { level } = breadthFirst(graph);
    const cut = limitLevel(level, maxPages);
    assert.ok(cut.above <= maxPages - 150 && cut.through >= maxPages + 150, `limit ${maxPages} within level ${cut.level} (${cut.above}..${cut.through} pages)`);
  });

  it("is followed exactly where the example spec's regex matches: every reblog, naming its blog, and nothing else", () => {
    const { follow } = exampleSpec().rules[0];
    const pattern = new RegExp(follow[0].regex);
    for (const post of posts) {
      const match = typeof post.source_url === 'string' ? pattern.exec(post.source_url) : null;
      assert.equal(match?.[1], post.target, `${JSON.stringify(post.source_url)} (${post.kind})`);
    }
  });
});

describe('reblog API endpoints', () => {
  it('serves each page of a blog with id and source_url only, the total, and a relative next link while there is one', () =>
    withApi(async (api) => {
      const blog = [...api.graph.blogs.keys()].find((b) => pageCount(api.graph, b) >= 2)!;
      const all = api.graph.blogs.get(blog)!;
      const served: unknown[] = [];
      for (let page = 1; page <= pageCount(api.graph, blog); page++) {
        const { status, json } = await get(api, pagePath(blog, page));
        assert.equal(status, 200);
        assert.equal(json.total, all.length);
        assert.equal(json.next, page < pageCount(api.graph, blog) ? pagePath(blog, page + 1) : undefined);
        served.push(...(json.posts as unknown[]));
      }
      assert.deepEqual(served, all.map(({ id, source_url }) => ({ id, source_url })));
    }));

  it('answers 404 for a deleted blog and for any other path, and waits 20–50 ms before each answer', () =>
    withApi(async (api) => {
      const deleted = await get(api, pagePath([...api.graph.deleted][0]));
      assert.equal(deleted.status, 404);
      assert.equal((await get(api, '/robots.txt')).status, 404);
      const staff = await get(api, pagePath('staff'));
      assert.equal(staff.status, 200);
      assert.ok(staff.elapsedMs >= 19, `answered after ${staff.elapsedMs.toFixed(1)} ms`);
      assert.deepEqual(
        api.requests.map((r) => [r.path, r.status]),
        [[pagePath([...api.graph.deleted][0]), 404], ['/robots.txt', 404], [pagePath('staff'), 200]],
      );
    }));
});

/** The parts of examples/reblog-graph.yaml these tests read. */
function exampleSpec(): { maxPages: number; rules: Array<{ follow: Array<{ regex: string }> }> } {
  return readExampleSpec('reblog-graph') as unknown as ReturnType<typeof exampleSpec>;
}
