/**
 * A deploy mid-crawl: the crawl's worker is replaced by one whose workflow
 * issues different commands (an extra timer before each batch, built by a
 * workflow interceptor: test/fixtures/workflow-variants). Unpatched, the new
 * code cannot replay the crawl's history; behind `patched()` it can, and the
 * crawl finishes with every page saved once.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultPayloadConverter } from '@temporalio/common';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { Worker } from '@temporalio/worker';
import { startCrawl } from '../../src/client';
import { isBatchActivity } from '../../src/crawl-types';
import { parseCrawlSpec } from '../../src/spec';
import { createCrawlWorker } from '../../src/worker';
import { crawlOutcome, savedPages, type HistoryEvents } from '../deploy/crawl-outcome';
import { startCountingSite, type CountingSite } from '../fixtures/counting-site';
import { patchIdOf, patchIds } from '../fixtures/histories';
import { extraTimerPatch, extraTimerSummary } from '../fixtures/workflow-variants/extra-timer';
import { waitFor } from '../helpers/worker-processes';
import { localSiteDefaults, openStack, uniqueId, type TestStack } from '../helpers/stack';

const pages = 60;
const variants = {
  unpatched: require.resolve('../fixtures/workflow-variants/extra-timer-unpatched'),
  patched: require.resolve('../fixtures/workflow-variants/extra-timer-patched'),
};

describe('versioning: a deploy mid-crawl', () => {
  let stack: TestStack;
  let site: CountingSite;

  before(async () => {
    stack = await openStack();
    // Slow pages keep the crawl going while workers are swapped.
    site = await startCountingSite({ hosts: 1, pagesPerHost: pages, latencyMs: 200 });
  });

  after(async () => {
    await site?.close();
    await stack?.close();
  });

  /** A worker of the current workflow code, or of a variant of it. */
  function createWorker(taskQueue: string, variant?: keyof typeof variants): Promise<Worker> {
    return createCrawlWorker({ connection: stack.nativeConnection, namespace: 'default', taskQueue, pool: stack.pool, workflowInterceptorModules: variant && [variants[variant]] });
  }

  it('an unpatched change fails the crawl’s next workflow task as non-deterministic; behind patched() the crawl completes', async (t) => {
    const crawlId = uniqueId('deploy');
    const taskQueue = uniqueId('tq');
    const host = site.hosts[0];
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [host.pageUrl(0)], batchSize: 2, concurrency: 2 });
    const handle = await startCrawl(stack.client, taskQueue, crawlId, spec);
    const events = async (): Promise<HistoryEvents> => (await handle.fetchHistory()).events ?? [];

    // runUntil shuts the worker down when its promise settles: its workflow cache goes with it.
    const current = await createWorker(taskQueue);
    await current.runUntil(waitFor('the first pages to be saved', async () => (await savedPages(stack.pool, crawlId)) >= 6, 60_000));
    const savedBeforeDeploy = await savedPages(stack.pool, crawlId);
    assert.ok(savedBeforeDeploy < pages, `the crawl must still be running at the deploy (saved ${savedBeforeDeploy} of ${pages})`);

    const unpatched = await createWorker(taskQueue, 'unpatched');
    const startedAt = Date.now();
    let failedTask: HistoryEvents[number] | undefined;
    await unpatched.runUntil(
      waitFor('a failed workflow task', async () => (failedTask = (await events()).find((e) => e.workflowTaskFailedEventAttributes)) !== undefined, 60_000),
    );
    // As JSON (the Web UI's view), the cause is named rather than numbered.
    const { cause, failure } = JSON.parse(historyToJSON({ events: [failedTask!] })).events[0].workflowTaskFailedEventAttributes;
    t.diagnostic(`unpatched worker: ${cause} ${Date.now() - startedAt} ms after it started: ${failure?.message}`);
    assert.equal(cause, 'WORKFLOW_TASK_FAILED_CAUSE_NON_DETERMINISTIC_ERROR');
    assert.match(failure?.message ?? '', /Nondeterminism/);
    assert.equal(await handle.describe().then((d) => d.status.name), 'RUNNING', 'a non-deterministic task fails the task, not the crawl');

    const patched = await createWorker(taskQueue, 'patched');
    const summary = await patched.runUntil(handle.result());

    const { savedUrls, unfinished } = await crawlOutcome(stack.pool, crawlId);
    assert.deepEqual(savedUrls, Array.from({ length: pages }, (_, page) => host.pageUrl(page)).sort(), 'every page saved exactly once');
    assert.equal(summary.saved, savedUrls.length, 'counters = rows');
    assert.equal(unfinished, 0, 'nothing left queued or leased');

    // The patch marker comes where the patched code first ran live; batches before it replayed without timers.
    const history = await events();
    assert.equal(patchIds({ events: history }).filter((id) => id === extraTimerPatch).length, 1, 'one marker of the patch');
    const marker = history.findIndex((e) => patchIdOf(e) === extraTimerPatch);
    const isExtraTimer = (e: HistoryEvents[number]) =>
      e.timerStartedEventAttributes && e.userMetadata?.summary && defaultPayloadConverter.fromPayload(e.userMetadata.summary) === extraTimerSummary;
    const isBatch = (e: HistoryEvents[number]) => isBatchActivity(e.activityTaskScheduledEventAttributes?.activityType?.name);
    const [before, after] = [history.slice(0, marker), history.slice(marker)];
    assert.ok(before.filter(isBatch).length > 0, 'batches ran before the deploy');
    assert.equal(before.filter(isExtraTimer).length, 0, 'no extra timer before the patch marker');
    assert.ok(after.filter(isBatch).length > 0, 'batches ran after the deploy');
    assert.equal(after.filter(isExtraTimer).length, after.filter(isBatch).length, 'one extra timer for each batch after the patch marker');
    t.diagnostic(`saved ${savedBeforeDeploy} of ${pages} pages before the deploy; batches ${before.filter(isBatch).length} before the patch marker, ${after.filter(isBatch).length} after`);
  });
});
