/**
 * What a user sees of a crawl in the Temporal Web UI, checked in headless
 * Chromium against what Postgres holds: the list filtered by tcrawl's search
 * attributes (typed into the filter box and given in the URL), their columns,
 * and the crawl's page (User Metadata: summary, details, current details;
 * Search Attributes).
 *
 * The crawl is made to stand still before the browser looks, so the figures
 * are the same everywhere: its site answers `/hold` with 503 + Retry-After,
 * which holds the host back with nothing in flight, and the crawl is then
 * paused, which upserts its search attributes at once (a phase change).
 *
 * Needs the Web UI of the suite's Temporal server: test/run.ts passes it as
 * TCRAWL_TEST_WEB_UI (see there); without it this test fails, saying so.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Pool } from 'pg';
import type { Client } from '@temporalio/client';
import { connect, type CrawlHandle } from '../../src/tcrawl-client';
import { startHeldSite } from '../fixtures/held-site';
import { localSiteDefaults, quietRuntime, uniqueId } from '../helpers/stack';
import { assertWebUiOf, collectPageErrors, launchChromium, TemporalWebUi, testWebUiUrl } from '../helpers/web-ui';

interface FrontierCounts {
  saved: number;
  queued: number;
  failed: number;
  skipped: number;
  leased: number;
  pages: number;
}

async function frontierCounts(pool: Pool, crawlId: string): Promise<FrontierCounts> {
  const { rows } = await pool.query<Record<keyof FrontierCounts, number>>(
    `SELECT count(*) FILTER (WHERE state = 'done')::int AS saved, count(*) FILTER (WHERE state = 'queued')::int AS queued,
            count(*) FILTER (WHERE state = 'failed')::int AS failed, count(*) FILTER (WHERE state = 'skipped')::int AS skipped,
            count(*) FILTER (WHERE state = 'leased')::int AS leased,
            (SELECT count(*)::int FROM pages WHERE crawl_id = $1) AS pages
       FROM frontier WHERE crawl_id = $1`,
    [crawlId],
  );
  return rows[0];
}

async function waitUntil(what: string, timeoutMs: number, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Whether the list query of the Web UI (visibility, not the workflow's own state) finds the workflow. */
async function visible(temporal: Client, query: string): Promise<boolean> {
  for await (const _ of temporal.workflow.list({ query, pageSize: 1 })) return true;
  return false;
}

const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Held back by /hold's Retry-After with nothing in flight: its figures stay as they are. */
async function untilHeld(crawl: CrawlHandle): Promise<void> {
  await waitUntil('the crawl is held back by Retry-After with nothing in flight', 30_000, async () => {
    const progress = await crawl.progress();
    return progress !== null && progress.inFlightBatches === 0 && progress.hostStates.some((h) => h.reason === 'retry_after' && h.pausedUntilMs !== null);
  });
}

test('the Web UI filters crawls by their search attributes and shows the figures Postgres holds', { timeout: 90_000 }, async (t) => {
  const webUiUrl = testWebUiUrl();
  quietRuntime();
  // Undone last first: the browser, the crawl, the worker, the connections, the site.
  const undo: (() => Promise<unknown>)[] = [];
  t.after(async () => {
    for (let step = undo.pop(); step; step = undo.pop()) await step();
  });
  const site = await startHeldSite({ holdSecs: 120 });
  undo.push(() => site.close());
  const taskQueue = uniqueId('webui');
  const tcrawl = await connect({ env: { ...process.env, TCRAWL_TASK_QUEUE: taskQueue }, log: () => {} });
  undo.push(() => tcrawl.close());
  await assertWebUiOf(webUiUrl, tcrawl.temporal.connection);
  const worker = await tcrawl.runWorker();
  undo.push(() => worker.stop());

  // Two crawls of one site (one TcrawlSeedHost): one finishes, one stands paused.
  const finished = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [`${site.origin}/p/1/1`] });
  const held = await tcrawl.startCrawl({ ...localSiteDefaults, seeds: [`${site.origin}/`] });
  undo.push(async () => {
    if ((await held.status()).status === 'RUNNING') await held.cancel();
  });
  await finished.result();
  await untilHeld(held);
  const paused = await held.pause();
  assert.deepEqual({ phase: paused.phase, inFlightBatches: paused.inFlightBatches }, { phase: 'paused', inFlightBatches: 0 });
  const db = await frontierCounts(tcrawl.pool, held.crawlId);
  const doneDb = await frontierCounts(tcrawl.pool, finished.crawlId);
  // Figures worth comparing: something saved, failed and still queued; every saved URL one page row; nothing leased.
  assert.ok(db.saved > 0 && db.queued > 0 && db.failed > 0, `held crawl: ${JSON.stringify(db)}`);
  assert.deepEqual({ pages: db.pages, leased: db.leased }, { pages: db.saved, leased: 0 });
  assert.equal(site.holdRequests(), 1);
  await waitUntil('the list query finds the paused crawl with its saved count', 20_000, () =>
    visible(tcrawl.temporal, `TcrawlCrawlId = "${held.crawlId}" AND TcrawlPhase = "paused" AND TcrawlSaved = ${db.saved}`),
  );
  await waitUntil('the list query finds the finished crawl', 20_000, () => visible(tcrawl.temporal, `TcrawlCrawlId = "${finished.crawlId}" AND TcrawlPhase = "finished"`));

  const browser = await launchChromium();
  undo.push(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const pageErrors = collectPageErrors(page);
  const ui = new TemporalWebUi(page, webUiUrl, tcrawl.config.temporalNamespace);

  // The list, filtered in the URL: both crawls of the site, with their figures in search attribute columns.
  // Only this test's task queue: a crawl of another test whose site once had this port has the same seed host.
  const ours = `TaskQueue = "${taskQueue}"`;
  await ui.openList(`${ours} AND TcrawlSeedHost = "${site.host}"`);
  await ui.waitForListed([finished.workflowId, held.workflowId]);
  await ui.configureColumns({ remove: ['Run ID', 'Type', 'End'], add: ['TcrawlPhase', 'TcrawlSaved', 'TcrawlQueued', 'TcrawlFailed'] });
  const columns = (row: Record<string, string>) => ({ phase: row.TcrawlPhase, saved: row.TcrawlSaved, queued: row.TcrawlQueued, failed: row.TcrawlFailed });
  assert.deepEqual(columns(await ui.row(held.workflowId)), { phase: 'paused', saved: `${db.saved}`, queued: `${db.queued}`, failed: `${db.failed}` });
  assert.deepEqual(columns(await ui.row(finished.workflowId)), { phase: 'finished', saved: `${doneDb.saved}`, queued: `${doneDb.queued}`, failed: `${doneDb.failed}` });

  // Typed into the filter box: only the paused one is left.
  await ui.typeQuery(`${ours} AND TcrawlSeedHost = "${site.host}" AND TcrawlPhase = "paused" AND TcrawlSaved = ${db.saved}`);
  await ui.waitForListed([held.workflowId]);

  // The crawl's page.
  await ui.openFromList(held.workflowId);
  await ui.openTab('User Metadata');
  const seed = `${site.origin}/`;
  assert.match(await ui.markdownPane('Summary', seed), new RegExp(literally(`tcrawl ${held.crawlId}: ${seed}`)));
  assert.match(await ui.markdownPane('Details', 'Seeds'), new RegExp(`Seeds[\\s\\S]*${literally(seed)}`));
  const progressLine = `paused · saved ${db.saved} · queued ${db.queued} · in flight 0 (0 batches) · failed ${db.failed} · skipped ${db.skipped} · 1 hosts`;
  const details = await ui.markdownPane('Current Details', progressLine);
  t.diagnostic(`Postgres: ${JSON.stringify(db)}; Current Details: ${JSON.stringify(details)}`);
  assert.match(details, new RegExp(`${literally(site.host)}\\s+${db.queued}\\s+0\\s+unlimited\\s+-\\s+retry_after for \\d+ s`), details);
  await page.getByText(`${site.host}: up to `).first().waitFor({ timeout: 10_000 }); // batch summaries, under "Events with Metadata"

  await ui.openTab('Search Attributes');
  const shown = await ui.shownSearchAttributes();
  assert.deepEqual(
    { phase: shown.TcrawlPhase, saved: shown.TcrawlSaved, queued: shown.TcrawlQueued, failed: shown.TcrawlFailed, crawlId: shown.TcrawlCrawlId, seedHost: shown.TcrawlSeedHost },
    { phase: 'paused', saved: `${db.saved}`, queued: `${db.queued}`, failed: `${db.failed}`, crawlId: held.crawlId, seedHost: site.host },
  );
  assert.deepEqual(pageErrors, []);

  // Nothing left running: the cancelled crawl winds down and keeps its figures.
  const cancelled = await held.cancel();
  assert.equal(cancelled?.saved, db.saved);
});
