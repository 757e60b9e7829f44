/**
 * The clan-harvest example (examples/clan-harvest.yaml) end to end: three
 * `tcrawl worker` processes harvest the imitation clan API
 * (test/fixtures/clan-api.ts) through `tcrawl crawl --spec … --wait`, the
 * example spec as written but for its port. Judged from the API's side —
 * every request it saw, with its time and status — and from the rows.
 *
 * The API key is made up per run and given to the workers only, as the
 * environment variable the spec names: the CLI that starts the crawl never
 * has it. Then the key must appear nowhere the crawl records anything: every
 * run of its workflow history (payloads decoded) and every table.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { escapeIdentifier } from 'pg';
import { workflowIdFor } from '../../src/client';
import { harvestRequestCount, startClanApi, type ClanApi } from '../fixtures/clan-api';
import { CLAN_API_QUOTA, apiFigures, describeFigures, exampleSpecOnPort } from '../helpers/api-examples';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { kill, runTcrawl, spawnWorkers, stderrTail, waitForPollers, workerEnv } from '../helpers/worker-processes';

/** 7 list pages and 620 members requests: over 600 requests, a minute at 10/s. */
const clanCount = 620;
const fleetSize = 3;

describe('example clan-harvest: a fleet of 3 workers harvests a quota-bound API', () => {
  const apiKey = `clan-key-${randomBytes(16).toString('hex')}`;
  const taskQueue = uniqueId('tq-clans');
  const crawlId = uniqueId('clan-harvest');
  let stack: TestStack;
  let api: ClanApi;
  let fleet: ChildProcess[] = [];

  before(async () => {
    stack = await openStack();
    api = await startClanApi({ apiKey, clans: clanCount, quota: CLAN_API_QUOTA });
    fleet = spawnWorkers(stack, taskQueue, fleetSize, { env: { CLAN_API_KEY: apiKey } });
    await waitForPollers(stack, taskQueue, fleet);
  });

  after(async () => {
    await Promise.all(fleet.map(kill));
    await api?.close();
    await stack?.close();
  });

  it('saves every clan and member exactly once, with at most 10 requests a second over both hostnames and no 429', async (t) => {
    const spec = exampleSpecOnPort('clan-harvest', api.port);
    const env = workerEnv(stack, taskQueue);
    delete env.CLAN_API_KEY;
    const run = await runTcrawl(['crawl', '--spec', spec, '--id', crawlId, '--wait', '--json'], env, 600_000);
    const figures = apiFigures(api.requests);
    t.diagnostic(`API saw ${describeFigures(figures)}`);
    const logs = fleet.map((w) => `--- worker ${w.pid} stderr (tail):\n${stderrTail(w).slice(-1500)}`).join('\n');
    assert.equal(run.code, 0, `tcrawl crawl exited ${run.code}:\n${run.stderr}\n${logs}`);
    const summary = JSON.parse(run.stdout) as { saved: number; failed: number; skipped: number; elapsedMs: number };
    t.diagnostic(`crawl: ${summary.saved} saved, ${summary.failed} failed, ${summary.skipped} skipped in ${(summary.elapsedMs / 1000).toFixed(1)} s`);

    const pages = harvestRequestCount(clanCount, 100);
    assert.ok(pages >= 600);
    assert.deepEqual({ saved: summary.saved, failed: summary.failed, skipped: summary.skipped }, { saved: pages, failed: 0, skipped: 0 });
    await assertItemsExactlyOnce(stack, crawlId, api);

    // Every page requested once, each answered 200: no 401 (the key was sent), no 429 (the quota held).
    const apiPaths = api.requests.filter((r) => r.path !== '/robots.txt');
    assert.equal(apiPaths.length, pages, 'one request per page');
    assert.equal(new Set(apiPaths.map((r) => `${r.host}${r.path}`)).size, pages, 'no page requested twice');
    assert.deepEqual(figures.byStatus['429'] ?? 0, 0, 'no 429');
    assert.deepEqual(
      apiPaths.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.host}${r.path}`),
      [],
      'every API request answered 200',
    );
    assert.ok(figures.byHost[api.hosts[0]] > 0 && figures.byHost[api.hosts[1]] > 0, 'both hostnames were used');
    assert.ok(
      figures.maxInSecondLessJitter <= CLAN_API_QUOTA.requests,
      `${figures.maxInSecondLessJitter} requests within ${CLAN_API_QUOTA.windowMs} ms over both hostnames, over ${CLAN_API_QUOTA.requests}/s`,
    );
  });

  it('keeps the API key out of every run of the workflow history and out of every table', async () => {
    const history = await historyText(stack.client, workflowIdFor(crawlId));
    // The scan reads decoded payloads: what the crawl did record is there.
    assert.ok(history.includes(api.hosts[0]), 'the seed host appears in the decoded history');
    assert.ok(!history.includes(apiKey), 'the API key is in the workflow history');

    const tables = await tableTexts(stack);
    for (const table of ['crawls', 'frontier', 'pages', 'items', 'links', 'robots']) assert.ok(table in tables, `table ${table} was scanned`);
    const member = [...api.members.values()].flat()[0];
    assert.ok(tables.items.includes(member.tag), 'the scan sees the rows saved');
    assert.deepEqual(Object.keys(tables).filter((table) => tables[table].includes(apiKey)), [], 'tables holding the API key');
  });
});

/** Every clan once as an item of its list page, every member once as an item of its clan's members page. */
async function assertItemsExactlyOnce(stack: TestStack, crawlId: string, api: ClanApi): Promise<void> {
  const { rows } = await stack.pool.query<{ url: string; data: Record<string, unknown> }>(`SELECT url, data FROM items WHERE crawl_id = $1`, [crawlId]);
  const byTag = (a: Record<string, unknown>, b: Record<string, unknown>) => String(a.tag).localeCompare(String(b.tag));
  const clans = rows.filter((r) => !r.url.endsWith('/members')).map((r) => r.data);
  const members = rows.filter((r) => r.url.endsWith('/members'));
  assert.deepEqual(clans.sort(byTag), api.clans.map((c) => ({ ...c })).sort(byTag), 'clan items');
  assert.deepEqual(
    members.map((r) => r.data).sort(byTag),
    [...api.members].flatMap(([clanId, list]) => list.map((m) => ({ clanId, ...m }))).sort(byTag),
    'member items',
  );
  for (const { url, data } of members) assert.equal(url, api.membersUrl(data.clanId as number), 'a member is an item of its clan’s members page');
}

/**
 * The text of every run of the workflow (newest back to the first, through
 * continue-as-new), with every payload decoded: binary fields as UTF-8,
 * which is how the JSON data converter stores them.
 */
async function historyText(client: Client, workflowId: string): Promise<string> {
  const parts: string[] = [];
  let runId: string | undefined = (await client.workflow.getHandle(workflowId).describe()).runId;
  while (runId) {
    const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
    collectText(history, parts);
    runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  }
  return parts.join('\n');
}

function collectText(value: unknown, into: string[]): void {
  if (typeof value === 'string') into.push(value);
  else if (value instanceof Uint8Array) into.push(Buffer.from(value).toString('utf8'));
  else if (Array.isArray(value)) value.forEach((v) => collectText(v, into));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => collectText(v, into));
}

/** Every table of the schema, each as the text of all its rows. */
async function tableTexts(stack: TestStack): Promise<Record<string, string>> {
  const { rows: tables } = await stack.pool.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`,
  );
  const texts: Record<string, string> = {};
  for (const { name } of tables) {
    const { rows } = await stack.pool.query<{ row: string }>(`SELECT t::text AS row FROM ${escapeIdentifier(name)} t`);
    texts[name] = rows.map((r) => r.row).join('\n');
  }
  return texts;
}
