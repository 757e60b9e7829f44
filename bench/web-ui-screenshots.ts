/**
 * `npm run screenshots:web-ui`: regenerates the README's pictures of the
 * Temporal Web UI, docs/images/web-ui-list.png (the workflow list filtered by
 * a tcrawl search attribute, with their columns) and docs/images/web-ui-crawl.png
 * (a crawl's User Metadata tab).
 *
 * Starts what it needs and removes it at the end: a private Temporal dev
 * server with its Web UI (fresh database, free ports), a private database
 * (on DATABASE_URL's server when set, else a private embedded Postgres), an
 * in-process worker, and the PostgreSQL documentation (Debian's
 * postgresql-doc-15, or --docs DIR) served on 127.0.0.1, .2 and .3. Then
 * four crawls in four phases — finished, cancelled, paused, crawling — and
 * headless Chromium (TCRAWL_CHROMIUM, default /usr/bin/chromium).
 *
 *   npm run screenshots:web-ui -- [--docs /usr/share/doc/postgresql-doc-15/html] [--out docs/images]
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Client as PgClient } from 'pg';
import { runtimeConfig } from '../src/config';
import { ensureEmbeddedPostgres } from '../src/infra/embedded-postgres';
import { ensureTemporalServer } from '../src/infra/temporal-server';
import { connect, type CrawlHandle, type TcrawlClient } from '../src/tcrawl-client';
import { freePort, privateDir } from '../test/helpers/processes';
import { quietRuntime } from '../test/helpers/stack';
import { collectPageErrors, launchChromium, TemporalWebUi } from '../test/helpers/web-ui';

const log = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Undo steps, last first. */
const undo: { what: string; run: () => Promise<unknown> }[] = [];

async function cleanup(): Promise<void> {
  for (let step = undo.pop(); step; step = undo.pop()) {
    await step.run().catch((error: unknown) => log(`cleanup: could not ${step.what}: ${(error as Error).message}`));
  }
}

/** Serves `root`'s files on `address`, port 0 (HTML as text/html; no directory listings). */
async function serveDirectory(root: string, address: string): Promise<string> {
  const server = http.createServer((req, res) => {
    const file = path.resolve(root, `.${decodeURIComponent(new URL(req.url ?? '/', 'http://docs').pathname)}`);
    if (!file.startsWith(root + path.sep) || !fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.html') ? 'text/html; charset=utf-8' : 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  undo.push({ what: `stop the docs server on ${address}`, run: () => new Promise((resolve) => server.close(resolve)) });
  return `http://${address}:${(server.address() as AddressInfo).port}`;
}

/** A Temporal dev server and a database of this run's own. */
async function privateServices(dataDir: string): Promise<{ temporalAddress: string; webUiUrl: string; databaseUrl: string }> {
  const config = { ...runtimeConfig(), dataDir };
  const temporal = await ensureTemporalServer({ config, port: await freePort(), uiPort: await freePort(), dbFile: path.join(dataDir, 'temporal.db'), detached: false, log });
  undo.push({ what: 'stop the Temporal dev server', run: temporal.stop });
  return { temporalAddress: temporal.address, webUiUrl: temporal.uiUrl, databaseUrl: await privateDatabase(config.databaseUrl, dataDir) };
}

async function privateDatabase(serverUrl: string | undefined, dataDir: string): Promise<string> {
  if (!serverUrl) {
    const pg = await ensureEmbeddedPostgres({ config: { ...runtimeConfig(), dataDir }, port: await freePort(), detached: false, log });
    undo.push({ what: 'stop the embedded Postgres', run: pg.stop });
    return pg.databaseUrl;
  }
  const name = `tcrawl_screenshots_${randomBytes(4).toString('hex')}`;
  const admin = async (sql: string) => {
    const client = new PgClient({ connectionString: serverUrl });
    await client.connect();
    await client.query(sql).finally(() => client.end());
  };
  await admin(`CREATE DATABASE ${name}`);
  undo.push({ what: `drop database ${name}`, run: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) });
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.href;
}

/** Waits until the crawl has saved at least `pages`. */
async function untilSaved(crawl: CrawlHandle, pages: number): Promise<void> {
  while (((await crawl.progress())?.saved ?? 0) < pages) await sleep(500);
}

/** Four crawls of the docs, left in four phases; returns the one still crawling, on three hosts. */
async function crawlInFourPhases(tcrawl: TcrawlClient, mirrors: string[]): Promise<CrawlHandle> {
  const seed = (origin: string) => `${origin}/index.html`;
  const polite = { allowPrivate: true, maxPages: 5000 };
  const first = await tcrawl.startCrawl({ ...polite, seeds: [seed(mirrors[0])], rate: 0, maxPages: 60 }, { id: 'pg-docs-first-60' });
  const cancelled = await tcrawl.startCrawl({ ...polite, seeds: [seed(mirrors[0])], rate: 4 }, { id: 'pg-docs-cancelled' });
  const paused = await tcrawl.startCrawl({ ...polite, seeds: [seed(mirrors[0])], rate: 4 }, { id: 'pg-docs-paused' });
  const crawling = await tcrawl.startCrawl({ ...polite, seeds: mirrors.map(seed), rate: 3 }, { id: 'pg-docs-three-mirrors' });
  await first.result();
  await untilSaved(crawling, 3);
  await crawling.setRate(1, { host: new URL(mirrors[2]).host });
  await Promise.all([untilSaved(cancelled, 25), untilSaved(paused, 35)]);
  await cancelled.cancel();
  await paused.pause();
  // Search attributes follow at most every 15 s: the running crawl's list figures catch up.
  await sleep(16_000);
  undo.push({ what: 'cancel the running crawls', run: () => Promise.all([paused.cancel(), crawling.cancel()]) });
  return crawling;
}

async function screenshots(webUiUrl: string, crawling: CrawlHandle, outDir: string): Promise<void> {
  const browser = await launchChromium();
  undo.push({ what: 'close Chromium', run: () => browser.close() });
  const page = await browser.newPage({ viewport: { width: 1600, height: 450 } });
  const pageErrors = collectPageErrors(page);
  const ui = new TemporalWebUi(page, webUiUrl, 'default');

  await ui.openList('TcrawlSaved > 20');
  await ui.configureColumns({ remove: ['Run ID', 'Type', 'End'], add: ['TcrawlPhase', 'TcrawlSaved', 'TcrawlQueued', 'TcrawlFailed'] });
  await ui.waitForListed(['crawl-pg-docs-cancelled', 'crawl-pg-docs-first-60', 'crawl-pg-docs-paused', crawling.workflowId]);
  await page.screenshot({ path: path.join(outDir, 'web-ui-list.png') });

  await page.setViewportSize({ width: 1400, height: 800 });
  await ui.openFromList(crawling.workflowId);
  await ui.openTab('User Metadata');
  await ui.markdownPane('Current Details', 'crawling · saved');
  await ui.markdownPane('Details', 'Limits');
  await page.screenshot({ path: path.join(outDir, 'web-ui-crawl.png') });
  if (pageErrors.length > 0) throw new Error(`The Web UI reported errors:\n${pageErrors.join('\n')}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { docs: { type: 'string', default: '/usr/share/doc/postgresql-doc-15/html' }, out: { type: 'string', default: 'docs/images' } } });
  const docs = path.resolve(values.docs!);
  if (!fs.existsSync(path.join(docs, 'index.html'))) throw new Error(`No ${docs}/index.html: install postgresql-doc-15 (Debian) or give --docs DIR with an index.html`);
  const outDir = path.resolve(values.out!);
  fs.mkdirSync(outDir, { recursive: true });
  quietRuntime();

  const dataDir = privateDir('tcrawl-screenshots-');
  undo.push({ what: `remove ${dataDir}`, run: async () => fs.rmSync(dataDir, { recursive: true, force: true }) });
  const services = await privateServices(dataDir);
  const mirrors = [];
  for (const address of ['127.0.0.1', '127.0.0.2', '127.0.0.3']) mirrors.push(await serveDirectory(docs, address));
  const env = { ...process.env, TEMPORAL_ADDRESS: services.temporalAddress, TEMPORAL_NAMESPACE: 'default', DATABASE_URL: services.databaseUrl, TCRAWL_TASK_QUEUE: 'tcrawl-screenshots' };
  const tcrawl = await connect({ env, log });
  undo.push({ what: 'close the client', run: () => tcrawl.close() });
  const worker = await tcrawl.runWorker();
  undo.push({ what: 'stop the worker', run: () => worker.stop() });

  const crawling = await crawlInFourPhases(tcrawl, mirrors);
  await screenshots(services.webUiUrl, crawling, outDir);
  for (const name of ['web-ui-list.png', 'web-ui-crawl.png']) log(`Wrote ${path.join(outDir, name)} (${Math.round(fs.statSync(path.join(outDir, name)).size / 1024)} KB)`);
}

main()
  .catch((error: unknown) => {
    log(`error: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  })
  .finally(cleanup);
