/**
 * Link floods: a page with 100,000 links over 50,001 hosts, and sitemaps
 * listing 1,000,000 URLs. Every URL lands in the frontier, while every
 * Temporal payload (activity inputs and results, continue-as-new state) stays
 * far under the 2 MB limit and the workflow keeps state for a bounded number
 * of hosts.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { temporal } from '@temporalio/proto';
import { startCrawl } from '../../src/client';
import { parseCrawlSpec } from '../../src/spec';
import { localSiteDefaults, openStack, startWorker, uniqueId, type TestStack } from '../helpers/stack';

/** Far under Temporal's 2 MB per payload: what "bounded" means here. */
const maxEventBytes = 256 * 1024;
const floodLinks = 100_000;
const sitemapFiles = 20;
const urlsPerSitemap = 50_000; // the sitemaps protocol's maximum per file

describe('link floods', () => {
  let stack: TestStack;
  let server: http.Server;
  let origin: string;

  before(async () => {
    stack = await openStack();
    server = http.createServer((req, res) => {
      const path = req.url ?? '/';
      if (path === '/flood') return res.writeHead(200, { 'content-type': 'text/html' }).end(floodPage());
      if (path === '/sitemap.xml') return res.writeHead(200, { 'content-type': 'application/xml' }).end(sitemapIndex());
      const sitemap = /^\/sitemaps\/(\d+)\.xml$/.exec(path);
      if (sitemap) return res.writeHead(200, { 'content-type': 'application/xml' }).end(urlset(Number(sitemap[1])));
      res.writeHead(path === '/robots.txt' ? 404 : 200, { 'content-type': 'text/html' }).end('<title>page</title>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await stack?.close();
  });

  /** Half the links on this host, half each on a host of its own (127.x.y.z: nothing listens there, they fail fast). */
  function floodPage(): string {
    const { port } = new URL(origin);
    const links: string[] = [];
    for (let i = 0; i < floodLinks / 2; i++) links.push(`<a href="/p/${i}">p</a>`);
    for (let i = 0; i < floodLinks / 2; i++) links.push(`<a href="http://127.${Math.floor(i / 62500) + 1}.${Math.floor(i / 250) % 250}.${(i % 250) + 1}:${port}/x">x</a>`);
    return `<html><head><title>flood</title></head><body>${links.join('')}</body></html>`;
  }

  function sitemapIndex(): string {
    const entries = Array.from({ length: sitemapFiles }, (_, i) => `<sitemap><loc>${origin}/sitemaps/${i}.xml</loc></sitemap>`);
    return `<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">${entries.join('')}</sitemapindex>`;
  }

  function urlset(file: number): string {
    const entries: string[] = [];
    for (let i = 0; i < urlsPerSitemap; i++) entries.push(`<url><loc>${origin}/item/${file * urlsPerSitemap + i}</loc></url>`);
    return `<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">${entries.join('')}</urlset>`;
  }

  async function crawl(spec: Parameters<typeof parseCrawlSpec>[0]) {
    const crawlId = uniqueId('flood');
    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, ...(spec as object) }));
    const summary = await worker.runUntil(handle.result());
    const frontier = await stack.pool.query<{ n: number; hosts: number }>(`SELECT count(*)::int AS n, count(DISTINCT host)::int AS hosts FROM frontier WHERE crawl_id = $1`, [crawlId]);
    return { summary, history: await handle.fetchHistory(), ...frontier.rows[0] };
  }

  function largestEventBytes(history: temporal.api.history.v1.IHistory): number {
    return Math.max(...(history.events ?? []).map((event) => JSON.stringify(event).length));
  }

  it('a page with 100,000 links over 50,001 hosts: all queued, every payload small, the workflow tracks a bounded set of hosts', async () => {
    const { summary, history, n, hosts } = await crawl({ seeds: [`${origin}/flood`], scope: 'any', maxPages: 60, maxRetries: 0, obeyRobots: false, connectTimeoutMs: 2000 });

    assert.equal(n, floodLinks + 1, 'every link is in the frontier');
    assert.equal(hosts, floodLinks / 2 + 1);
    assert.equal(summary.saved + summary.failed + summary.skipped, 60, 'the crawl ran to its budget');
    assert.ok(summary.hosts <= 2000, `the workflow keeps state for ${summary.hosts} hosts`);
    const largest = largestEventBytes(history);
    assert.ok(largest < maxEventBytes, `largest history event: ${largest} bytes`);
  });

  it('sitemaps listing 1,000,000 URLs: all queued, every payload small', async () => {
    const { summary, history, n } = await crawl({ seeds: [`${origin}/`], sitemaps: true, maxPages: 10, obeyRobots: false });

    assert.equal(n, sitemapFiles * urlsPerSitemap + 1, 'every sitemap URL (and the seed) is in the frontier');
    assert.equal(summary.saved, 10);
    const largest = largestEventBytes(history);
    assert.ok(largest < maxEventBytes, `largest history event: ${largest} bytes`);
  });
});
