/**
 * A rolling deploy: workers of the previous release (workflow version 5, run
 * from its own sources) and of this one serve one task queue at once, while a
 * crawl runs. This release runs the previous release's batches, the crawl's
 * workflow moves from the old code to the new one mid-crawl (replaying what
 * the old one recorded), and the crawl completes with every page saved once.
 * The way back is closed for what a release adds: old code fails on the
 * patch markers, workflow types and activities new code wrote, so such a
 * crawl can only go on on this release or later.
 * A previous-release worker that joins late still takes batches: activities
 * keep their inputs and results readable by the release before (a version
 * that adds activities, as version 3 did, has that worker fail the new ones'
 * attempts, retried until a worker of this release takes them).
 *
 *   npm run test:deploy        # needs the git history (commit b5d9649)
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { Worker } from '@temporalio/worker';
import { setCrawlRate, startCrawl, workflowIdFor } from '../../src/client';
import type { BatchFailure, CrawlSummary } from '../../src/crawl-types';
import { parseCrawlSpec } from '../../src/spec';
import { progressQuery } from '../../workflows/messages';
import { startCountingSite, type CountingSite } from '../fixtures/counting-site';
import { loadHistory, patchIds, recordedHistories, recordedSourceHashes, workflowSourcesHash } from '../fixtures/histories';
import { kill, spawnWorkers, waitFor, waitForPollers, workerEnv } from '../helpers/worker-processes';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { batchRuns, crawlOutcome, savedPages, workflowTaskWorkers, type BatchRun, type HistoryEvents } from './crawl-outcome';
import { extractPreviousRelease, identityOf, previousRelease, previousReleaseVersion, stopGracefully, type PreviousRelease } from './previous-release';

const pagesPerHost = 100;
/** Slow enough that the deploy is over long before the crawl; lifted (set-rate 0) once it is. */
const ratePerHost = 2;
/** The same crawl in both releases' terms. */
const crawlOptions = { rate: ratePerHost, concurrency: 2, batchSize: 2, maxDepth: 20, allowPrivate: true };

/** After the last old worker is gone, with no rate limit: 200 pages take a few seconds. */
const completionTimeoutMs = 60_000;

/** Rejects after `ms` with the message `explain` gives then. */
function notAfter(ms: number, explain: () => Promise<string>): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => explain().then((message) => reject(new Error(message)), reject), ms).unref());
}

describe(`rolling deploy from ${previousRelease} (workflow version ${previousReleaseVersion})`, () => {
  let stack: TestStack;
  let site: CountingSite;
  let release: PreviousRelease;
  const procs: ChildProcess[] = [];

  before(async () => {
    release = extractPreviousRelease();
    stack = await openStack();
    site = await startCountingSite({ hosts: 2, pagesPerHost });
  });

  after(async () => {
    await Promise.all(procs.map(kill));
    await site?.close();
    await stack?.close();
    release?.remove();
  });

  it(`${previousRelease}'s workflow sources are the ones recorded as version ${previousReleaseVersion}`, () => {
    assert.equal(workflowSourcesHash(path.join(release.dir, 'workflows')), recordedSourceHashes()[previousReleaseVersion]);
  });

  it('the previous release cannot take back a crawl this release has run: it fails on the patch markers, workflow types and activities it does not know', async () => {
    const replays = recordedHistories().map(({ file, version }) => ({ workflowId: path.basename(file), version, history: loadHistory(file) }));
    const outcomes = new Map<string, string>();
    for await (const { workflowId, error } of Worker.runReplayHistories({ workflowsPath: path.join(release.dir, 'workflows') }, replays)) {
      outcomes.set(workflowId, error?.message ?? 'ok');
    }
    // What the previous release knows: the patches, workflow types and activities of its own histories and earlier ones.
    const used = (history: (typeof replays)[number]['history']) => [
      ...patchIds(history).map((id) => `patch ${id}`),
      ...(history.events ?? []).flatMap((event) => {
        const workflowType = event.workflowExecutionStartedEventAttributes?.workflowType?.name;
        const activityType = event.activityTaskScheduledEventAttributes?.activityType?.name;
        return [...(workflowType ? [`workflow ${workflowType}`] : []), ...(activityType ? [`activity ${activityType}`] : [])];
      }),
    ];
    const known = new Set(replays.filter(({ version }) => version <= previousReleaseVersion).flatMap(({ history }) => used(history)));
    for (const { workflowId, version, history } of replays) {
      const outcome = outcomes.get(workflowId) ?? '';
      const unknown = used(history).filter((name) => !known.has(name));
      // Its first sign may be the marker, or a new update or activity the old code does not know, met before it.
      if (unknown.some((name) => name.startsWith('patch ') || name.startsWith('activity '))) assert.match(outcome, /Nondeterminism error/, `${workflowId}: ${unknown.join(', ')}`);
      else if (unknown.length > 0) assert.notEqual(outcome, 'ok', `${workflowId}: ${unknown.join(', ')}`);
      else assert.equal(outcome, 'ok', `${workflowId} (version ${version}) uses nothing the previous release lacks`);
    }
  });

  it('a crawl started under the previous release: its workflow moves to this release, batches run on both, every page saved once', async (t) => {
    const crawlId = uniqueId('rolling-old');
    const env = workerEnv(stack, uniqueId('deploy'));
    const old = start(release.spawnWorker(env));
    await waitForPollers(stack, env.TCRAWL_TASK_QUEUE!, [old]);
    const { rate, concurrency, batchSize, maxDepth } = crawlOptions;
    const flags = ['--rate', rate, '--concurrency', concurrency, '--batch-size', batchSize, '--max-depth', maxDepth].map(String);
    await release.run(['crawl', ...site.hosts.map((h) => h.pageUrl(0)), '--id', crawlId, ...flags, '--allow-private'], env);
    const summary = await deploy(t, crawlId, env, old);
    t.diagnostic(`saved ${summary.saved} pages`);
  });

  it('a crawl started by this release’s client while only previous-release workers run: no batch fails as its workflow moves to this release', async (t) => {
    const crawlId = uniqueId('rolling-new');
    const env = workerEnv(stack, uniqueId('deploy'));
    const old = start(release.spawnWorker(env));
    await waitForPollers(stack, env.TCRAWL_TASK_QUEUE!, [old]);
    const spec = parseCrawlSpec({ ...crawlOptions, seeds: site.hosts.map((h) => h.pageUrl(0)) });
    await startCrawl(stack.client, env.TCRAWL_TASK_QUEUE!, crawlId, spec);
    const summary = await deploy(t, crawlId, env, old);
    t.diagnostic(`saved ${summary.saved} pages`);
  });

  function start(proc: ChildProcess): ChildProcess {
    procs.push(proc);
    return proc;
  }

  /**
   * With `old` (the previous release) running the crawl: a current worker
   * joins, `old` is stopped, a late previous-release worker joins and
   * leaves, the current one completes the crawl. Checks who ran what, and
   * what the crawl left.
   */
  async function deploy(t: TestContext, crawlId: string, env: NodeJS.ProcessEnv, old: ChildProcess): Promise<CrawlSummary> {
    const taskQueue = env.TCRAWL_TASK_QUEUE!;
    const handle = stack.client.workflow.getHandle(workflowIdFor(crawlId));
    const startedAt = Date.now();
    const history = async (): Promise<HistoryEvents> => {
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING') throw new Error(`the crawl ended (${status.name}) before the deploy was over: slow it down`);
      return (await handle.fetchHistory()).events ?? [];
    };
    const ran = (scheduledBy: ChildProcess, ranBy: ChildProcess) => (runs: BatchRun[]) =>
      runs.some((run) => run.scheduledBy === identityOf(scheduledBy) && run.ranBy === identityOf(ranBy));
    const until = async (what: string, check: (events: HistoryEvents) => boolean) => {
      await waitFor(what, async () => check(await history()), 90_000);
      t.diagnostic(`${((Date.now() - startedAt) / 1000).toFixed(1)} s: ${what} (${await savedPages(stack.pool, crawlId)} pages saved)`);
    };
    const explain = (proc: ChildProcess) => (error: unknown) => {
      throw new Error(`${(error as Error).message}\n--- ${previousRelease} worker stderr:\n${release.stderrOf(proc)}`, { cause: error });
    };

    await until('the previous release runs the crawl', (events) => ran(old, old)(batchRuns(events))).catch(explain(old));
    const current = start(spawnWorkers(stack, taskQueue, 1)[0]);
    await waitForPollers(stack, taskQueue, [current]);
    await until('a batch of the previous release’s workflow run by this release', (events) => ran(old, current)(batchRuns(events)));
    await stopGracefully(old);
    await until('this release runs the crawl’s workflow', (events) => workflowTaskWorkers(events).has(identityOf(current)));
    const late = start(release.spawnWorker(env));
    await waitForPollers(stack, taskQueue, [late]);
    const scheduledByCurrent = (events: HistoryEvents) => batchRuns(events).filter((run) => run.scheduledBy === identityOf(current) && run.ranBy === identityOf(current)).length;
    const before = scheduledByCurrent(await history());
    await until('this release’s batches go on with a previous-release worker on the queue', (events) => scheduledByCurrent(events) >= before + 3).catch(explain(late));
    // The deploy is over: this release alone finishes the crawl, at full speed.
    await stopGracefully(late);
    await setCrawlRate(stack.client, crawlId, { target: { default: true }, rate: 0 });
    const stuck = async () => {
      const progress = await handle.query(progressQuery);
      return `the crawl did not complete on this release alone within ${completionTimeoutMs} ms: ${progress.saved} saved, ${progress.queued} queued; last batch failure: ${JSON.stringify(progress.batchFailures?.at(-1))}`;
    };
    const summary = await Promise.race([handle.result(), notAfter(completionTimeoutMs, stuck)]).catch(async (error: unknown) => {
      await handle.terminate('the rolling-deploy test failed').catch(() => {}); // nothing is left running
      throw error;
    });
    t.diagnostic(`${((Date.now() - startedAt) / 1000).toFixed(1)} s: the crawl completed`);

    const events = (await handle.fetchHistory()).events ?? [];
    const failedTasks = events.filter((e) => e.workflowTaskFailedEventAttributes);
    t.diagnostic(`workflow tasks failed: ${failedTasks.length}${failedTasks.map((e) => ` — ${e.workflowTaskFailedEventAttributes?.identity}: ${e.workflowTaskFailedEventAttributes?.failure?.message}`).join('')}`);
    const { savedUrls, unfinished } = await crawlOutcome(stack.pool, crawlId);
    const expected = site.hosts.flatMap((h) => Array.from({ length: pagesPerHost }, (_, page) => h.pageUrl(page))).sort();
    assert.deepEqual(savedUrls, expected, 'every page saved exactly once');
    assert.equal(summary.saved, savedUrls.length, 'counters = rows');
    assert.equal(summary.failed, 0);
    assert.deepEqual((summary.batchFailures ?? []).map((f: BatchFailure) => `${f.code}: ${f.message}`), [], 'no batch failed for good');
    assert.equal(unfinished, 0, 'nothing left queued or leased');
    return summary;
  }
});
