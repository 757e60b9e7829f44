/**
 * `tcrawl replay`: every execution of a crawl's workflow (here a crawl that
 * continued as new) replayed against the workflow code — OK against the
 * code that ran it and against a change made behind `patched()`, diverging
 * at the first batch against the same change made without one — and the
 * histories saved with `--out` replay again from disk.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { startCrawl } from '../../src/client';
import { isBatchActivity } from '../../src/crawl-types';
import { replayCrawl, type CrawlReplay } from '../../src/operate/replay';
import { parseCrawlSpec } from '../../src/spec';
import { crawlWorkflowsPath } from '../../src/workflow-code';
import type { HistoryEvents } from '../deploy/crawl-outcome';
import type { FixtureSite } from '../fixtures/site';
import { runTcrawl } from '../helpers/worker-processes';
import { localSiteDefaults, startWorker, uniqueId, withStackAndSite, type TestStack } from '../helpers/stack';

const variants = {
  unpatched: require.resolve('../fixtures/workflow-variants/extra-timer-unpatched'),
  patched: require.resolve('../fixtures/workflow-variants/extra-timer-patched'),
};

describe('tcrawl replay', () => {
  let stack: TestStack;
  let site: FixtureSite;
  withStackAndSite((opened, fixture) => ([stack, site] = [opened, fixture]));

  const crawlId = uniqueId('replay');
  let finalRunId: string;
  let histories: Map<string, HistoryEvents>;

  before(async () => {
    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const spec = parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 2 });
    const handle = await startCrawl(stack.client, taskQueue, crawlId, spec, { continueAsNewAfterBatches: 3 });
    await worker.runUntil(handle.result());
    finalRunId = (await handle.describe()).runId;
    histories = new Map();
    for await (const { runId } of stack.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` })) {
      histories.set(runId, (await stack.client.workflow.getHandle(handle.workflowId, runId).fetchHistory()).events ?? []);
    }
  });

  it('reports OK for every execution of a crawl that continued as new, in chain order; the --out histories replay again from disk', async (t) => {
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-replay-'));
    const replay = await replayCrawl(stack.client, crawlId, { outDir });

    assert.equal(replay.ok, true, JSON.stringify(replay.executions.filter((e) => !e.ok)));
    assert.ok(replay.executions.length >= 3, `expected several runs, got ${replay.executions.length}`);
    assert.deepEqual(new Set(replay.executions.map((e) => e.runId)), new Set(histories.keys()), 'every execution, closed ones included');
    const [first, ...rest] = replay.executions;
    assert.equal(first.continuedFromRunId, null, 'the chain starts with the run the crawl started');
    rest.forEach((execution, i) => assert.equal(execution.continuedFromRunId, replay.executions[i].runId, 'each run follows the one it continued from'));
    assert.deepEqual(
      replay.executions.map((e) => e.status),
      [...rest.map(() => 'CONTINUED_AS_NEW'), 'COMPLETED'],
    );
    assert.equal(replay.executions.at(-1)!.runId, finalRunId);

    const index = JSON.parse(readFileSync(path.join(outDir, 'index.json'), 'utf8')) as CrawlReplay;
    assert.deepEqual(index, replay, 'index.json is the result, naming each file, in chain order');
    const fromDisk = index.executions.map(({ file, runId }) => {
      const history = historyFromJSON(JSON.parse(readFileSync(path.join(outDir, file!), 'utf8')));
      assert.equal(history.events?.length, histories.get(runId)!.length, `${file} holds the whole history`);
      return { workflowId: index.workflowId, history };
    });
    const errors: string[] = [];
    for await (const { error } of Worker.runReplayHistories({ workflowsPath: crawlWorkflowsPath }, fromDisk)) if (error) errors.push(error.message);
    assert.deepEqual(errors, [], 'the saved histories replay from disk');
    t.diagnostic(`${replay.executions.length} executions, ${replay.executions.map((e) => e.events).join(' + ')} events`);
  });

  it('reports, per execution, the event where a change made without patched() diverges; the same change behind patched() replays', async () => {
    const unpatched = await replayCrawl(stack.client, crawlId, { workflowInterceptorModules: [variants.unpatched] });
    assert.equal(unpatched.ok, false);
    for (const execution of unpatched.executions) {
      assert.equal(execution.ok, false, `run ${execution.runId} must diverge`);
      if (execution.ok) continue;
      // The variant starts a timer where the history has the run's first batch.
      const events = histories.get(execution.runId)!;
      const firstBatch = events.find((e) => isBatchActivity(e.activityTaskScheduledEventAttributes?.activityType?.name))!;
      const eventId = Number(firstBatch.eventId);
      const taskBefore = events.filter((e) => e.workflowTaskCompletedEventAttributes && Number(e.eventId) < eventId).at(-1)!;
      const { message, ...divergence } = execution.divergence;
      assert.deepEqual(divergence, {
        kind: 'nondeterminism',
        eventId,
        eventType: 'ActivityTaskScheduled',
        activityType: firstBatch.activityTaskScheduledEventAttributes!.activityType!.name,
        resetEventId: Number(taskBefore.eventId),
      });
      assert.match(message, new RegExp(`Nondeterminism error: .*HistoryEvent\\(id: ${eventId}, ActivityTaskScheduled\\)`));
    }

    const patched = await replayCrawl(stack.client, crawlId, { workflowInterceptorModules: [variants.patched] });
    assert.equal(patched.ok, true, JSON.stringify(patched.executions.filter((e) => !e.ok)));
  });

  it('the CLI: replay prints OK per execution and exits 0, --json and --out as the library; an unknown crawl exits 2', async () => {
    const env = { ...process.env, TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl };
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-replay-cli-'));
    const text = await runTcrawl(['replay', crawlId], env, 120_000);
    assert.equal(text.code, 0, text.stderr);
    const okLines = text.stdout.split('\n').filter((line) => line.startsWith('OK '));
    assert.deepEqual(new Set(okLines.map((line) => line.split(/\s+/)[1])), new Set(histories.keys()), text.stdout);

    const json = await runTcrawl(['replay', crawlId, '--json', '--out', outDir], env, 120_000);
    assert.equal(json.code, 0, json.stderr);
    const replay = JSON.parse(json.stdout) as CrawlReplay;
    assert.equal(replay.ok, true);
    assert.deepEqual(JSON.parse(readFileSync(path.join(outDir, 'index.json'), 'utf8')), replay);
    for (const { file } of replay.executions) readFileSync(path.join(outDir, file!));

    const unknown = await runTcrawl(['replay', uniqueId('no-such-crawl')], env);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /No crawl with id "no-such-crawl-[0-9a-f]+"/);
  });
});
