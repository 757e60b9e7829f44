/**
 * Real HTML for throughput benchmarks: a folder of static pages (by default
 * PostgreSQL 15's documentation as Debian's postgresql-doc-15 installs it,
 * 1,169 pages, 16 MB) served `copies` times over, a full copy under each of
 * `/a/`, `/b/`, …; its links are relative, so each copy's stay within its
 * prefix. `/` links to every copy's `index.html`: a crawl of `/` finds
 * 1 + copies × (the pages reachable from index.html).
 *
 * Files are read into memory once, so serving stays cheap next to the
 * crawlers being measured.
 *
 * As a script: `tsx bench/docs-site.ts [--dir DIR] [--copies 8] [--port 0]`
 * prints the origin on stdout and serves until killed.
 */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { listenForBench, serveAsSiteScript, spawnSite, type BenchSite } from './site';

export const PG_DOCS_DIR = '/usr/share/doc/postgresql-doc-15/html';

export interface DocsSiteOptions {
  /** The folder served (its files, not its subfolders). @default {@link PG_DOCS_DIR} */
  dir?: string;
  /** Copies served, under `/a/`, `/b/`, … (at most 26). @default 8 */
  copies?: number;
  /** @default 0 (an ephemeral port) */
  port?: number;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The copies' prefixes, `a` for the first. */
export function copyPrefixes(copies: number): string[] {
  if (!Number.isInteger(copies) || copies < 1 || copies > 26) throw new Error(`--copies must be 1 to 26 (got ${copies})`);
  return Array.from({ length: copies }, (_, i) => String.fromCharCode(97 + i));
}

export async function startDocsSite(opts: DocsSiteOptions = {}): Promise<BenchSite> {
  const dir = opts.dir ?? PG_DOCS_DIR;
  if (!fs.existsSync(dir)) throw new Error(`${dir} is missing: install Debian's postgresql-doc-15 (apt-get install postgresql-doc-15) or pass --docs-dir`);
  const files = new Map<string, Buffer>();
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) if (entry.isFile()) files.set(entry.name, fs.readFileSync(path.join(dir, entry.name)));
  const prefixes = copyPrefixes(opts.copies ?? 8);
  const home = Buffer.from(
    `<!doctype html><html><head><title>Copies of ${path.basename(path.dirname(dir))}</title></head><body><ul>` +
      prefixes.map((prefix) => `<li><a href="/${prefix}/index.html">Copy ${prefix}</a></li>`).join('') +
      '</ul></body></html>\n',
  );
  const copies = new Set(prefixes);
  return listenForBench({ port: opts.port }, (urlPath, res) => {
    if (urlPath === '/') return send(res, 200, CONTENT_TYPES['.html']!, home);
    if (urlPath === '/robots.txt') return send(res, 200, 'text/plain', Buffer.from('User-agent: *\nAllow: /\n'));
    const match = /^\/([a-z])\/([^/?#]+)$/.exec(urlPath);
    const body = match && copies.has(match[1]!) ? files.get(decodeURIComponent(match[2]!)) : undefined;
    if (body === undefined) return send(res, 404, 'text/plain', Buffer.from('not found'));
    send(res, 200, CONTENT_TYPES[path.extname(match![2]!)] ?? 'application/octet-stream', body);
  });
}

function send(res: http.ServerResponse, status: number, contentType: string, body: Buffer): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': body.length }).end(body);
}

/** The docs site in a child process of its own, for as long as the caller keeps it. */
export function spawnDocsSite(opts: { dir?: string; copies: number }): ReturnType<typeof spawnSite> {
  return spawnSite(__filename, ['--copies', String(opts.copies), ...(opts.dir ? ['--dir', opts.dir] : [])]);
}

if (require.main === module) {
  const { values } = parseArgs({ options: { dir: { type: 'string' }, copies: { type: 'string', default: '8' }, port: { type: 'string', default: '0' } } });
  serveAsSiteScript(() => startDocsSite({ dir: values.dir, copies: Number(values.copies), port: Number(values.port) }));
}
