/**
 * The reblog-graph example (examples/reblog-graph.yaml) end to end: `tcrawl
 * crawl --spec … --wait` (with the worker it runs itself) walks the imitation
 * reblog API (test/fixtures/reblog-api.ts) breadth-first from `staff` to the
 * spec's node limit, and `tcrawl export --what links` gives the graph's
 * edges, checked against the API's own graph.
 *
 * The frontier is leased in the order it was found, so the pages fetched
 * are the first `maxPages` found. That order is breadth-first but for what
 * is in flight: a page of the next level can be found before the last pages
 * of this one are (their parents still being fetched), so which pages of the
 * level where the limit falls are fetched, and a few of the level after it,
 * depends on the order batches finish in. The test therefore takes the pages
 * the crawl did fetch, checks they are the first found, include every page
 * above that level and none more than one level below it (the fixture test
 * checks the limit falls well inside a level), and computes the exact edges
 * those pages must give.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { breadthFirst, edgesFrom, limitLevel, pagePath, parsePagePath, startReblogApi, type ReblogApi } from '../fixtures/reblog-api';
import { apiFigures, describeFigures, exampleSpecOnPort, peakInFlight, readExampleSpec } from '../helpers/api-examples';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { runTcrawl, workerEnv } from '../helpers/worker-processes';

describe('example reblog-graph: breadth-first over a JSON API to a node limit, every edge recorded', () => {
  const crawlId = uniqueId('reblog-graph');
  const maxPages = readExampleSpec('reblog-graph').maxPages as number;
  let stack: TestStack;
  let api: ReblogApi;

  before(async () => {
    stack = await openStack();
    api = await startReblogApi();
  });

  after(async () => {
    await api?.close();
    await stack?.close();
  });

  it('fetches the first pages breadth-first up to the limit, each once, and follows only reblogs', async (t) => {
    const env = workerEnv(stack, uniqueId('tq-reblog'));
    const run = await runTcrawl(['crawl', '--spec', exampleSpecOnPort('reblog-graph', api.port), '--id', crawlId, '--wait', '--json'], env, 600_000);
    assert.equal(run.code, 0, `tcrawl crawl exited ${run.code}:\n${run.stderr}`);
    const summary = JSON.parse(run.stdout) as { saved: number; failed: number; skipped: number; elapsedMs: number };
    t.diagnostic(`crawl: ${summary.saved} saved, ${summary.failed} failed, ${summary.skipped} skipped in ${(summary.elapsedMs / 1000).toFixed(1)} s`);
    t.diagnostic(`API saw ${describeFigures(apiFigures(api.requests))}; up to ${peakInFlight(api.requests)} in flight`);

    const frontier = await frontierRows();
    const fetched = frontier.filter((r) => r.state !== 'queued');
    assert.equal(fetched.length, maxPages, 'the node limit');
    assert.deepEqual(
      fetched.filter((r) => r.state !== 'done').map((r) => [r.path, r.state, r.reason]),
      fetched.filter((r) => api.graph.deleted.has(parsePagePath(r.path)!.blog)).map((r) => [r.path, 'failed', 'http_404']),
      'only deleted blogs failed, each http_404',
    );

    const { level } = breadthFirst(api.graph);
    const cut = limitLevel(level, maxPages);
    t.diagnostic(`limit ${maxPages} falls in level ${cut.level} (pages ${cut.above + 1}..${cut.through} of breadth-first order)`);
    const levels = fetched.map((r) => level.get(r.path) ?? Infinity);
    t.diagnostic(`fetched ${levels.filter((l) => l === cut.level).length} pages of level ${cut.level}, ${levels.filter((l) => l === cut.level + 1).length} of level ${cut.level + 1}`);
    assert.equal(levels.filter((l) => l < cut.level).length, cut.above, `every page above level ${cut.level} fetched`);
    assert.deepEqual(levels.filter((l) => l > cut.level + 1), [], `no page below level ${cut.level + 1} fetched`);
    const lastFetched = Math.max(...fetched.map((r) => r.seq));
    assert.deepEqual(frontier.filter((r) => r.state === 'queued' && r.seq < lastFetched).map((r) => r.path), [], 'the pages fetched are the first found');

    // Every URL the crawl queued is the seed or a link the fetched pages must give: no external or malformed source followed.
    const expectedQueued = new Set([pagePath(api.graph.seed), ...edgesFrom(api.graph, fetched.map((r) => r.path)).map((e) => e.to)]);
    assert.deepEqual(frontier.map((r) => r.path).sort(), [...expectedQueued].sort(), 'the frontier');

    const requested = api.requests.filter((r) => r.path !== '/robots.txt').map((r) => r.path);
    assert.deepEqual(requested.sort(), fetched.map((r) => r.path).sort(), 'each fetched page requested once, nothing else');
  });

  it('exports exactly the edges of the pages fetched: `tcrawl export --what links`', async () => {
    const run = await runTcrawl(['export', crawlId, '--what', 'links'], workerEnv(stack, 'unused'));
    assert.equal(run.code, 0, run.stderr);
    const exported = run.stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as { found_on: string; url: string });
    const fetched = (await frontierRows()).filter((r) => r.state !== 'queued').map((r) => r.path);
    const expected = edgesFrom(api.graph, fetched).map((e) => `${api.url(e.from)} -> ${api.url(e.to)}`);
    assert.ok(expected.length > maxPages, `${expected.length} edges: a graph, more than a tree`);
    assert.deepEqual(exported.map((l) => `${l.found_on} -> ${l.url}`).sort(), expected.sort());
  });

  /** The crawl's frontier, in the order it was found. */
  async function frontierRows(): Promise<Array<{ path: string; state: string; reason: string | null; seq: number }>> {
    const { rows } = await stack.pool.query<{ url: string; state: string; reason: string | null; seq: string }>(
      `SELECT url, state, reason, seq FROM frontier WHERE crawl_id = $1 ORDER BY seq`,
      [crawlId],
    );
    return rows.map(({ url, state, reason, seq }) => ({ path: api.pathOf(url), state, reason, seq: Number(seq) }));
  }
});
