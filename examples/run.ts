/**
 * Runs one API-crawl example end to end against its imitation API, and
 * prints what was measured:
 *
 *   npm run example:clan-harvest     # examples/clan-harvest.yaml
 *   npm run example:reblog-graph     # examples/reblog-graph.yaml
 *   npm run example:docs-mirror      # examples/docs-mirror.yaml
 *   npm run example:id-archive       # examples/id-archive.yaml
 *   npm run example:hostile-site     # examples/hostile-site.yaml
 *
 * Starts the imitation API (test/fixtures/) on the port the spec names, runs
 * the crawl as a user would — `tcrawl crawl --spec examples/<name>.yaml
 * --wait --json`, the built CLI, which runs a worker in its own process when
 * none serves the task queue — then reads the results back with `tcrawl
 * export` and checks them against the API's own data. Exit 0 when they
 * match, 1 when not.
 *
 * Services as the CLI finds them: TEMPORAL_ADDRESS and DATABASE_URL, else
 * the local dev server and embedded Postgres it starts. Each run has a task
 * queue of its own (TCRAWL_TASK_QUEUE), so the CLI always serves it with its
 * own worker: not a fleet that lacks the example's secret, nor the recent
 * poller of a process that has just exited (which `crawl --wait` would take
 * for a live worker on an explicit TEMPORAL_ADDRESS and wait for). The clan
 * API's key is made up here, given to the imitation API, and to the crawl
 * only as the environment variable the spec names (CLAN_API_KEY).
 */
import { spawn } from 'node:child_process';
import { startMirrorSite } from '../test/fixtures/mirror-site';
import { startReportArchive } from '../test/fixtures/report-archive';
import { filesBelow, tarGzEntries } from '../test/helpers/output-files';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { startClanApi, harvestRequestCount, type Clan, type ClanApi } from '../test/fixtures/clan-api';
import { breadthFirst, edgesFrom, limitLevel, parsePagePath, startReblogApi, type ReblogApi } from '../test/fixtures/reblog-api';
import { HOSTILE_SITE, describeHostileFigures, exampleProxyUrls, hostileChecks, startHostileExample, type Check, type EgressRow } from '../test/helpers/hostile-example';
import { CLAN_API_QUOTA, apiFigures, describeFigures, exampleSpecFile, exampleSpecPort, peakInFlight, readExampleSpec, type ExampleName } from '../test/helpers/api-examples';

const tcrawlBin = path.resolve(__dirname, '../bin/tcrawl.js');

const examples: Record<ExampleName, () => Promise<Check[]>> = {
  'clan-harvest': clanHarvest,
  'reblog-graph': reblogGraph,
  'docs-mirror': docsMirror,
  'id-archive': idArchive,
  'hostile-site': hostileSite,
};

async function main(name: string | undefined): Promise<number> {
  if (name === undefined || !(name in examples)) {
    console.error(`usage: examples/run.ts <${Object.keys(examples).join('|')}>`);
    return 2;
  }
  const checks = await examples[name as ExampleName]();
  for (const { what, ok } of checks) console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  return checks.every((c) => c.ok) ? 0 : 1;
}

// --- clan-harvest ------------------------------------------------------------

async function clanHarvest(): Promise<Check[]> {
  const apiKey = `clan-key-${randomBytes(16).toString('hex')}`;
  const api = await startClanApi({ apiKey, port: exampleSpecPort('clan-harvest'), quota: CLAN_API_QUOTA });
  try {
    console.log(`Imitation clan API on ${api.hosts.join(' and ')}: ${api.clans.length} clans, one quota of ${CLAN_API_QUOTA.requests} requests/s`);
    const summary = await crawl('clan-harvest', { CLAN_API_KEY: apiKey });
    const items = await exportRows<{ url: string; data: Record<string, unknown> }>(summary.crawlId, 'items');
    return clanChecks(api, summary, items);
  } finally {
    await api.close();
  }
}

function clanChecks(api: ClanApi, summary: Summary, items: Array<{ url: string; data: Record<string, unknown> }>): Check[] {
  const figures = apiFigures(api.requests);
  const clanItems = items.filter((i) => !i.url.endsWith('/members'));
  const memberItems = items.filter((i) => i.url.endsWith('/members'));
  const expectedClans = api.clans.map((clan: Clan) => ({ ...clan }));
  const expectedMembers = [...api.members].flatMap(([clanId, members]) => members.map((m) => ({ clanId, ...m })));
  const minimum = harvestRequestCount(api.clans.length, 100);
  console.log(`\nCrawl ${summary.crawlId}: ${summary.saved} pages saved, ${summary.failed} failed, ${summary.skipped} skipped in ${(summary.elapsedMs / 1000).toFixed(1)} s`);
  console.log(`Items: ${clanItems.length} clans, ${memberItems.length} members`);
  console.log(`API saw ${describeFigures(figures)}`);
  return [
    { what: `every clan saved exactly once (${clanItems.length} of ${expectedClans.length})`, ok: sameRows(clanItems.map((i) => i.data), expectedClans) },
    { what: `every member saved exactly once (${memberItems.length} of ${expectedMembers.length})`, ok: sameRows(memberItems.map((i) => i.data), expectedMembers) },
    { what: `one request per page (${figures.byStatus['200'] ?? 0} answered 200, ${minimum} pages)`, ok: (figures.byStatus['200'] ?? 0) === minimum && summary.saved === minimum },
    { what: `at most ${CLAN_API_QUOTA.requests} requests in any second over both hostnames (${figures.maxInSecondLessJitter})`, ok: figures.maxInSecondLessJitter <= CLAN_API_QUOTA.requests },
    { what: `no 429 (${figures.byStatus['429'] ?? 0}) and no 401 (${figures.byStatus['401'] ?? 0}) from the API`, ok: !figures.byStatus['429'] && !figures.byStatus['401'] },
  ];
}

// --- reblog-graph ------------------------------------------------------------

async function reblogGraph(): Promise<Check[]> {
  const api = await startReblogApi({ port: exampleSpecPort('reblog-graph') });
  try {
    const maxPages = readExampleSpec('reblog-graph').maxPages as number;
    console.log(`Imitation reblog API on ${new URL(api.origin).host}: ${api.graph.blogs.size} blogs; breadth-first from "${api.graph.seed}" to ${maxPages} pages`);
    const summary = await crawl('reblog-graph', {});
    const [pages, failed, links] = await Promise.all([
      exportRows<{ url: string }>(summary.crawlId, 'pages'),
      exportRows<{ url: string }>(summary.crawlId, 'failed'),
      exportRows<{ found_on: string; url: string }>(summary.crawlId, 'links'),
    ]);
    return reblogChecks(api, maxPages, summary, [...pages, ...failed].map((row) => api.pathOf(row.url)), links);
  } finally {
    await api.close();
  }
}

function reblogChecks(api: ReblogApi, maxPages: number, summary: Summary, fetched: string[], links: Array<{ found_on: string; url: string }>): Check[] {
  const { level } = breadthFirst(api.graph);
  const cut = limitLevel(level, maxPages);
  const above = fetched.filter((p) => (level.get(p) ?? Infinity) < cut.level).length;
  const within = fetched.filter((p) => level.get(p) === cut.level).length;
  const after = fetched.filter((p) => level.get(p) === cut.level + 1).length;
  const expected = edgesFrom(api.graph, fetched).map((e) => `${api.url(e.from)} -> ${api.url(e.to)}`);
  const exported = links.map((l) => `${l.found_on} -> ${l.url}`);
  const [expectedSet, exportedSet] = [new Set(expected), new Set(exported)];
  const unexpected = exported.filter((e) => !expectedSet.has(e));
  const missing = expected.filter((e) => !exportedSet.has(e));
  const strays = api.requests.filter((r) => r.path !== '/robots.txt' && !isBlogPage(api, r.path));
  console.log(`\nCrawl ${summary.crawlId}: ${summary.saved} pages saved, ${summary.failed} failed (deleted blogs), ${summary.skipped} skipped in ${(summary.elapsedMs / 1000).toFixed(1)} s`);
  console.log(`API saw ${describeFigures(apiFigures(api.requests))}; up to ${peakInFlight(api.requests)} in flight`);
  console.log(
    `Breadth-first: ${above} of the ${cut.above} pages above level ${cut.level}, ${within} of level ${cut.level}'s ${cut.through - cut.above}, ` +
      `${after} of level ${cut.level + 1} (found while level ${cut.level} was in flight), ${fetched.length - above - within - after} deeper`,
  );
  console.log(`Edges: ${exported.length} exported, ${expected.length} expected: ${missing.length} missing, ${unexpected.length} unexpected`);
  return [
    { what: `node limit: ${fetched.length} pages fetched of ${maxPages}`, ok: fetched.length === maxPages },
    { what: `breadth-first: every page above level ${cut.level} fetched, none below level ${cut.level + 1}`, ok: above === cut.above && above + within + after === fetched.length },
    { what: 'exactly the expected edges exported', ok: missing.length === 0 && unexpected.length === 0 && exportedSet.size === exported.length },
    { what: `nothing requested but blogs' pages: external and malformed sources not followed (${strays.length} other requests)`, ok: strays.length === 0 },
  ];
}

function isBlogPage(api: ReblogApi, urlPath: string): boolean {
  const page = parsePagePath(urlPath);
  return page !== undefined && (api.graph.blogs.has(page.blog) || api.graph.deleted.has(page.blog));
}

// --- docs-mirror and id-archive ----------------------------------------------

async function docsMirror(): Promise<Check[]> {
  const site = await startMirrorSite({ port: exampleSpecPort('docs-mirror'), pages: 60, blobs: 10 });
  try {
    console.log(`Imitation docs site on ${new URL(site.origin).host}: ${site.bodies.size} pages and files to mirror, and a /private/ section to leave out`);
    const summary = await crawl('docs-mirror', {});
    const dir = (readExampleSpec('docs-mirror').outputs as Array<{ dir: string }>)[0].dir;
    const expected = site.expectedMirror();
    const files = await filesBelow(path.resolve(dir));
    console.log(`\nCrawl ${summary.crawlId}: ${summary.saved} pages saved in ${(summary.elapsedMs / 1000).toFixed(1)} s; ${dir}: ${files.size} files`);
    return [
      { what: `every page and file mirrored once (${files.size} of ${expected.size})`, ok: sameRows([...files.keys()], [...expected.keys()]) },
      { what: 'each byte for byte as served', ok: [...expected].every(([name, body]) => files.get(name)?.body.equals(body)) },
      { what: 'nothing under /private/ requested', ok: ![...site.requests.keys()].some((p) => p.startsWith('/private/')) },
    ];
  } finally {
    await site.close();
  }
}

async function idArchive(): Promise<Check[]> {
  const site = await startReportArchive({ port: exampleSpecPort('id-archive') });
  try {
    console.log(`Imitation report archive on ${new URL(site.origin).host}: ${site.reports.size} reports named in a paginated catalogue, no page linking to them`);
    const summary = await crawl('id-archive', {});
    const file = (readExampleSpec('id-archive').outputs as Array<{ path: string }>)[0].path;
    const entries = await tarGzEntries(path.resolve(file));
    const host = new URL(site.origin).host;
    const expected = [...site.reports.keys()].map((id) => `${host}/download/${id}.pdf`);
    console.log(`\nCrawl ${summary.crawlId}: ${summary.saved} responses (catalogue pages and reports) in ${(summary.elapsedMs / 1000).toFixed(1)} s; ${file}: ${entries.length} entries`);
    return [
      { what: `every report archived once (${entries.length} of ${expected.length})`, ok: sameRows(entries.map((e) => e.name), expected) },
      { what: 'each byte for byte as served', ok: entries.every((e) => site.reports.get(/(\d+)\.pdf$/.exec(e.name)?.[1] ?? '')?.equals(e.body)) },
    ];
  } finally {
    await site.close();
  }
}

// --- hostile-site ------------------------------------------------------------

async function hostileSite(): Promise<Check[]> {
  const example = await startHostileExample({ site: exampleSpecPort('hostile-site'), proxies: exampleProxyUrls().map((url) => Number(new URL(url).port)) });
  try {
    const { budget, blocked } = HOSTILE_SITE;
    console.log(`Imitation site on ${new URL(example.site.origin).host}: ${example.site.pagePaths.length} pages, ${budget.requests} answers a minute for everyone; refuses ${blocked}`);
    console.log(`Proxies: ${example.proxies.map((p) => `${p.url} (leaving from ${p.localAddress})`).join(', ')}`);
    const summary = await crawl('hostile-site', {});
    const pages = await exportRows<{ url: string }>(summary.crawlId, 'pages');
    const { egress } = JSON.parse(await tcrawl(['status', summary.crawlId, '--json'], {}, 'pipe')) as { egress: EgressRow[] };
    const rate = readExampleSpec('hostile-site').rate as number;
    const { figures, checks } = hostileChecks(example, pages.map((p) => p.url), summary, egress, rate);
    console.log(`\nCrawl ${summary.crawlId}: ${summary.saved} pages saved, ${summary.failed} failed in ${(summary.elapsedMs / 1000).toFixed(1)} s`);
    for (const line of describeHostileFigures(figures)) console.log(`Site saw ${line}`);
    console.log(`Routes (tcrawl status): ${egress.map((r) => `${r.egress} ${r.state}, ${r.requests} requests, ${r.bans} bans`).join('; ')}`);
    return checks;
  } finally {
    await example.close();
  }
}

// --- the CLI -----------------------------------------------------------------

interface Summary {
  crawlId: string;
  saved: number;
  failed: number;
  skipped: number;
  elapsedMs: number;
}

/** `tcrawl crawl --spec examples/<name>.yaml --wait --json`, its messages shown as they come; the summary. */
async function crawl(name: ExampleName, env: NodeJS.ProcessEnv): Promise<Summary> {
  const spec = path.relative(process.cwd(), exampleSpecFile(name));
  console.log(`$ tcrawl crawl --spec ${spec} --wait --json`);
  const taskQueue = `example-${name}-${randomBytes(4).toString('hex')}`;
  const stdout = await tcrawl(['crawl', '--spec', spec, '--wait', '--json'], { ...env, TCRAWL_TASK_QUEUE: taskQueue }, 'inherit');
  return JSON.parse(stdout) as Summary;
}

/** `tcrawl export <crawlId> --what <what>` (JSON lines), parsed. */
async function exportRows<Row>(crawlId: string, what: 'pages' | 'items' | 'failed' | 'links'): Promise<Row[]> {
  const stdout = await tcrawl(['export', crawlId, '--what', what], {}, 'pipe');
  return stdout.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Row);
}

function tcrawl(args: string[], env: NodeJS.ProcessEnv, stderr: 'inherit' | 'pipe'): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [tcrawlBin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', stderr] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve(out) : reject(new Error(`tcrawl ${args[0]} ended with ${signal ?? `exit code ${code}`}${err ? `:\n${err}` : ''}`))));
  });
}

// --- comparing ---------------------------------------------------------------

/** The same rows, each as often (key order aside). */
function sameRows(actual: unknown[], expected: unknown[]): boolean {
  const key = (row: unknown) => JSON.stringify(row, (_, value) => (value && typeof value === 'object' && !Array.isArray(value) ? Object.fromEntries(Object.entries(value).sort()) : value));
  const sorted = (rows: unknown[]) => rows.map(key).sort();
  return JSON.stringify(sorted(actual)) === JSON.stringify(sorted(expected));
}

main(process.argv[2]).then(
  (code) => (process.exitCode = code),
  (error: Error) => {
    console.error(error.message);
    process.exitCode = 1;
  },
);
