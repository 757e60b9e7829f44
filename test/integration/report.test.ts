import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildReport } from '../../src/report/build-report';
import { CLANS, startFixtureSite, type FixtureSite } from '../fixtures/site';
import { openStack, runCrawl, uniqueId, type TestStack } from '../helpers/stack';

const bin = path.resolve(__dirname, '../../bin/tcrawl.js');

function tcrawl(args: string[], env: NodeJS.ProcessEnv, cwd?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, cwd, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A port nothing listens on: a link to it is a dead link (connection refused). */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/*
 * The browser globals the page functions below use, declared for this file only: the project compiles
 * without the DOM library. They run in Chromium, where these are the real ones.
 */
interface PageElement {
  id: string;
  tagName: string;
  textContent: string | null;
  parentElement: PageElement | null;
  children: ArrayLike<PageElement>;
  dataset: Record<string, string | undefined>;
  width: number;
  height: number;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: ArrayLike<number> } } | null;
}
declare const document: { querySelectorAll(selector: string): ArrayLike<PageElement> };
declare const window: { Chart: { getChart(canvas: PageElement): { data: { labels: string[]; datasets: Array<{ label: string; data: number[] }> } } | undefined } };

/** What each chart of an opened report holds, read from its Chart.js instance, and whether its canvas has ink. */
interface RenderedChart {
  labels: string[];
  datasets: Array<{ label: string; data: number[] }>;
  paintedPixels: number;
}

interface OpenedReport {
  page: Page;
  charts: Record<string, RenderedChart>;
  /** Every table of the page by its data-table name: rows of cell texts, header row excluded. */
  tables: Record<string, string[][]>;
  consoleErrors: string[];
  /** Requests other than the report file itself (all blocked). */
  otherRequests: string[];
}

/** Opens a report file in headless Chromium with every request but the file blocked, and reads its charts and tables. */
async function openReport(browser: Browser, file: string): Promise<OpenedReport> {
  const fileUrl = pathToFileURL(file).href;
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  const otherRequests: string[] = [];
  page.on('console', (message) => void (message.type() === 'error' && consoleErrors.push(message.text())));
  page.on('pageerror', (error) => consoleErrors.push(`pageerror: ${error.message}`));
  page.on('dialog', (dialog) => {
    consoleErrors.push(`dialog: ${dialog.message()}`);
    void dialog.dismiss();
  });
  await context.route('**/*', (route) => {
    if (route.request().url() === fileUrl) return route.continue();
    otherRequests.push(route.request().url());
    return route.abort();
  });
  await page.goto(fileUrl);
  await page.waitForLoadState('load');
  const charts = await page.evaluate(() => {
    const Chart = window.Chart;
    const result: Record<string, RenderedChart> = {};
    for (const canvas of Array.from(document.querySelectorAll('canvas'))) {
      const chart = Chart.getChart(canvas);
      if (!chart) continue;
      const pixels = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let painted = 0;
      for (let i = 3; i < pixels.length; i += 4) if (pixels[i]! > 0) painted++;
      result[canvas.id] = {
        labels: [...chart.data.labels],
        datasets: chart.data.datasets.map((d) => ({ label: d.label, data: [...d.data] })),
        paintedPixels: painted,
      };
    }
    return result;
  });
  const tables = await page.evaluate(() => {
    const result: Record<string, string[][]> = {};
    for (const table of Array.from(document.querySelectorAll('table[data-table]'))) {
      const rows = Array.from(table.querySelectorAll('tr')).filter((tr) => tr.parentElement?.tagName !== 'THEAD');
      result[table.dataset.table!] = rows.map((tr) => Array.from(tr.children).map((cell) => cell.textContent ?? ''));
    }
    return result;
  });
  return { page, charts, tables, consoleErrors, otherRequests };
}

/** A count as the report's tables print it (12,345). */
const number = (text: string) => Number(text.replaceAll(',', ''));

describe('tcrawl report: charts of a crawl, checked in Chromium against Postgres', () => {
  let stack: TestStack;
  let site: FixtureSite;
  let browser: Browser;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const crawlId = uniqueId('report');
  let report: OpenedReport;
  let cliRun: { code: number; stdout: string; stderr: string };

  before(async () => {
    stack = await openStack();
    site = await startFixtureSite();
    dir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-report-'));
    env = { DATABASE_URL: stack.databaseUrl };
    const deadSeed = `http://127.0.0.1:${await closedPort()}/`;
    await runCrawl(
      stack,
      {
        seeds: [site.url('/'), site.url('/clans'), deadSeed],
        items: { selector: '.clan', fields: { name: '.name', members: '.members', tag: '.tag' } },
        // /flaky answers 503 twice: with one retry it fails, giving the failure charts a second 5xx reason.
        maxRetries: 1,
      },
      crawlId,
    );
    cliRun = await tcrawl(['report', crawlId], env, dir);
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
    report = await openReport(browser, path.join(dir, `report-${crawlId}.html`));
  });

  after(async () => {
    await browser?.close();
    await site?.close();
    await stack?.close();
  });

  const rows = async <T>(sql: string, params: unknown[] = [crawlId]) => (await stack.pool.query(sql, params)).rows as T[];
  const counted = async (sql: string) => Object.fromEntries((await rows<{ key: string; n: string }>(sql)).map((r) => [r.key, Number(r.n)]));
  const chartCounts = (chart: RenderedChart, dataset = 0) => Object.fromEntries(chart.labels.map((label, i) => [label, chart.datasets[dataset]!.data[i]!]));

  it('the CLI writes report-<id>.html and prints its path; the page is self-contained: no request but the file, no console error', () => {
    assert.equal(cliRun.code, 0, cliRun.stderr);
    assert.equal(cliRun.stdout, `report-${crawlId}.html\n`);
    assert.deepEqual(readdirSync(dir), [`report-${crawlId}.html`], 'no temporary file left behind');
    assert.deepEqual(report.otherRequests, []);
    assert.deepEqual(report.consoleErrors, []);
  });

  it('renders every chart, with ink on its canvas', () => {
    assert.deepEqual(Object.keys(report.charts).sort(), ['chart-depth', 'chart-field', 'chart-hosts', 'chart-rate', 'chart-reasons', 'chart-status']);
    for (const [id, chart] of Object.entries(report.charts)) assert.ok(chart.paintedPixels > 1000, `${id} is drawn (${chart.paintedPixels} pixels)`);
  });

  it('totals equal the frontier and items tables', async () => {
    const states = await counted(`SELECT state AS key, count(*) AS n FROM frontier WHERE crawl_id = $1 GROUP BY state`);
    const [{ n: items }] = await rows<{ n: string }>(`SELECT count(*) AS n FROM items WHERE crawl_id = $1`);
    const tiles = Object.fromEntries(report.tables.totals!.map(([name, n]) => [name, number(n!)]));
    assert.deepEqual(tiles, {
      Saved: states.done ?? 0,
      Failed: states.failed ?? 0,
      Skipped: states.skipped ?? 0,
      Queued: states.queued ?? 0,
      Leased: states.leased ?? 0,
      Items: Number(items),
    });
    assert.equal(Number(items), CLANS.length, 'both clan pages were crawled');
  });

  it('status codes: finished URLs per frontier.status, none for no status', async () => {
    const expected = await counted(
      `SELECT coalesce(status::text, 'none') AS key, count(*) AS n FROM frontier WHERE crawl_id = $1 AND state IN ('done', 'failed', 'skipped') GROUP BY 1`,
    );
    const chart = report.charts['chart-status']!;
    assert.deepEqual(chartCounts(chart), expected);
    assert.ok(expected['404']! >= 2 && expected.none! >= 1, `404s and a response-less failure are among them: ${JSON.stringify(expected)}`);
    assert.deepEqual(report.tables['chart-status']!.map(([status, n]) => [status, number(n!)]), chart.labels.map((l, i) => [l, chart.datasets[0]!.data[i]]));
  });

  it('depth: every frontier row per depth, stacked by state', async () => {
    const byDepth = await rows<{ depth: number; state: string; n: string }>(`SELECT depth, state, count(*) AS n FROM frontier WHERE crawl_id = $1 GROUP BY 1, 2`);
    const chart = report.charts['chart-depth']!;
    const maxDepth = Math.max(...byDepth.map((r) => r.depth));
    assert.deepEqual(chart.labels, Array.from({ length: maxDepth + 1 }, (_, d) => String(d)), 'one bar per depth');
    const series = Object.fromEntries(chart.datasets.map((d) => [d.label, d.data]));
    const expected = { saved: new Array(maxDepth + 1).fill(0), skipped: new Array(maxDepth + 1).fill(0), failed: new Array(maxDepth + 1).fill(0), pending: new Array(maxDepth + 1).fill(0) };
    for (const r of byDepth) expected[r.state === 'done' ? 'saved' : r.state === 'failed' || r.state === 'skipped' ? r.state : 'pending'][r.depth] += Number(r.n);
    assert.deepEqual(series, expected);
  });

  it('pages per second: pages.fetched_at per second over the crawl (a short crawl is charted per second)', async () => {
    const [span] = await rows<{ span_s: number }>(`SELECT extract(epoch FROM max(fetched_at) - min(fetched_at))::float8 AS span_s FROM pages WHERE crawl_id = $1`);
    assert.ok(span!.span_s < 299, `the crawl took ${span!.span_s} s`);
    const perSecond = await rows<{ bucket: number; n: string }>(
      `SELECT extract(epoch FROM date_bin('1 second', fetched_at, (SELECT min(fetched_at) FROM pages WHERE crawl_id = $1)) - (SELECT min(fetched_at) FROM pages WHERE crawl_id = $1))::int AS bucket, count(*) AS n
         FROM pages WHERE crawl_id = $1 GROUP BY 1`,
    );
    const expected = new Array(Math.floor(span!.span_s) + 1).fill(0);
    for (const r of perSecond) expected[r.bucket] = Number(r.n);
    const chart = report.charts['chart-rate']!;
    assert.deepEqual(chart.datasets[0]!.data, expected);
    assert.equal(chart.labels[0], '0:00');
  });

  it('failures by reason and by host: failed frontier rows grouped', async () => {
    const byReason = await counted(`SELECT reason AS key, count(*) AS n FROM frontier WHERE crawl_id = $1 AND state = 'failed' GROUP BY 1`);
    const byHost = await counted(`SELECT host AS key, count(*) AS n FROM frontier WHERE crawl_id = $1 AND state = 'failed' GROUP BY 1`);
    assert.deepEqual(chartCounts(report.charts['chart-reasons']!), byReason);
    assert.deepEqual(chartCounts(report.charts['chart-hosts']!), byHost);
    assert.ok(byReason.http_404 === 2 && byReason.too_large === 1 && byReason.http_503 === 1, `404s, a body too large, a 503: ${JSON.stringify(byReason)}`);
    assert.equal(Object.keys(byHost).length, 2, 'the site and the dead seed');
  });

  it('the item field histogram: "members" chosen as the numeric field, each bin counting the clans in it', async () => {
    const chart = report.charts['chart-field']!;
    // The fixture's member counts, read here by their own format ("1,234 members"); 'recruiting' and 'n/a' are not numbers.
    const members = CLANS.map((c) => /^([\d,]+) members?$/.exec(c.members)?.[1]).filter((m) => m !== undefined).map((m) => Number(m.replaceAll(',', '')));
    const stored = await rows<{ members: string }>(`SELECT data->>'members' AS members FROM items WHERE crawl_id = $1`);
    assert.deepEqual(stored.map((r) => r.members).sort(), CLANS.map((c) => c.members).sort());
    const bins = report.tables['chart-field']!.map(([lo, hi]) => [number(lo!), number(hi!)] as const);
    assert.equal(bins.length, chart.labels.length);
    assert.deepEqual(chart.datasets[0]!.data, bins.map(([lo, hi]) => members.filter((m) => m >= lo && m < hi).length));
    assert.equal(chart.datasets[0]!.data.reduce((a, b) => a + b, 0), members.length);
    const caption = await report.page.locator('#chart-field-section .caption').textContent();
    assert.match(caption!, /"members".*18 of 20 values are numeric/);
  });

  it('an unknown crawl exits 2 with TCRAWL_UNKNOWN_CRAWL; an unknown --field names the fields there are; --top must be a whole number', async () => {
    const unknown = await tcrawl(['report', 'no-such-crawl', '--out', path.join(dir, 'x.html')], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /No crawl "no-such-crawl" in this database/);
    const field = await tcrawl(['report', crawlId, '--field', 'size', '--out', path.join(dir, 'x.html')], env);
    assert.equal(field.code, 2);
    assert.match(field.stderr, /--field "size": crawl "report-\w+" has no such item field \(its item fields: members, name, tag\)/);
    const top = await tcrawl(['report', crawlId, '--top', '0.5', '--out', path.join(dir, 'x.html')], env);
    assert.equal(top.code, 2);
    assert.match(top.stderr, /--top 0\.5: must be a whole number of at least 1/);
    assert.ok(!existsSync(path.join(dir, 'x.html')), 'a failed report writes nothing');
    await assert.rejects(buildReport(stack.pool, 'no-such-crawl'), { name: 'InvalidInputError', code: 'TCRAWL_UNKNOWN_CRAWL' });
    await assert.rejects(buildReport(stack.pool, crawlId, { field: 'size' }), { name: 'InvalidInputError', code: 'TCRAWL_UNKNOWN_FIELD' });
  });

  it('--field charts the field named, even one that is not numeric (with a note); --out names the file', async () => {
    const out = path.join(dir, 'by-name.html');
    const run = await tcrawl(['report', crawlId, '--field', 'name', '--out', out], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${out}\n`);
    assert.match(readFileSync(out, 'utf8'), /No value of item field &#34;name&#34; starts with a number \(20 values\)/);
  });

  it('hostile strings in every crawl-supplied column stay text: nothing runs, nothing is fetched, labels round-trip', async () => {
    const hostile = `x</script><img src=x onerror="alert(1)">'"&<!--`;
    const id = `evil</script><script>alert(1)</script>${uniqueId('')}`;
    await stack.pool.query(`INSERT INTO crawls (crawl_id, spec) VALUES ($1, $2)`, [id, { seeds: [`http://example.com/${hostile}`], items: { selector: '.x', fields: { [hostile]: '.y' } } }]);
    await stack.pool.query(
      `INSERT INTO frontier (crawl_id, url, host, depth, state, status, reason) VALUES ($1, $2, $3, 0, 'failed', NULL, $4), ($1, $5, $3, 1, 'done', 200, NULL)`,
      [id, `http://h/${hostile}`, `host${hostile}`, `reason${hostile}`, 'http://h/ok'],
    );
    await stack.pool.query(`INSERT INTO pages (crawl_id, url, final_url, status, title, depth, bytes, links, fetched_at) VALUES ($1, 'http://h/ok', 'http://h/ok', 200, $2, 1, 10, 0, now())`, [id, hostile]);
    await stack.pool.query(`INSERT INTO items (crawl_id, url, position, data) VALUES ($1, 'http://h/ok', 0, $2), ($1, 'http://h/ok', 1, $3)`, [id, { [hostile]: `7 ${hostile}` }, { [hostile]: '9' }]);
    const file = path.join(dir, 'hostile.html');
    writeFileSync(file, await buildReport(stack.pool, id));
    const opened = await openReport(browser, file);
    assert.deepEqual(opened.consoleErrors, []);
    assert.deepEqual(opened.otherRequests, []);
    assert.equal(await opened.page.locator('img').count(), 0, 'no injected element');
    assert.equal(await opened.page.locator('script').count(), 3, 'the data block, the library and the boot script, no more');
    assert.equal(await opened.page.locator('h1 code').textContent(), id);
    assert.equal(await opened.page.title(), `tcrawl report: ${id}`);
    assert.deepEqual(opened.charts['chart-reasons']!.labels, [`reason${hostile}`]);
    assert.deepEqual(opened.charts['chart-hosts']!.labels, [`host${hostile}`]);
    assert.deepEqual(opened.charts['chart-field']!.datasets[0]!.data.reduce((a, b) => a + b, 0), 2);
    assert.ok(readFileSync(file, 'utf8').includes(`<code>http://example.com/x&#60;/script&#62;&#60;img`), 'the seed is escaped text');
  });
});
