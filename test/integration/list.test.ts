/**
 * `tcrawl list` against a real Temporal server: crawls that completed (one
 * in a single run, one across continue-as-new runs), one running with no
 * worker, one terminated, one terminated then run again, and one whose
 * execution carries tcrawl's search attributes. Each test lists only this
 * suite's crawls (`WorkflowId STARTS_WITH`), as the server is shared.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startCrawl, workflowIdFor } from '../../src/client';
import { InvalidInputError } from '../../src/errors';
import { listCrawls, type CrawlListRow } from '../../src/operate/list';
import { scopeRulesFor } from '../../src/scope';
import { crawlSearchAttributes } from '../../workflows/search-attributes';
import { parseCrawlSpec } from '../../src/spec';
import { crawlWorkflow } from '../../workflows';
import { localSiteDefaults, openStack, runCrawl, startWorker, uniqueId, type TestStack } from '../helpers/stack';
import { runTcrawl, waitFor } from '../helpers/worker-processes';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';

describe('tcrawl list', () => {
  let stack: TestStack;
  let site: FixtureSite;

  const prefix = uniqueId('list');
  const ids = {
    completed: `${prefix}-completed`,
    chain: `${prefix}-chain`,
    running: `${prefix}-running`,
    terminated: `${prefix}-terminated`,
    rerun: `${prefix}-rerun`,
    attributes: `${prefix}-attributes`,
  };
  const ours = `WorkflowId STARTS_WITH "crawl-${prefix}"`;
  /** No worker ever polls it: crawls started there stay Running. */
  const idleQueue = uniqueId('idle');
  let rerunLatestRunId = '';
  let env: NodeJS.ProcessEnv;

  const spec = () => parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')] });
  /** What startCrawl sends, for executions this suite starts by hand (a re-run; one with search attributes). */
  const inputFor = (crawlId: string) => {
    const { seeds, ...settings } = spec();
    return { crawlId, token: randomUUID(), seeds, settings, scope: scopeRulesFor(spec()) };
  };

  before(async () => {
    stack = await openStack();
    site = await startFixtureSite();
    env = { ...process.env, TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl };
    await runCrawl(stack, { seeds: [site.url('/')] }, ids.completed);

    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const chain = await startCrawl(stack.client, taskQueue, ids.chain, parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], batchSize: 2 }), { continueAsNewAfterBatches: 2 });
    await worker.runUntil(chain.result());

    await startCrawl(stack.client, idleQueue, ids.running, spec());
    await (await startCrawl(stack.client, idleQueue, ids.terminated, spec())).terminate('tcrawl list test');
    await (await startCrawl(stack.client, idleQueue, ids.rerun, spec())).terminate('tcrawl list test: to be run again');
    const rerun = await stack.client.workflow.start(crawlWorkflow, {
      taskQueue: idleQueue,
      workflowId: workflowIdFor(ids.rerun),
      workflowIdReusePolicy: 'ALLOW_DUPLICATE',
      args: [inputFor(ids.rerun)],
    });
    rerunLatestRunId = rerun.firstExecutionRunId;
    await stack.client.workflow.start(crawlWorkflow, {
      taskQueue: idleQueue,
      workflowId: workflowIdFor(ids.attributes),
      args: [inputFor(ids.attributes)],
      typedSearchAttributes: [
        { key: crawlSearchAttributes.crawlId, value: ids.attributes },
        { key: crawlSearchAttributes.phase, value: 'paused' },
        { key: crawlSearchAttributes.seedHost, value: 'shop.example.com' },
        { key: crawlSearchAttributes.saved, value: 12 },
        { key: crawlSearchAttributes.queued, value: 34 },
        { key: crawlSearchAttributes.failed, value: 5 },
      ],
    });
    // Visibility is eventually consistent: wait until every execution above is listed as it now is.
    await waitFor(
      'the visibility store to list every crawl of this suite',
      async () => {
        const latestOrEarlier = await stack.client.workflow.count(`${ours} AND ExecutionStatus != "ContinuedAsNew"`);
        const running = await stack.client.workflow.count(`${ours} AND ExecutionStatus = "Running"`);
        return running.count === 3 && latestOrEarlier.count === 7;
      },
      30_000,
    );
  });

  after(async () => {
    // The server is shared: leave no crawl of this suite running.
    for (const id of [ids.running, ids.rerun, ids.attributes]) await stack?.client.workflow.getHandle(workflowIdFor(id)).terminate('tcrawl list test: done').catch(() => undefined);
    await site?.close();
    await stack?.close();
  });

  async function listJson(...args: string[]): Promise<CrawlListRow[]> {
    const run = await runTcrawl(['list', '--json', '--query', ours, ...args], env);
    assert.equal(run.code, 0, run.stderr);
    return JSON.parse(run.stdout);
  }

  const idsOf = (rows: CrawlListRow[]) => rows.map((row) => row.crawlId).sort();

  it('--json: one row per crawl, its latest run, running crawls first', async () => {
    const rows = await listJson();
    assert.deepEqual(idsOf(rows), Object.values(ids).sort(), 'each crawl once, however many runs it had');
    const byId = new Map(rows.map((row) => [row.crawlId, row]));
    const status = (id: string) => byId.get(id)!.status;
    assert.equal(status(ids.completed), 'Completed');
    assert.equal(status(ids.chain), 'Completed', 'the last run of a continue-as-new chain, not an earlier one');
    assert.equal(status(ids.running), 'Running');
    assert.equal(status(ids.terminated), 'Terminated');
    assert.equal(status(ids.rerun), 'Running', 'the new run, not the terminated one');

    assert.equal(byId.get(ids.completed)!.runs, 1);
    assert.ok(byId.get(ids.chain)!.runs >= 3, `the chain continued as new at least twice (runs: ${byId.get(ids.chain)!.runs})`);
    assert.equal(byId.get(ids.rerun)!.runs, 2);
    assert.equal(byId.get(ids.rerun)!.runId, rerunLatestRunId);

    const statuses = rows.map((row) => row.status);
    assert.deepEqual(statuses.slice(0, 3), ['Running', 'Running', 'Running'], `running first: ${statuses.join(', ')}`);
    for (const row of rows) {
      assert.equal(row.workflowId, workflowIdFor(row.crawlId));
      assert.ok(!Number.isNaN(Date.parse(row.startedAt as unknown as string)), 'startedAt is an ISO date');
      if (row.status === 'Running') assert.equal(row.closedAt, null);
      else assert.ok(row.durationMs !== null && row.durationMs >= 0, `${row.crawlId} has a duration`);
    }
  });

  /** The library the CLI calls, for what does not depend on the CLI (each CLI run costs a process start). */
  const list = (options: Parameters<typeof listCrawls>[1] = {}) => listCrawls(stack.client, { ...options, query: options.query ? `${ours} AND ${options.query}` : ours });

  it('shows the search attributes an execution carries, blank (null) where it has none', async () => {
    const rows = await list();
    const attributes = rows.find((row) => row.crawlId === ids.attributes)!;
    assert.deepEqual(
      { phase: attributes.phase, saved: attributes.saved, queued: attributes.queued, failed: attributes.failed, seedHost: attributes.seedHost },
      { phase: 'paused', saved: 12, queued: 34, failed: 5, seedHost: 'shop.example.com' },
    );
    const rerun = rows.find((row) => row.crawlId === ids.rerun)!;
    assert.deepEqual(
      { phase: rerun.phase, saved: rerun.saved, queued: rerun.queued, failed: rerun.failed, seedHost: rerun.seedHost },
      { phase: null, saved: null, queued: null, failed: null, seedHost: null },
      'started without attributes and never run by a worker',
    );
  });

  it('--running, --finished and --failed filter by the latest run: a failed crawl run again is running, not failed', async () => {
    assert.deepEqual(idsOf(await list({ status: 'running' })), [ids.attributes, ids.rerun, ids.running].sort());
    assert.deepEqual(idsOf(await list({ status: 'finished' })), [ids.chain, ids.completed].sort());
    assert.deepEqual(idsOf(await list({ status: 'failed' })), [ids.terminated]);
    assert.deepEqual(idsOf(await listJson('--failed')), [ids.terminated], 'the CLI flag');
  });

  it('--query is ANDed with the rest', async () => {
    assert.deepEqual(idsOf(await list({ status: 'running', query: 'TcrawlPhase = "paused"' })), [ids.attributes]);
    assert.deepEqual(idsOf(await list({ status: 'finished', query: 'TcrawlPhase = "paused"' })), []);
  });

  it('--limit caps the crawls listed', async () => {
    const rows = await list({ limit: 2 });
    assert.equal(rows.length, 2);
    assert.equal(new Set(rows.map((row) => row.crawlId)).size, 2);
  });

  it('prints an aligned table: every value starts under its header', async () => {
    const run = await runTcrawl(['list', '--query', ours], env);
    assert.equal(run.code, 0, run.stderr);
    const [header, ...lines] = run.stdout.trimEnd().split('\n');
    assert.equal(lines.length, Object.keys(ids).length);
    const statusAt = header.indexOf('status');
    const runsEnd = header.indexOf('runs') + 'runs'.length;
    const attributes = lines.find((line) => line.startsWith(`${ids.attributes} `))!;
    assert.equal(attributes.indexOf('Running'), statusAt);
    assert.equal(attributes.indexOf('paused'), header.indexOf('phase'));
    assert.equal(attributes.indexOf(' 12 ') + ' 12'.length, header.indexOf('saved') + 'saved'.length, 'counts are right-aligned');
    assert.match(attributes, /shop\.example\.com$/);
    const chain = lines.find((line) => line.startsWith(`${ids.chain} `))!;
    assert.equal(chain.indexOf('Completed'), statusAt);
    assert.match(chain.slice(0, runsEnd), /\d+$/, 'the runs column');
    assert.doesNotMatch(run.stdout, /\x1b/);
  });

  it('refuses --running with --failed (exit 2)', async () => {
    const run = await runTcrawl(['list', '--running', '--failed'], env);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /option '--running' cannot be used with option '--failed'/);
  });

  it('refuses a limit out of range (exit 2)', async () => {
    const run = await runTcrawl(['list', '--limit', '0'], env);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /limit must be a whole number from 1 to 1000, not 0/);
  });

  it("turns a query Temporal refuses into TCRAWL_INVALID_QUERY naming the search attributes (exit 2)", async () => {
    const run = await runTcrawl(['list', '--query', 'TcrawlPhaze = "paused"'], env);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /--query "TcrawlPhaze = \\"paused\\"" was refused by Temporal: .*'TcrawlPhaze' is not a valid search attribute/);
    assert.match(run.stderr, /TcrawlCrawlId \(Keyword\), TcrawlPhase \(Keyword\), TcrawlSeedHost \(Keyword\), TcrawlSaved \(Int\), TcrawlQueued \(Int\), TcrawlFailed \(Int\)/);
    assert.match(run.stderr, /ExecutionStatus, StartTime, CloseTime/);

    await assert.rejects(
      listCrawls(stack.client, { query: 'TcrawlSaved >' }),
      (error: unknown) => error instanceof InvalidInputError && error.code === 'TCRAWL_INVALID_QUERY' && /syntax error/.test(error.message),
    );
  });
});
