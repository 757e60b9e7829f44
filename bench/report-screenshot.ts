/**
 * `npm run screenshot:report`: crawls the PostgreSQL documentation from a
 * local static server, makes the crawl's report and saves a full-page PNG of
 * it in headless Chromium — the README's docs/images/report.png.
 *
 *   npm run screenshot:report -- [--docs DIR] [--pages 500] [--rate 5] [--out docs/images/report.png]
 *
 * Two hosts serve the docs: the site itself, and a "mirror" that answers 503
 * to every 6th request, as an overloaded server does; with one retry some of
 * those fail for good. A body limit of 150 kB fails the largest pages as
 * too_large. Items: each page's `div.sect1` with its section number (`h2`,
 * "9.4. String Functions…"), charted as the numeric field.
 * Uses TEMPORAL_ADDRESS and DATABASE_URL, or starts the local services.
 */
import { mkdtempSync, promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Client } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { chromium } from 'playwright-core';
import { startCrawl } from '../src/client';
import { runtimeConfig } from '../src/config';
import { connectClient, connectWorker } from '../src/temporal-connection';
import { createPool, migrate } from '../src/infra/database';
import { buildReport } from '../src/report/build-report';
import { ensureServices } from '../src/services';
import { parseCrawlSpec } from '../src/spec';
import { createCrawlWorker } from '../src/worker';

const log = (line: string) => process.stderr.write(`${line}\n`);

const contentTypes: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.svg': 'image/svg+xml', '.png': 'image/png' };

/** Serves `root` on 127.0.0.1; `failEvery` > 0 answers 503 to every n-th request. */
async function serveDocs(root: string, failEvery = 0): Promise<{ origin: string; close(): Promise<void> }> {
  let requests = 0;
  const server = http.createServer(async (req, res) => {
    requests++;
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    if (failEvery > 0 && requests % failEvery === 0) return void res.writeHead(503, { 'content-type': 'text/plain' }).end('overloaded');
    if (pathname === '/robots.txt') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('User-agent: *\nAllow: /\n');
    const file = path.join(root, path.normalize(pathname === '/' ? '/index.html' : pathname));
    if (!file.startsWith(root)) return void res.writeHead(403).end();
    try {
      const body = await fs.readFile(file);
      res.writeHead(200, { 'content-type': contentTypes[path.extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      docs: { type: 'string', default: '/usr/share/doc/postgresql-doc-15/html' },
      pages: { type: 'string', default: '500' },
      rate: { type: 'string', default: '5' },
      out: { type: 'string', default: path.resolve(__dirname, '../docs/images/report.png') },
    },
  });
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const config = runtimeConfig();
  const services = await ensureServices(config, { detached: true, log });
  const pool = createPool(services.databaseUrl, 30);
  await migrate(pool);
  const [site, mirror] = await Promise.all([serveDocs(values.docs), serveDocs(values.docs, 6)]);
  const crawlId = `pgdocs-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}`;
  const taskQueue = `screenshot-${process.pid}`;
  const connection = await connectClient(services.temporalAddress, config);
  const nativeConnection = await connectWorker(services.temporalAddress, config);
  try {
    const spec = parseCrawlSpec({
      seeds: [`${site.origin}/index.html`, `${mirror.origin}/index.html`],
      maxPages: Number(values.pages),
      maxDepth: 20,
      rate: Number(values.rate),
      concurrency: 4,
      maxRetries: 1,
      retryBaseMs: 500,
      maxBodyBytes: 150_000,
      allowPrivate: true,
      items: { selector: 'div.sect1', fields: { section: 'h2', id: '@id' } },
    });
    const worker = await createCrawlWorker({ connection: nativeConnection, namespace: config.temporalNamespace, taskQueue, pool });
    const client = new Client({ connection, namespace: config.temporalNamespace });
    log(`Crawling ${spec.maxPages} pages of ${values.docs} as crawl ${crawlId}…`);
    await worker.runUntil(startCrawl(client, taskQueue, crawlId, spec).then((handle) => handle.result()));
    const html = path.join(mkdtempSync(path.join(os.tmpdir(), 'tcrawl-screenshot-')), 'report.html');
    await fs.writeFile(html, await buildReport(pool, crawlId));
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-background-networking'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(pathToFileURL(html).href);
      await page.screenshot({ path: values.out, fullPage: true });
    } finally {
      await browser.close();
    }
    log(`Report ${html}; screenshot ${values.out} (${(await fs.stat(values.out)).size} bytes).`);
  } finally {
    await connection.close();
    await nativeConnection.close();
    await pool.end();
    await Promise.all([site.close(), mirror.close()]);
  }
}

main().catch((error: unknown) => {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
