/**
 * A synthetic site for throughput benchmarks: pages `/p/0`..`/p/{pages-1}`, each
 * 2–4 KiB of ordinary HTML (title, paragraphs, nav) linking to ~12 others.
 *
 * Link graph: `/p/i` links to its 10 children `/p/{10i+1}`..`/p/{10i+10}` (a
 * 10-ary tree, so breadth-first from `/p/0` reaches 20,000 pages in 5 levels),
 * plus its parent, `/p/0` and one pseudo-random page, so most links found are
 * already seen, as on a real site.
 *
 * Pages are rendered per request from a few pre-built paragraphs, so serving
 * stays cheap next to the crawler being measured.
 *
 * As a script: `tsx bench/site.ts --pages 20000 --port 0` prints the origin on
 * stdout and serves until killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as http from 'node:http';
import { createInterface } from 'node:readline';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

export interface BenchSiteOptions {
  /** Number of pages. @default 20000 */
  pages?: number;
  /** Tree fan-out: children linked from each page. @default 10 */
  linksPerPage?: number;
  /** @default 0 (an ephemeral port) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string | undefined;
}

export interface BenchSite {
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** Requests served so far (robots.txt included). */
  requestCount(): number;
  close(): Promise<void>;
}

const WORDS = (
  'crawler durable workflow frontier lease batch politeness robots sitemap canonical ' +
  'history payload activity heartbeat retry schedule throughput latency index upsert ' +
  'queue worker shard host scope depth anchor fragment redirect status header body'
).split(' ');

/** 32 paragraphs of 700–1,400 bytes; each page shows two, chosen by its number. */
const PARAGRAPHS = Array.from({ length: 32 }, (_, k) => paragraph(k));

function paragraph(seed: number): string {
  let x = (Math.imul(seed + 1, 2654435761) >>> 0) || 1;
  const words: string[] = [];
  const target = 700 + ((seed * 97) % 700);
  for (let len = 0; len < target; ) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0; // 32-bit LCG; its high bits are the random ones
    const w = WORDS[(x >>> 16) % WORDS.length]!;
    words.push(w);
    len += w.length + 1;
  }
  return `<p>${words.join(' ')}.</p>`;
}

/** Pages `/p/i` links to, in page order: the tree children, then parent, home and one pseudo-random page. */
export function benchLinks(i: number, pages: number, fanOut = 10): number[] {
  const out: number[] = [];
  for (let j = i * fanOut + 1; j <= i * fanOut + fanOut && j < pages; j++) out.push(j);
  if (i > 0) out.push(Math.floor((i - 1) / fanOut), 0);
  out.push((i * 7919 + 104729) % pages);
  return out;
}

export function renderBenchPage(i: number, pages: number, fanOut = 10): string {
  const nav = benchLinks(i, pages, fanOut)
    .map((j) => `<li><a href="/p/${j}">Page ${j}</a></li>`)
    .join('');
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Bench page ${i}</title>` +
    `<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>` +
    `<header><a href="/p/0">Home</a> <a href="#main">Skip to content</a></header>` +
    `<main id="main"><h1>Bench page ${i}</h1>${PARAGRAPHS[i % 32]}${PARAGRAPHS[(i * 7 + 3) % 32]}</main>` +
    `<nav><ul>${nav}</ul></nav><footer><p>Page ${i} of ${pages}</p></footer></body></html>\n`
  );
}

export async function startBenchSite(opts: BenchSiteOptions = {}): Promise<BenchSite> {
  const pages = opts.pages ?? 20_000;
  const fanOut = opts.linksPerPage ?? 10;
  return listenForBench(opts, (path, res) => serve(path, res, pages, fanOut));
}

/** Where a bench site tells when its requests came: `GET` it for the span since the last `GET`. */
export const SPAN_PATH = '/_bench/span';

/** The requests a bench site saw since the span was last read: how many, the first's and the last's time (ms since the epoch). */
export interface RequestSpan {
  requests: number;
  firstMs: number | null;
  lastMs: number | null;
}

/**
 * A keep-alive server on `opts.port` that hands each request's path to
 * `serve`, and answers {@link SPAN_PATH} itself: a crawler is timed by the
 * site from its first request to its last, not by its own start-up.
 */
export async function listenForBench(opts: Pick<BenchSiteOptions, 'port' | 'host'>, serve: (path: string, res: http.ServerResponse) => void): Promise<BenchSite> {
  let served = 0;
  let span: RequestSpan = { requests: 0, firstMs: null, lastMs: null };
  const server = http.createServer({ keepAlive: true }, (req, res) => {
    if (req.url === SPAN_PATH) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(span));
      span = { requests: 0, firstMs: null, lastMs: null };
      return;
    }
    served++;
    const nowMs = Date.now();
    span.requests++;
    span.firstMs ??= nowMs;
    span.lastMs = nowMs;
    serve(req.url ?? '/', res);
  });
  // Keep idle sockets open longer than a client's pool would, so no request races a server-side close.
  server.keepAliveTimeout = 60_000;
  server.headersTimeout = 65_000;
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve));
  const { address, port } = server.address() as AddressInfo;
  return {
    origin: `http://${address}:${port}`,
    requestCount: () => served,
    close: () => closeServer(server),
  };
}

/** The span of requests `origin` saw since it was last asked (see {@link SPAN_PATH}). */
export async function readSpan(origin: string): Promise<RequestSpan> {
  const res = await fetch(`${origin}${SPAN_PATH}`);
  return (await res.json()) as RequestSpan;
}

function serve(path: string, res: http.ServerResponse, pages: number, fanOut: number): void {
  if (path === '/robots.txt') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('User-agent: *\nAllow: /\n');
  const m = /^\/p\/(\d+)$/.exec(path);
  const i = m ? Number(m[1]) : -1;
  if (i < 0 || i >= pages) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  const body = renderBenchPage(i, pages, fanOut);
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

async function closeServer(server: http.Server): Promise<void> {
  const closed = new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  server.closeAllConnections();
  await closed;
}

/** The bench site in a child process of its own (its own core), for as long as the caller keeps it. */
export function spawnBenchSite(pages: number): Promise<{ origin: string; child: ChildProcess }> {
  return spawnSite(__filename, ['--pages', String(pages)]);
}

/** A site script (one that prints its origin on stdout and serves until killed) in a child process. */
export async function spawnSite(script: string, args: string[]): Promise<{ origin: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout! });
  for await (const line of lines) return { origin: line.trim(), child };
  throw new Error('bench site exited before printing its origin');
}

/** The other side of {@link spawnSite}: starts the site, prints its origin on stdout, serves until SIGINT or SIGTERM. */
export function serveAsSiteScript(start: () => Promise<BenchSite>): void {
  start().then(
    (site) => {
      process.stdout.write(`${site.origin}\n`);
      const stop = () => void site.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

if (require.main === module) {
  const { values } = parseArgs({
    options: { pages: { type: 'string', default: '20000' }, port: { type: 'string', default: '0' }, host: { type: 'string' } },
  });
  serveAsSiteScript(() => startBenchSite({ pages: Number(values.pages), port: Number(values.port), host: values.host }));
}
