import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse } from 'csv-parse/sync';
import { exportRecords, exportRows } from '../../src/results/export';
import { tcrawl, tcrawlBin } from '../helpers/cli';
import { pathOf, runCrawl, uniqueId, withStackAndSite, type TestStack } from '../helpers/stack';
import type { FixtureSite } from '../fixtures/site';
import { waitFor } from '../helpers/worker-processes';

/** Rows exactly as the export should write them: dates as ISO 8601 strings, the rest as Postgres gives them. */
async function rowsOf(stack: TestStack, sql: string, crawlId: string): Promise<Record<string, unknown>[]> {
  const { rows } = await stack.pool.query(sql, [crawlId]);
  return rows.map((row) => Object.fromEntries(Object.entries(row).map(([key, value]) => [key, value instanceof Date ? value.toISOString() : value])));
}

const jsonLines = (text: string) => text.split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>);
const csvOf = (text: string) => parse(text, { record_delimiter: '\r\n' }) as string[][];
/** What a CSV cell holds for a value: null is empty, the rest as text. */
const cell = (value: unknown) => (value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value));

/** A crawl of `linkCount` synthetic discovered links, written straight to the tables (fast, and big enough to fill a pipe). */
async function syntheticLinks(stack: TestStack, linkCount: number): Promise<string> {
  const crawlId = uniqueId('links');
  await stack.pool.query(`INSERT INTO crawls (crawl_id, spec) VALUES ($1, '{}')`, [crawlId]);
  await stack.pool.query(
    `INSERT INTO frontier (crawl_id, url, host, depth, state, found_on)
     SELECT $1, 'http://synthetic.example/page/' || i, 'synthetic.example', 1, 'done', 'http://synthetic.example/' FROM generate_series(1, $2::int) AS i`,
    [crawlId, linkCount],
  );
  return crawlId;
}

describe('tcrawl export', () => {
  let stack: TestStack;
  let site: FixtureSite;
  let env: NodeJS.ProcessEnv;
  const crawlId = uniqueId('export');

  withStackAndSite((openedStack, openedSite) => {
    stack = openedStack;
    site = openedSite;
    env = { TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl };
  });

  it('crawls the fixture site (with HTML and items) to export', async () => {
    const summary = await runCrawl(stack, { seeds: [site.url('/')], saveHtml: true, items: { selector: '.product', fields: { name: '.name', price: '.price', href: 'a@href' } } }, crawlId);
    assert.equal(summary.saved, site.expectations.savedPaths.length);
  });

  const pageColumns = ['url', 'final_url', 'status', 'content_type', 'title', 'depth', 'bytes', 'links', 'fetched_at'];
  const pagesSql = `SELECT ${pageColumns.join(', ')} FROM pages WHERE crawl_id = $1 ORDER BY url`;
  const failedColumns = ['url', 'status', 'reason', 'detail', 'attempts', 'depth', 'found_on', 'updated_at'];
  const failedSql = `SELECT ${failedColumns.join(', ')} FROM frontier WHERE crawl_id = $1 AND state = 'failed' ORDER BY url`;
  const linksSql = `SELECT found_on, url FROM frontier WHERE crawl_id = $1 AND found_on IS NOT NULL ORDER BY url`;

  it('pages as JSON lines: every saved page with its columns, no html unless asked', async () => {
    const run = await tcrawl(['export', crawlId], env);
    assert.equal(run.code, 0, run.stderr);
    const lines = jsonLines(run.stdout);
    assert.deepEqual(lines, await rowsOf(stack, pagesSql, crawlId));
    assert.deepEqual(lines.map((page) => pathOf(page.url as string)).sort(), [...site.expectations.savedPaths].sort());
    for (const page of lines) assert.equal(page.title, site.expectations.titles[pathOf(page.url as string)]);
    assert.ok(lines.every((page) => !('html' in page)));
  });

  it('pages as JSON lines with --html: the stored HTML too', async () => {
    const run = await tcrawl(['export', crawlId, '--what', 'pages', '--html'], env);
    assert.equal(run.code, 0, run.stderr);
    const lines = jsonLines(run.stdout);
    assert.deepEqual(lines, await rowsOf(stack, `SELECT ${pageColumns.join(', ')}, html FROM pages WHERE crawl_id = $1 ORDER BY url`, crawlId));
    assert.match(lines.find((page) => pathOf(page.url as string) === '/products')!.html as string, /class="product"/);
  });

  it('pages as CSV: the header, then each page as its columns', async () => {
    const run = await tcrawl(['export', crawlId, '--what', 'pages', '--format', 'csv'], env);
    assert.equal(run.code, 0, run.stderr);
    const [header, ...records] = csvOf(run.stdout);
    assert.deepEqual(header, pageColumns);
    assert.deepEqual(records, (await rowsOf(stack, pagesSql, crawlId)).map((row) => pageColumns.map((column) => cell(row[column]))));
    assert.equal(records.length, site.expectations.savedPaths.length);
  });

  it('items as JSON lines: url, position and the fields as an object', async () => {
    const run = await tcrawl(['export', crawlId, '--what', 'items'], env);
    assert.equal(run.code, 0, run.stderr);
    const lines = jsonLines(run.stdout);
    assert.deepEqual(lines, await rowsOf(stack, 'SELECT url, position, data FROM items WHERE crawl_id = $1 ORDER BY url, position', crawlId));
    assert.deepEqual(
      lines.map((item) => item.data),
      site.expectations.items.map((item) => ({ name: item.name, price: item.price ?? null, href: site.url(item.href) })),
    );
    assert.ok(lines.every((item, i) => pathOf(item.url as string) === '/products' && item.position === i));
  });

  it('items as CSV: one column per item field', async () => {
    const run = await tcrawl(['export', crawlId, '--what', 'items', '--format', 'csv'], env);
    assert.equal(run.code, 0, run.stderr);
    const [header, ...records] = csvOf(run.stdout);
    assert.deepEqual(header, ['url', 'position', 'href', 'name', 'price']);
    assert.deepEqual(
      records,
      site.expectations.items.map((item, i) => [site.url('/products'), String(i), site.url(item.href), item.name, item.price ?? '']),
    );
  });

  it('failed as JSON lines and CSV: the URLs given up on, with reason, attempts and where they were found', async () => {
    const expected = await rowsOf(stack, failedSql, crawlId);
    assert.deepEqual(Object.fromEntries(expected.map((row) => [pathOf(row.url as string), row.reason])), site.expectations.failed);
    const jsonl = await tcrawl(['export', crawlId, '--what', 'failed', '--format', 'jsonl'], env);
    assert.equal(jsonl.code, 0, jsonl.stderr);
    assert.deepEqual(jsonLines(jsonl.stdout), expected);
    const csv = await tcrawl(['export', crawlId, '--what', 'failed', '--format', 'csv'], env);
    assert.equal(csv.code, 0, csv.stderr);
    const [header, ...records] = csvOf(csv.stdout);
    assert.deepEqual(header, failedColumns);
    assert.deepEqual(records, expected.map((row) => failedColumns.map((column) => cell(row[column]))));
    assert.ok(records.every((record) => record[6] === site.url('/')), 'each failed URL was found on the home page');
  });

  it('links as JSON lines and CSV: where each URL was first found', async () => {
    const expected = await rowsOf(stack, linksSql, crawlId);
    const foundOn = Object.fromEntries(expected.map((row) => [pathOf(row.url as string), pathOf(row.found_on as string)]));
    assert.equal(foundOn['/a'], '/');
    assert.equal(foundOn['/deep/2'], '/deep/1');
    assert.equal(foundOn['/landing'], '/redirect-2');
    assert.equal(foundOn['/'], undefined, 'the seed was found on no page');
    const jsonl = await tcrawl(['export', crawlId, '--what', 'links'], env);
    assert.equal(jsonl.code, 0, jsonl.stderr);
    assert.deepEqual(jsonLines(jsonl.stdout), expected);
    const csv = await tcrawl(['export', crawlId, '--what', 'links', '--format', 'csv'], env);
    assert.equal(csv.code, 0, csv.stderr);
    assert.deepEqual(csvOf(csv.stdout), [['found_on', 'url'], ...expected.map((row) => [row.found_on, row.url])]);
  });

  it('CSV and JSON lines carry hostile values intact: commas, quotes, CR, LF, unicode, formulas, hostile field names', async () => {
    const hostileId = uniqueId('hostile-csv');
    const values = ['a,b', 'say "hi"', '"', 'line\nfeed', 'carriage\rreturn', 'crlf\r\nend', '', ' padded ', '=1+2', '日本語 🤖 ünïcødé \u2028', 'tab\there', "'; DROP TABLE pages; --", '\\N', 'null'];
    const url = (i: number) => `http://hostile.example/${i}?q="${encodeURIComponent(values[i])}",x`;
    await stack.pool.query(`INSERT INTO crawls (crawl_id, spec) VALUES ($1, '{}')`, [hostileId]);
    for (const [i, value] of values.entries()) {
      await stack.pool.query(
        `INSERT INTO pages (crawl_id, url, final_url, status, content_type, title, depth, bytes, links, fetched_at) VALUES ($1, $2, $2, 200, $3, $4, 0, 1, 0, now())`,
        [hostileId, url(i), value, value],
      );
      await stack.pool.query(`INSERT INTO items (crawl_id, url, position, data) VALUES ($1, $2, 0, $3)`, [hostileId, url(i), JSON.stringify({ 'na,me': value, 'quo"te': value, 'new\nline': i, url: value })]);
    }
    const pages = await tcrawl(['export', hostileId, '--format', 'csv'], env);
    assert.equal(pages.code, 0, pages.stderr);
    const [, ...pageRecords] = csvOf(pages.stdout);
    assert.deepEqual(pageRecords.map((record) => [record[0], record[3], record[4]]), values.map((value, i) => [url(i), value, value]).sort((a, b) => (a[0] < b[0] ? -1 : 1)));

    const items = await tcrawl(['export', hostileId, '--what', 'items', '--format', 'csv'], env);
    assert.equal(items.code, 0, items.stderr);
    const [header, ...itemRecords] = csvOf(items.stdout);
    // Sorted as Postgres sorts text: the fields' own names, the one called url moved to data.url.
    assert.deepEqual([...header].sort(), ['data.url', 'na,me', 'new\nline', 'position', 'quo"te', 'url']);
    const column = (name: string) => header.indexOf(name);
    for (const record of itemRecords) {
      const i = Number(record[column('new\nline')]);
      assert.deepEqual([record[column('url')], record[column('na,me')], record[column('quo"te')], record[column('data.url')]], [url(i), values[i], values[i], values[i]]);
    }
    assert.equal(itemRecords.length, values.length);

    const jsonl = await tcrawl(['export', hostileId, '--what', 'items'], env);
    assert.deepEqual(
      jsonLines(jsonl.stdout).map((item) => item.data),
      (await stack.pool.query('SELECT data FROM items WHERE crawl_id = $1 ORDER BY url', [hostileId])).rows.map((row) => row.data),
    );
  });

  it('stops quietly, exit 0, when its reader goes away (| head)', async () => {
    const linksId = await syntheticLinks(stack, 300_000);
    const shell = spawn('bash', ['-c', `"$0" "$1" export "$2" --what links --format csv | head -n 3; echo "tcrawl exit \${PIPESTATUS[0]}" >&2`, process.execPath, tcrawlBin, linksId], {
      env: { ...process.env, ...env },
    });
    let stdout = '';
    let stderr = '';
    shell.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    shell.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const startedMs = Date.now();
    await new Promise((resolve) => shell.once('exit', resolve));
    assert.equal(stdout, 'found_on,url\r\nhttp://synthetic.example/,http://synthetic.example/page/1\r\nhttp://synthetic.example/,http://synthetic.example/page/10\r\n');
    assert.equal(stderr, 'tcrawl exit 0\n', 'no stack trace, no message');
    assert.ok(Date.now() - startedMs < 15_000, 'it stopped rather than reading all 300,000 rows into a closed pipe');
  });

  it('--out writes the file whole, leaving nothing else; an interrupted export leaves no file; an unwritable --out is bad input', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcrawl-export-'));
    const out = path.join(dir, 'pages.csv');
    const written = await tcrawl(['export', crawlId, '--format', 'csv', '--out', out], env);
    assert.equal(written.code, 0, written.stderr);
    assert.equal(written.stdout, '');
    assert.equal(fs.readFileSync(out, 'utf8'), (await tcrawl(['export', crawlId, '--format', 'csv'], env)).stdout);
    assert.deepEqual(fs.readdirSync(dir), ['pages.csv']);

    const linksId = await syntheticLinks(stack, 1_000_000);
    const interrupted = path.join(dir, 'links.jsonl');
    const child = spawn(process.execPath, [tcrawlBin, 'export', linksId, '--what', 'links', '--out', interrupted], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Once a megabyte is written, the export is well under way and far from done.
    await waitFor('the export to be under way', () => fs.readdirSync(dir).some((name) => name.endsWith('.partial') && fs.statSync(path.join(dir, name)).size > 1 << 20), 30_000);
    child.kill('SIGTERM');
    assert.equal(await exited, 143, stderr);
    assert.match(stderr, /links\.jsonl was not written/);
    assert.deepEqual(fs.readdirSync(dir), ['pages.csv'], 'neither links.jsonl nor its temporary file is left');

    const nowhere = await tcrawl(['export', crawlId, '--out', path.join(dir, 'no-such-dir', 'x.jsonl')], env);
    assert.equal(nowhere.code, 2, nowhere.stderr);
    assert.match(nowhere.stderr, /--out .*no-such-dir.*ENOENT/);
  });

  it('exits 2 on an unknown crawl id (TCRAWL_UNKNOWN_CRAWL), a bad --what or --format, or --html with other rows', async () => {
    const unknown = await tcrawl(['export', 'no-such-crawl'], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /No crawl with id "no-such-crawl"/);
    assert.equal(unknown.stdout, '');
    await assert.rejects(exportRows(stack.pool, 'no-such-crawl', { what: 'pages', format: 'csv' }), { code: 'TCRAWL_UNKNOWN_CRAWL' });
    for (const [args, message] of [
      [['--what', 'everything'], /argument 'everything' is invalid\. Allowed choices are pages, items, failed, links/],
      [['--format', 'xml'], /argument 'xml' is invalid\. Allowed choices are jsonl, csv/],
      [['--what', 'items', '--html'], /--html goes with --what pages/],
    ] as const) {
      const run = await tcrawl(['export', crawlId, ...args], env);
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, message);
    }
  });

  it('exportRecords gives typed records and returns its connection to the pool, read to the end or stopped early', async () => {
    const pages = [];
    for await (const page of await exportRecords(stack.pool, crawlId, { what: 'pages' })) pages.push(page.url);
    assert.equal(pages.length, site.expectations.savedPaths.length);
    const linksId = await syntheticLinks(stack, 10_000);
    for await (const link of await exportRecords(stack.pool, linksId, { what: 'links' })) {
      assert.equal(link.found_on, 'http://synthetic.example/');
      break;
    }
    await waitFor('the connections to be back in the pool', () => stack.pool.waitingCount === 0 && stack.pool.idleCount === stack.pool.totalCount, 5_000);
    const { rows } = await stack.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'`);
    assert.equal(rows[0].n, 0, 'no snapshot left open');
  });
});
