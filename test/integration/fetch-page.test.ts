import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import type { AddressInfo, LookupFunction, Socket } from 'node:net';
import * as zlib from 'node:zlib';
import * as iconv from 'iconv-lite';
import type { Dispatcher } from 'undici';
import { fetchOptionsFor, fetchPage, type FetchOptions, type FetchOutcome } from '../../activities/fetch-page';
import { parseRetryAfter } from '../../activities/fetch-errors';
import { extractPage } from '../../src/extract';
import { selfSignedCertificate } from '../helpers/tls';
import { parseCrawlSpec } from '../../src/spec';
import {
  PrivateAddressError,
  agentFor,
  assertPublicHost,
  closeAgents,
  createHttpAgent,
  guardLookup,
  type HttpAgentOptions,
} from '../../activities/http-agent';

// ---------------------------------------------------------------------------
// A local server with one route per behaviour under test.

const LIMIT = 1024 * 1024; // maxBodyBytes in these tests
const BIG = 20 * 1024 * 1024; // "much more than the limit"
const HTML = { 'content-type': 'text/html; charset=utf-8' };
const OK_BODY = '<!doctype html><title>ok</title><p>ok</p>';
const SLOW_HOP_MS = 150; // /slow-hop/<n>: each hop answers after this long

interface Server {
  origin: string;
  port: number;
  url(path: string): string;
  /** Paths requested, in order. */
  paths: string[];
  /** Paths whose response was cut off by the client before it was fully sent. */
  cutOff: Set<string>;
  connections: number;
  close(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

function redirect(status: number, location: string | null): Handler {
  return (_req, res) => {
    res.writeHead(status, location === null ? {} : { location, 'content-type': 'text/html' });
    res.end(`<a href="${location}">moved</a>`);
  };
}

/** Streams `total` bytes in 64 KiB chunks, honouring backpressure and stopping when the client goes away. */
function stream(res: http.ServerResponse, total: number): void {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  let sent = 0;
  const pump = (): void => {
    while (sent < total && !res.destroyed) {
      sent += chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    if (!res.destroyed) res.end();
  };
  pump();
}

const bomb = zlib.gzipSync(Buffer.alloc(32 * 1024 * 1024)); // ~32 KiB on the wire, 32 MiB decoded
const deflateBomb = zlib.deflateSync(Buffer.alloc(32 * 1024 * 1024));
const brotliBomb = zlib.brotliCompressSync(Buffer.alloc(32 * 1024 * 1024)); // a few dozen bytes
/** Empty gzip members (RFC 1952 §2.2 allows any number), each 20 bytes that decode to nothing. */
const emptyMembers = (bytes: number) => Buffer.concat(new Array<Buffer>(Math.ceil(bytes / 20)).fill(zlib.gzipSync(Buffer.alloc(0))));
/** Content codings applied in order, as Content-Encoding lists them (RFC 9110 §8.4). */
function encode(body: Buffer | string, codings: Array<'gzip' | 'br'>): Buffer {
  return codings.reduce((bytes, coding) => (coding === 'gzip' ? zlib.gzipSync(bytes) : zlib.brotliCompressSync(bytes)), Buffer.from(body));
}

const SITEMAP_XML = '<?xml version="1.0"?><urlset><url><loc>https://example.com/</loc></url></urlset>';
const GZIP_FILE = { 'content-type': 'application/x-gzip' }; // a .gz file: no Content-Encoding

const routes: Record<string, Handler> = {
  '/ok': (_req, res) => res.writeHead(200, HTML).end(OK_BODY),
  '/latin1': (_req, res) =>
    // 0x92 is ’ in windows-1252, which is what the ISO-8859-1 label means on the web (WHATWG Encoding).
    res.writeHead(200, { 'content-type': 'text/html; charset=ISO-8859-1' }).end(Buffer.from('<p>café\x92s</p>', 'latin1')),
  '/meta-charset': (_req, res) =>
    res
      .writeHead(200, { 'content-type': 'text/html' })
      // 0xE9 is é and 0x80 is € in windows-1252 (0x80 is a control character in ISO-8859-1 proper).
      .end(Buffer.from('<head><meta charset="windows-1252"></head><p>caf\xe9 \x80</p>', 'latin1')),
  '/bom': (_req, res) =>
    res
      .writeHead(200, { 'content-type': 'text/html; charset=iso-8859-1' })
      .end(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('<p>café</p>', 'utf8')])),
  '/bogus-charset': (_req, res) =>
    res.writeHead(200, { 'content-type': 'text/html; charset="x-no-such-charset"' }).end('<p>café</p>'),
  '/gzip': (_req, res) =>
    res.writeHead(200, { ...HTML, 'content-encoding': 'gzip' }).end(zlib.gzipSync(OK_BODY)),
  '/br': (_req, res) =>
    res.writeHead(200, { ...HTML, 'content-encoding': 'br' }).end(zlib.brotliCompressSync(OK_BODY)),
  '/bomb': (_req, res) => res.writeHead(200, { ...HTML, 'content-encoding': 'gzip' }).end(bomb),
  '/corrupt-gzip': (_req, res) =>
    res.writeHead(200, { ...HTML, 'content-encoding': 'gzip' }).end('this is not gzip at all'),
  '/zstd': (_req, res) => res.writeHead(200, { ...HTML, 'content-encoding': 'zstd' }).end('whatever'),
  '/sitemap.xml.gz': (_req, res) => res.writeHead(200, GZIP_FILE).end(zlib.gzipSync(SITEMAP_XML)),
  '/double.xml.gz': (_req, res) =>
    res.writeHead(200, { ...GZIP_FILE, 'content-encoding': 'gzip' }).end(zlib.gzipSync(zlib.gzipSync(SITEMAP_XML))),
  '/bomb.xml.gz': (_req, res) => res.writeHead(200, GZIP_FILE).end(bomb),
  '/corrupt.xml.gz': (_req, res) => res.writeHead(200, GZIP_FILE).end(Buffer.from([0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7, 8])),
  '/garbage': (_req, res) => res.writeHead(200, HTML).end(randomBytes(8192)),
  '/shift-jis': (_req, res) =>
    res.writeHead(200, { 'content-type': 'text/html; charset=Shift_JIS' }).end(iconv.encode('<p>日本語のページ</p>', 'Shift_JIS')),
  '/meta-lies': (_req, res) =>
    // The header says windows-1251 and is right; the <meta> claims Shift_JIS.
    res
      .writeHead(200, { 'content-type': 'text/html; charset=windows-1251' })
      .end(iconv.encode('<meta charset="shift_jis"><p>Привет</p>', 'windows-1251')),
  '/malformed': (_req, res) =>
    res.writeHead(200, HTML).end('<html><head><title>Still a page</title><body><div><p>unclosed <a href=/ok>link<table><td>cell</div></span>'),
  '/deflate-bomb': (_req, res) => res.writeHead(200, { ...HTML, 'content-encoding': 'deflate' }).end(deflateBomb),
  '/br-bomb': (_req, res) => res.writeHead(200, { ...HTML, 'content-encoding': 'br' }).end(brotliBomb),
  '/stacked': (_req, res) =>
    res.writeHead(200, { ...HTML, 'content-encoding': 'gzip, gzip, br' }).end(encode(OK_BODY, ['gzip', 'gzip', 'br'])),
  '/two-encoding-lines': (_req, res) =>
    res.setHeader('content-encoding', ['gzip', 'br']).writeHead(200, HTML).end(encode(OK_BODY, ['gzip', 'br'])),
  '/stacked-bomb': (_req, res) => res.writeHead(200, { ...HTML, 'content-encoding': 'gzip, gzip' }).end(zlib.gzipSync(bomb)),
  '/stacked-padding': (_req, res) =>
    // The outer gzip squeezes 20 MiB of empty members into a few KiB: only the cap between the stages sees them.
    res.writeHead(200, { ...HTML, 'content-encoding': 'gzip, gzip' }).end(zlib.gzipSync(emptyMembers(BIG))),
  '/padding': (_req, res) => res.writeHead(200, { ...HTML, 'content-encoding': 'gzip' }).end(emptyMembers(2 * LIMIT)),
  '/four-codings': (_req, res) =>
    res.writeHead(200, { ...HTML, 'content-encoding': 'gzip, gzip, gzip, gzip' }).end(encode(OK_BODY, ['gzip', 'gzip', 'gzip', 'gzip'])),
  '/limit-plus-one': (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(Buffer.alloc(LIMIT + 1, 'a')),
  '/declared-limit-plus-one': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': String(LIMIT + 1) });
    stream(res, LIMIT + 1);
  },
  '/exactly-limit': (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(Buffer.alloc(LIMIT, 'a')),
  '/chunked-big': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }); // no content-length: chunked
    stream(res, BIG);
  },
  '/declared-big': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': String(BIG) });
    stream(res, BIG);
  },
  '/big.pdf': (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': String(BIG) });
    stream(res, BIG);
  },
  '/small.png': (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(randomBytes(1024)),
  '/r301': redirect(301, '/r302'),
  '/r302': redirect(302, '/ok'),
  '/relative': redirect(303, 'ok?from=relative#frag'),
  '/no-location': redirect(302, null),
  '/mailto': redirect(302, 'mailto:someone@example.com'),
  '/to-literal': (req, res) => redirect(302, `http://127.0.0.1:${req.socket.localPort}/ok`)(req, res),
  '/to-numeric': (req, res) => redirect(302, `http://2130706433:${req.socket.localPort}/ok`)(req, res),
  '/to-mapped': (req, res) => redirect(302, `http://[::ffff:127.0.0.1]:${req.socket.localPort}/ok`)(req, res),
  '/to-name': (req, res) => redirect(302, `http://private.test:${req.socket.localPort}/ok`)(req, res),
  '/dir/sub/up': redirect(302, '../../ok'),
  '/protocol-relative': (req, res) => redirect(301, `//127.0.0.1:${req.socket.localPort}/ok`)(req, res),
  '/loop-a': redirect(302, '/loop-b'),
  '/loop-b': redirect(307, '/loop-a'),
  '/404': (_req, res) => res.writeHead(404, HTML).end('<p>not found</p>'),
  '/500': (_req, res) => res.writeHead(500, HTML).end('<p>oops</p>'),
  '/503-seconds': (_req, res) => res.writeHead(503, { 'retry-after': '120' }).end(),
  '/503-huge': (_req, res) => res.writeHead(503, { 'retry-after': '99999' }).end(),
  '/429-date': (_req, res) =>
    res.writeHead(429, { 'retry-after': new Date(Date.now() + 30_000).toUTCString() }).end(),
  '/stall-headers': () => {
    /* never answers */
  },
  '/stall-body': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': '1000' });
    res.write('<p>half');
  },
  '/reset': (req) => req.socket.resetAndDestroy(),
  '/999': (_req, res) => res.writeHead(999, 'Request denied', HTML).end('<p>go away</p>'),
  '/informational': (_req, res) => {
    res.writeProcessing(); // 102
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' }, () => res.writeHead(200, HTML).end(OK_BODY)); // 103
  },
  '/100-continue': (_req, res) => {
    res.writeContinue(); // unasked: the request had no Expect: 100-continue
    res.writeHead(200, HTML).end(OK_BODY);
  },
  '/trickle-body': (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    const timer = setInterval(() => res.write('a'), 50); // well under the 300 ms idle bodyTimeout
    res.on('close', () => clearInterval(timer));
  },
  '/echo-headers': (req, res) => res.writeHead(200, HTML).end(JSON.stringify(req.headers)),
};

function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const hop = /^\/(hop|slow-hop)\/(\d+)$/.exec(path);
  if (hop) {
    const n = Number(hop[2]);
    const answer = () => (n === 0 ? routes['/ok'](req, res) : redirect(302, `/${hop[1]}/${n - 1}`)(req, res));
    return hop[1] === 'slow-hop' ? void setTimeout(answer, SLOW_HOP_MS) : answer();
  }
  (routes[path] ?? routes['/404'])(req, res);
}

async function startServer(): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = http.createServer();
  const state: Server = {
    origin: '',
    port: 0,
    url: (path) => `${state.origin}${path}`,
    paths: [],
    cutOff: new Set(),
    connections: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('connection', (socket: Socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    state.paths.push(path);
    res.on('close', () => {
      if (!res.writableFinished) state.cutOff.add(path);
    });
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  state.origin = `http://127.0.0.1:${state.port}`;
  return state;
}

/**
 * Responses node:http will not send: broken status lines, resets at exact
 * points, bodies delimited by closing the connection. Keyed by request path.
 */
const rawRoutes: Record<string, (socket: Socket) => void> = {
  '/status-abc': (socket) => socket.end('HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n'),
  '/status-1000': (socket) => socket.end('HTTP/1.1 1000 Too Many Digits\r\nContent-Length: 0\r\n\r\n'),
  '/not-http': (socket) => socket.end('<html>an HTTP/0.9-style answer: no status line at all</html>'),
  '/unasked-upgrade': (socket) => socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'),
  '/reset-mid-headers': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n');
    setTimeout(() => socket.resetAndDestroy(), 20);
  },
  '/reset-mid-body': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n<p>first bytes');
    setTimeout(() => socket.resetAndDestroy(), 20);
  },
  '/closed-mid-body': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n<p>first bytes');
    setTimeout(() => socket.end(), 20);
  },
  '/close-delimited-big': (socket) => {
    // RFC 9112 §6.3 rule 8: no Content-Length, not chunked: the body runs until the server closes.
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n');
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const pump = (): void => {
      while (!socket.destroyed && socket.write(chunk));
      if (!socket.destroyed) socket.once('drain', pump);
    };
    pump();
  },
};

interface RawServer {
  url(path: string): string;
  close(): Promise<void>;
}

async function startRawServer(): Promise<RawServer> {
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined); // the client hanging up is what several routes are about
    let head = '';
    socket.on('data', (data) => {
      head += data.toString('latin1');
      const path = /^GET (\S+) HTTP/.exec(head)?.[1];
      if (path !== undefined && head.includes('\r\n\r\n')) rawRoutes[path](socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}


// ---------------------------------------------------------------------------
// Helpers

const AGENT: HttpAgentOptions = {
  connectTimeoutMs: 2000,
  headersTimeoutMs: 300,
  bodyTimeoutMs: 300,
  allowPrivate: true, // the test server is on 127.0.0.1
};

let site: Server;
let raw: RawServer;
let dispatcher: Dispatcher;
const extraAgents: Dispatcher[] = [];

before(async () => {
  [site, raw] = await Promise.all([startServer(), startRawServer()]);
  dispatcher = createHttpAgent(AGENT);
});

after(async () => {
  await Promise.all([dispatcher.close(), ...extraAgents.map((a) => a.destroy()), closeAgents()]);
  await Promise.all([site.close(), raw.close()]);
});

function agent(opts: Partial<HttpAgentOptions>, lookup?: LookupFunction): Dispatcher {
  const created = createHttpAgent({ ...AGENT, ...opts }, { lookup });
  extraAgents.push(created);
  return created;
}

function options(overrides: Partial<FetchOptions> = {}): FetchOptions {
  return {
    dispatcher,
    userAgent: 'tcrawl-test/1.0',
    maxBodyBytes: LIMIT,
    maxRedirects: 5,
    retryMaxMs: 300_000,
    allowPrivate: true,
    fetchTimeoutMs: 10_000,
    ...overrides,
  };
}

const fetchPath = (path: string, overrides?: Partial<FetchOptions>) => fetchPage(site.url(path), options(overrides));

function assertHtml(outcome: FetchOutcome): asserts outcome is Extract<FetchOutcome, { kind: 'body' }> {
  assert.equal(outcome.kind, 'body', JSON.stringify(outcome));
}

function assertFailed(
  outcome: FetchOutcome,
  expected: Partial<Extract<FetchOutcome, { kind: 'failed' }>>,
): asserts outcome is Extract<FetchOutcome, { kind: 'failed' }> {
  assert.equal(outcome.kind, 'failed', JSON.stringify(outcome));
  for (const [key, value] of Object.entries(expected)) {
    assert.deepEqual(outcome[key as keyof typeof outcome], value, `${key} of ${JSON.stringify(outcome)}`);
  }
}

/** Waits for the server to notice a client went away (a tick or two after we return). */
async function eventually(check: () => boolean, ms = 1000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) assert.fail('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const fakeLookup =
  (table: Record<string, string[]>): LookupFunction =>
  (hostname, opts, callback) => {
    const addresses = table[hostname];
    if (addresses === undefined) {
      return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '');
    }
    const list = addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    if (opts.all) callback(null, list);
    else callback(null, list[0].address, list[0].family);
  };

// ---------------------------------------------------------------------------

describe('fetchPage: HTML and decoding', () => {
  test('200 text/html comes back with the request headers tcrawl promises', async () => {
    const outcome = await fetchPath('/echo-headers');
    assertHtml(outcome);
    const headers = JSON.parse(outcome.body) as Record<string, string>;
    assert.equal(headers['user-agent'], 'tcrawl-test/1.0');
    assert.equal(headers.accept, 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.5');
    assert.equal(headers['accept-encoding'], 'gzip, deflate, br');
    assert.deepEqual(outcome.redirects, []);
    assert.equal(outcome.finalUrl, site.url('/echo-headers'));
  });

  test('the Content-Type charset decodes ISO-8859-1', async () => {
    const outcome = await fetchPath('/latin1');
    assertHtml(outcome);
    assert.equal(outcome.body, '<p>café’s</p>');
    assert.equal(outcome.contentType, 'text/html; charset=ISO-8859-1');
  });

  test('a <meta charset> in the first 1024 bytes applies when the header has none', async () => {
    const outcome = await fetchPath('/meta-charset');
    assertHtml(outcome);
    assert.match(outcome.body, /café €/);
  });

  test('a byte order mark beats the header charset', async () => {
    const outcome = await fetchPath('/bom');
    assertHtml(outcome);
    assert.equal(outcome.body, '<p>café</p>');
  });

  test('an unknown charset label falls back to UTF-8', async () => {
    const outcome = await fetchPath('/bogus-charset');
    assertHtml(outcome);
    assert.equal(outcome.body, '<p>café</p>');
  });

  test('gzip and brotli bodies are decompressed', async () => {
    for (const path of ['/gzip', '/br']) {
      const outcome = await fetchPath(path);
      assertHtml(outcome);
      assert.equal(outcome.body, OK_BODY, path);
    }
  });

  test('the Content-Type charset decodes Shift_JIS', async () => {
    const outcome = await fetchPath('/shift-jis');
    assertHtml(outcome);
    assert.equal(outcome.body, '<p>日本語のページ</p>');
  });

  test('a <meta charset> that contradicts the header loses to it, as in browsers', async () => {
    const outcome = await fetchPath('/meta-lies');
    assertHtml(outcome);
    assert.match(outcome.body, /<p>Привет<\/p>/);
  });

  test('malformed HTML comes back as it is and still parses', async () => {
    const outcome = await fetchPath('/malformed');
    assertHtml(outcome);
    const page = extractPage(outcome.body, outcome.finalUrl);
    assert.equal(page.title, 'Still a page');
    assert.deepEqual(page.links, [site.url('/ok')]);
  });

  test('binary garbage labelled text/html decodes to replacement characters, not a crash', async () => {
    const outcome = await fetchPath('/garbage');
    assertHtml(outcome);
    assert.ok(outcome.body.length > 0);
  });

  test('stacked codings are undone in reverse order, also when sent as two header lines (RFC 9110 §8.4, §5.3)', async () => {
    for (const path of ['/stacked', '/two-encoding-lines']) {
      const outcome = await fetchPath(path);
      assertHtml(outcome);
      assert.equal(outcome.body, OK_BODY, path);
    }
  });

  test('more than three stacked codings fail `decode` without decoding any', async () => {
    const outcome = await fetchPath('/four-codings');
    assertFailed(outcome, { reason: 'decode', transient: false, status: 200 });
    assert.match(outcome.message, /stacks 4 content codings \(gzip, gzip, gzip, gzip\); tcrawl decodes at most 3/);
  });

  test('corrupt gzip and an unsupported coding fail `decode`, permanently', async () => {
    assertFailed(await fetchPath('/corrupt-gzip'), { reason: 'decode', transient: false, status: 200 });
    assertFailed(await fetchPath('/zstd'), { reason: 'decode', transient: false, status: 200 });
  });
});

describe('fetchPage: size limits', () => {
  test('a body of exactly maxBodyBytes is accepted', async () => {
    const outcome = await fetchPath('/exactly-limit');
    assertHtml(outcome);
    assert.equal(outcome.body.length, LIMIT);
  });

  test('gzip, deflate and brotli bombs stop at maxBodyBytes of decoded output', async () => {
    for (const path of ['/bomb', '/deflate-bomb', '/br-bomb']) {
      const started = Date.now();
      assertFailed(await fetchPath(path), { reason: 'too_large', transient: false, status: 200 });
      assert.ok(Date.now() - started < 2000, `${path} should stop early, not inflate 32 MiB`);
    }
  });

  test('a bomb inside a stacked coding stops at maxBodyBytes', async () => {
    assertFailed(await fetchPath('/stacked-bomb'), { reason: 'too_large', transient: false, status: 200 });
  });

  test('every decoding stage is capped, not only the last: padding between two gzip layers fails `too_large`', async () => {
    // Decodes to nothing in the end; 20 MiB flow between the stages.
    assertFailed(await fetchPath('/stacked-padding'), { reason: 'too_large', transient: false, status: 200 });
  });

  test('the received bytes are capped too: gzip padding that decodes to nothing fails `too_large`', async () => {
    assertFailed(await fetchPath('/padding'), { reason: 'too_large', transient: false, status: 200 });
  });

  test('one byte over the limit fails, with Content-Length (before reading) and without (chunked)', async () => {
    assertFailed(await fetchPath('/limit-plus-one'), { reason: 'too_large', transient: false, status: 200 });
    assertFailed(await fetchPath('/declared-limit-plus-one'), { reason: 'too_large', transient: false, status: 200 });
  });

  test('a chunked body over the limit is abandoned mid-download', async () => {
    assertFailed(await fetchPath('/chunked-big'), { reason: 'too_large', transient: false });
    await eventually(() => site.cutOff.has('/chunked-big'));
  });

  test('a Content-Length over the limit is refused before reading', async () => {
    assertFailed(await fetchPath('/declared-big'), { reason: 'too_large', transient: false });
    await eventually(() => site.cutOff.has('/declared-big'));
  });

  test('a body delimited by closing the connection (no Content-Length, not chunked) is capped too', async () => {
    assertFailed(await fetchPage(raw.url('/close-delimited-big'), options()), { reason: 'too_large', transient: false, status: 200 });
  });
});

describe('fetchPage: unwrapGzip (gzip files such as sitemap.xml.gz)', () => {
  test('off, a .gz file comes back as the compressed bytes it is', async () => {
    const outcome = await fetchPath('/sitemap.xml.gz', { acceptsType: () => true });
    assertHtml(outcome);
    assert.notEqual(outcome.body, SITEMAP_XML);
  });

  test('on, a gzip file without Content-Encoding is decompressed', async () => {
    const outcome = await fetchPath('/sitemap.xml.gz', { acceptsType: () => true, unwrapGzip: true });
    assertHtml(outcome);
    assert.equal(outcome.body, SITEMAP_XML);
    assert.equal(outcome.contentType, 'application/x-gzip');
  });

  test('on, a gzip file also sent with Content-Encoding: gzip is decoded twice', async () => {
    const outcome = await fetchPath('/double.xml.gz', { acceptsType: () => true, unwrapGzip: true });
    assertHtml(outcome);
    assert.equal(outcome.body, SITEMAP_XML);
  });

  test('on, a body that is not gzip is left alone', async () => {
    const outcome = await fetchPath('/ok', { unwrapGzip: true });
    assertHtml(outcome);
    assert.equal(outcome.body, OK_BODY);
  });

  test('a gzip-file bomb stops at maxBodyBytes of decoded output', async () => {
    const started = Date.now();
    assertFailed(await fetchPath('/bomb.xml.gz', { acceptsType: () => true, unwrapGzip: true }), { reason: 'too_large', transient: false, status: 200 });
    assert.ok(Date.now() - started < 2000, 'should stop early, not inflate 32 MiB');
  });

  test('a corrupt gzip file fails `decode`, permanently', async () => {
    assertFailed(await fetchPath('/corrupt.xml.gz', { acceptsType: () => true, unwrapGzip: true }), { reason: 'decode', transient: false, status: 200 });
  });
});

describe('fetchPage: non-HTML', () => {
  test('a large PDF is skipped without being downloaded', async () => {
    const started = Date.now();
    const outcome = await fetchPath('/big.pdf');
    assert.deepEqual(outcome, {
      kind: 'skipped',
      reason: 'unsupported_type',
      finalUrl: site.url('/big.pdf'),
      status: 200,
      contentType: 'application/pdf',
      redirects: [],
    });
    assert.ok(Date.now() - started < 1000);
    await eventually(() => site.cutOff.has('/big.pdf'));
  });

  test('bodies we do not use are drained so one connection serves every request', async () => {
    const pooled = agent({});
    const before = site.connections;
    for (const path of ['/ok', '/small.png', '/404', '/503-seconds', '/r301', '/ok']) {
      await fetchPath(path, { dispatcher: pooled });
      // undici frees a socket one event-loop turn after its response ends; a
      // request sent sooner gets a new connection (the redirect hops above wait).
      await new Promise(setImmediate);
    }
    assert.equal(site.connections - before, 1);
  });
});

describe('fetchPage: redirects', () => {
  test('301 → 302 → 200 is followed, every hop recorded', async () => {
    const outcome = await fetchPath('/r301');
    assertHtml(outcome);
    assert.equal(outcome.finalUrl, site.url('/ok'));
    assert.deepEqual(outcome.redirects, [site.url('/r302'), site.url('/ok')]);
  });

  test('a relative Location is resolved against the current URL and canonicalized', async () => {
    const outcome = await fetchPath('/relative');
    assertHtml(outcome);
    assert.equal(outcome.finalUrl, site.url('/ok?from=relative'));
  });

  test('dot segments and a protocol-relative Location resolve too', async () => {
    for (const path of ['/dir/sub/up', '/protocol-relative']) {
      const outcome = await fetchPath(path);
      assertHtml(outcome);
      assert.equal(outcome.finalUrl, site.url('/ok'), path);
    }
  });

  test('a redirect loop fails `redirect_limit`', async () => {
    assertFailed(await fetchPath('/loop-a'), {
      reason: 'redirect_limit',
      transient: false,
      status: 307,
      finalUrl: site.url('/loop-b'),
      location: site.url('/loop-a'),
      redirects: [site.url('/loop-b')],
    });
  });

  test('6 hops with maxRedirects 5 fail `redirect_limit`; with 6 they succeed', async () => {
    const failed = await fetchPath('/hop/6', { maxRedirects: 5 });
    assertFailed(failed, { reason: 'redirect_limit', transient: false, finalUrl: site.url('/hop/1') });
    assert.equal(failed.redirects.length, 5);
    const ok = await fetchPath('/hop/6', { maxRedirects: 6 });
    assertHtml(ok);
    assert.equal(ok.redirects.length, 6);
  });

  test('maxRedirects 0 follows nothing', async () => {
    assertFailed(await fetchPath('/r301', { maxRedirects: 0 }), { reason: 'redirect_limit', status: 301 });
  });

  test('checkHop sees every target and can refuse one before it is requested', async () => {
    const asked: string[] = [];
    const requestedBefore = site.paths.filter((p) => p === '/ok').length;
    const outcome = await fetchPath('/r301', {
      checkHop: async (url) => {
        asked.push(url);
        return url.endsWith('/ok') ? 'robots_disallowed' : null;
      },
    });
    assertFailed(outcome, {
      reason: 'redirect_refused',
      detail: 'robots_disallowed',
      transient: false,
      location: site.url('/ok'),
      finalUrl: site.url('/r302'),
    });
    assert.deepEqual(asked, [site.url('/r302'), site.url('/ok')]);
    assert.equal(site.paths.filter((p) => p === '/ok').length, requestedBefore);
  });

  test('a redirect without a usable Location fails `bad_redirect`', async () => {
    assertFailed(await fetchPath('/no-location'), { reason: 'bad_redirect', transient: false, status: 302 });
    assertFailed(await fetchPath('/mailto'), { reason: 'bad_redirect', transient: false, status: 302 });
  });
});

describe('fetchPage: HTTP errors', () => {
  test('404 is permanent, 500 transient', async () => {
    assertFailed(await fetchPath('/404'), { reason: 'http_404', transient: false, status: 404 });
    assertFailed(await fetchPath('/500'), { reason: 'http_500', transient: true, status: 500 });
  });

  test('999, outside every status class (RFC 9110 §15), is a permanent `http_999`', async () => {
    assertFailed(await fetchPath('/999'), { reason: 'http_999', transient: false, status: 999, message: 'HTTP 999 Request denied' });
  });

  test('102 and 103 informational responses before the final one are skipped over', async () => {
    const outcome = await fetchPath('/informational');
    assertHtml(outcome);
    assert.equal(outcome.body, OK_BODY);
  });

  test('regression: an unasked 100 Continue, which undici cannot read past, is `protocol`, not a retried `connect`', async () => {
    assertFailed(await fetchPath('/100-continue'), { reason: 'protocol', transient: false });
  });

  test('503 with Retry-After in seconds', async () => {
    assertFailed(await fetchPath('/503-seconds'), { reason: 'http_503', transient: true, retryAfterMs: 120_000 });
  });

  test('Retry-After is capped at retryMaxMs', async () => {
    assertFailed(await fetchPath('/503-huge', { retryMaxMs: 60_000 }), { reason: 'http_503', retryAfterMs: 60_000 });
  });

  test('429 with Retry-After as an HTTP-date, relative to now', async () => {
    const outcome = await fetchPath('/429-date');
    assertFailed(outcome, { reason: 'http_429', transient: true });
    // The date has one-second resolution.
    assert.ok(outcome.retryAfterMs! > 28_000 && outcome.retryAfterMs! <= 30_000, String(outcome.retryAfterMs));
  });

  test('parseRetryAfter (RFC 9110 §10.2.3)', () => {
    const now = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:50:37 GMT', now), 60_000);
    assert.equal(parseRetryAfter('Sunday, 06-Nov-94 08:50:37 GMT', now), 60_000); // obsolete RFC 850 form
    assert.equal(parseRetryAfter('Sun, 06 Nov 1994 08:00:00 GMT', now), 0); // in the past: now
    assert.equal(parseRetryAfter('1.5', now), undefined);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe('fetchPage: invalid responses', () => {
  test('regression: an invalid status line fails `protocol` (undici gives its parse errors no code, so they were thrown as bugs)', async () => {
    for (const path of ['/status-abc', '/status-1000', '/not-http']) {
      const outcome = await fetchPage(raw.url(path), options());
      assertFailed(outcome, { reason: 'protocol', transient: false });
      assert.match(outcome.message, /does not match the HTTP\/1\.1 protocol/, path);
    }
  });

  test('a protocol switch nobody asked for fails `protocol`', async () => {
    assertFailed(await fetchPage(raw.url('/unasked-upgrade'), options()), { reason: 'protocol', transient: false });
  });
});

describe('fetchPage: network failures', () => {
  test('stalled headers fail `timeout`, transient', async () => {
    assertFailed(await fetchPath('/stall-headers'), { reason: 'timeout', transient: true });
  });

  test('a stalled body fails `timeout`, transient', async () => {
    assertFailed(await fetchPath('/stall-body'), { reason: 'timeout', transient: true, status: 200 });
  });

  test('a connection reset fails `connect`, transient', async () => {
    assertFailed(await fetchPath('/reset'), { reason: 'connect', transient: true });
  });

  test('a reset in the middle of the headers or of the body fails `connect`, transient', async () => {
    assertFailed(await fetchPage(raw.url('/reset-mid-headers'), options()), { reason: 'connect', transient: true });
    assertFailed(await fetchPage(raw.url('/reset-mid-body'), options()), { reason: 'connect', transient: true, status: 200 });
  });

  test('a connection closed before Content-Length bytes came fails `connect`, transient', async () => {
    assertFailed(await fetchPage(raw.url('/closed-mid-body'), options()), { reason: 'connect', transient: true, status: 200 });
  });

  test('a self-signed certificate fails `tls`, permanently; so does https to a plain HTTP port', async () => {
    const server = https.createServer(selfSignedCertificate(), (_req, res) => res.writeHead(200, HTML).end(OK_BODY));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const selfSigned = await fetchPage(`https://127.0.0.1:${port}/`, options());
      assertFailed(selfSigned, { reason: 'tls', transient: false });
      assert.match(selfSigned.message, /self[- ]signed/i);
      assertFailed(await fetchPage(`https://127.0.0.1:${site.port}/ok`, options()), { reason: 'tls', transient: false });
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a refused connection fails `connect`, transient', async () => {
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise((resolve) => closed.close(resolve));
    assertFailed(await fetchPage(`http://127.0.0.1:${port}/`, options()), { reason: 'connect', transient: true });
  });

  test('an unresolvable host (.invalid, RFC 6761) fails `dns`, permanently', async () => {
    const outcome = await fetchPage('http://no-such-host.invalid/', options({ dispatcher: agent({ allowPrivate: false }) }));
    assertFailed(outcome, { reason: 'dns', transient: false });
  });

  test('an aborted fetch throws instead of returning an outcome', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('cancelled')), 50);
    await assert.rejects(fetchPath('/stall-headers', { signal: controller.signal, dispatcher: agent({ headersTimeoutMs: 5000 }) }), /cancelled/);
  });
});

describe('fetchPage: fetchTimeoutMs, the total deadline', () => {
  // Idle timeouts far above the deadline, so only fetchTimeoutMs can end these fetches.
  const patient = () => agent({ headersTimeoutMs: 10_000, bodyTimeoutMs: 10_000 });

  test('a body trickling in under the idle bodyTimeout fails `timeout` at fetchTimeoutMs, and is cut off', async () => {
    const started = Date.now();
    const outcome = await fetchPath('/trickle-body', { dispatcher: agent({}), fetchTimeoutMs: 600 }); // bodyTimeoutMs 300
    const tookMs = Date.now() - started;
    assertFailed(outcome, { reason: 'timeout', transient: true, status: 200 });
    assert.match(outcome.message, /longer than 600 ms in total \(fetchTimeoutMs\)/);
    assert.ok(tookMs >= 550 && tookMs < 2000, `took ${tookMs} ms`);
    await eventually(() => site.cutOff.has('/trickle-body'));
  });

  test('the deadline spans redirect hops: a chain of slow hops fails `timeout` on the hop in flight', async () => {
    // 150 ms a hop, 400 ms in all: each hop fits, the chain does not (the third hop runs out, or a later one on a busy machine).
    const outcome = await fetchPath('/slow-hop/5', { dispatcher: patient(), fetchTimeoutMs: 400 });
    assertFailed(outcome, { reason: 'timeout', transient: true });
    assert.ok(outcome.redirects.length >= 1 && outcome.redirects.length <= 3, JSON.stringify(outcome.redirects));
    assert.equal(outcome.finalUrl, outcome.redirects.at(-1));
  });

  test('time waiting in beforeRequest (the pacer) does not count against it', async () => {
    const pace = () => new Promise<void>((resolve) => setTimeout(resolve, 500));
    const outcome = await fetchPath('/slow-hop/2', { dispatcher: patient(), fetchTimeoutMs: 1000, beforeRequest: pace });
    assertHtml(outcome); // 1.5 s paced, 450 ms fetching
  });

  test('cancelling a trickling fetch still throws instead of returning an outcome', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('cancelled')), 200);
    await assert.rejects(fetchPath('/trickle-body', { dispatcher: patient(), signal: controller.signal, fetchTimeoutMs: 5000 }), /cancelled/);
  });

  test('fetchOptionsFor passes the spec key on', () => {
    const { seeds: _seeds, ...settings } = parseCrawlSpec({ seeds: ['http://example.com/'], fetchTimeoutMs: 5000 });
    assert.equal(fetchOptionsFor(settings).fetchTimeoutMs, 5000);
  });
});

describe('private address guard', () => {
  // Its own server: these tests count connections, and no other suite's client may add one.
  let guardSite: Server;
  before(async () => {
    guardSite = await startServer();
  });
  after(() => guardSite.close());
  const guarded = () => agent({ allowPrivate: false });

  test('an IP-literal loopback URL fails `private_address` and never reaches the server', async () => {
    const before = guardSite.connections;
    for (const host of ['127.0.0.1', '[::1]']) {
      const outcome = await fetchPage(`http://${host}:${guardSite.port}/ok`, options({ dispatcher: guarded(), allowPrivate: false }));
      assertFailed(outcome, { reason: 'private_address', transient: false });
      assert.match(outcome.message, /loopback address.*--allow-private/);
    }
    assert.equal(guardSite.connections, before);
  });

  test('the agent alone refuses IP literals too (Node skips lookup for them)', async () => {
    const before = guardSite.connections;
    await assert.rejects(guarded().request({ origin: guardSite.origin, path: '/ok', method: 'GET' }), {
      code: 'TCRAWL_PRIVATE_ADDRESS',
    });
    assert.equal(guardSite.connections, before);
  });

  test('localhost is refused at connect time, by its resolved address', async () => {
    const before = guardSite.connections;
    const outcome = await fetchPage(`http://localhost:${guardSite.port}/ok`, options({ dispatcher: guarded(), allowPrivate: false }));
    assertFailed(outcome, { reason: 'private_address', transient: false });
    assert.match(outcome.message, /localhost resolves to (127\.0\.0\.1|::1), a loopback address/);
    assert.equal(guardSite.connections, before);
  });

  test('a public-looking name resolving only to private addresses is refused at connect', async () => {
    const before = guardSite.connections;
    const lookup = fakeLookup({ 'rebind.test': ['10.1.2.3', '127.0.0.1'] });
    const outcome = await fetchPage(
      `http://rebind.test:${guardSite.port}/ok`,
      options({ dispatcher: agent({ allowPrivate: false }, lookup), allowPrivate: false }),
    );
    assertFailed(outcome, { reason: 'private_address' });
    assert.match(outcome.message, /rebind\.test resolves to 10\.1\.2\.3, a private address/);
    assert.equal(guardSite.connections, before);
  });

  test('DNS rebinding between a check and the connect: public when asked first, private at connect, refused at connect', async () => {
    let lookups = 0;
    const rebinding: LookupFunction = (hostname, opts, callback) =>
      fakeLookup({ [hostname]: [lookups++ === 0 ? '93.184.215.14' : '127.0.0.1'] })(hostname, opts, callback);
    await assertPublicHost('rebind.test', { lookup: rebinding }); // the check passes...
    const before = guardSite.connections;
    const outcome = await fetchPage(
      `http://rebind.test:${guardSite.port}/ok`,
      options({ dispatcher: agent({ allowPrivate: false }, rebinding), allowPrivate: false }),
    );
    assertFailed(outcome, { reason: 'private_address', transient: false }); // ...the connect does not
    assert.match(outcome.message, /rebind\.test resolves to 127\.0\.0\.1, a loopback address/);
    assert.equal(lookups, 2);
    assert.equal(guardSite.connections, before);
  });

  test('IPv4-mapped IPv6 loopback is refused, as a literal in both spellings and as a resolved address', async () => {
    const before = guardSite.connections;
    for (const host of ['[::ffff:127.0.0.1]', '[::ffff:7f00:1]']) {
      const outcome = await fetchPage(`http://${host}:${guardSite.port}/ok`, options({ dispatcher: guarded(), allowPrivate: false }));
      assertFailed(outcome, { reason: 'private_address', transient: false });
      assert.match(outcome.message, /::ffff:7f00:1 is a loopback address/);
    }
    const lookup = fakeLookup({ 'mapped.test': ['::ffff:127.0.0.1'] });
    const resolved = await fetchPage(`http://mapped.test:${guardSite.port}/ok`, options({ dispatcher: agent({ allowPrivate: false }, lookup), allowPrivate: false }));
    assertFailed(resolved, { reason: 'private_address', transient: false });
    assert.equal(guardSite.connections, before);
  });

  test('decimal, octal and hex IPv4 literals are refused: the WHATWG URL parser makes them 127.0.0.1 first', async () => {
    const before = guardSite.connections;
    for (const host of ['2130706433', '0177.0.0.1', '0x7f.1', '0x7f000001', '127.1', '0']) {
      const url = `http://${host}:${guardSite.port}/ok`;
      assert.match(new URL(url).hostname, /^(127\.0\.0\.1|0\.0\.0\.0)$/, host); // URL Standard §3.5, IPv4 parser
      const outcome = await fetchPage(url, options({ dispatcher: guarded(), allowPrivate: false }));
      assertFailed(outcome, { reason: 'private_address', transient: false });
      // The agent alone too: undici parses the origin the same way.
      await assert.rejects(guarded().request({ origin: `http://${host}:${guardSite.port}`, path: '/ok', method: 'GET' }), { code: 'TCRAWL_PRIVATE_ADDRESS' });
    }
    assert.equal(guardSite.connections, before);
  });

  test('with allowPrivate the same injected lookup connects (so the refusal above is the guard)', async () => {
    const lookup = fakeLookup({ 'rebind.test': ['127.0.0.1'] });
    const outcome = await fetchPage(`http://rebind.test:${guardSite.port}/ok`, options({ dispatcher: agent({ allowPrivate: true }, lookup) }));
    assertHtml(outcome);
  });

  test('a redirect to a private IP literal is refused before it is requested', async () => {
    // localhost (a name) through a permissive agent, then a hop to 127.0.0.1
    // (a literal) that fetchPage itself must refuse.
    const served = guardSite.paths.length;
    const outcome = await fetchPage(`http://localhost:${guardSite.port}/to-literal`, options({ allowPrivate: false }));
    assertFailed(outcome, { reason: 'private_address', finalUrl: guardSite.url('/ok'), redirects: [guardSite.url('/ok')] });
    assert.deepEqual(guardSite.paths.slice(served), ['/to-literal']);
  });

  test('redirects to a numeric IPv4 or an IPv4-mapped IPv6 literal are refused before they are requested', async () => {
    for (const path of ['/to-numeric', '/to-mapped']) {
      const served = guardSite.paths.length;
      const outcome = await fetchPage(`http://localhost:${guardSite.port}${path}`, options({ allowPrivate: false }));
      assertFailed(outcome, { reason: 'private_address', transient: false });
      assert.deepEqual(guardSite.paths.slice(served), [path]);
    }
  });

  test('a redirect to a name resolving to a private address is refused at connect', async () => {
    // The first hop stands in for a public site (this permissive agent), the
    // second goes through the guarded one, as every hop of a real crawl does.
    const permissive = agent({ allowPrivate: true });
    const guardedByName = agent({ allowPrivate: false }, fakeLookup({ 'private.test': ['192.168.7.7'] }));
    const routing = {
      request: (opts: Dispatcher.RequestOptions) => (opts.origin?.toString().includes('private.test') ? guardedByName : permissive).request(opts),
    } as unknown as Dispatcher;
    const outcome = await fetchPage(`http://localhost:${guardSite.port}/to-name`, options({ dispatcher: routing, allowPrivate: false }));
    assertFailed(outcome, {
      reason: 'private_address',
      transient: false,
      finalUrl: `http://private.test:${guardSite.port}/ok`,
      redirects: [`http://private.test:${guardSite.port}/ok`],
    });
    assert.match(outcome.message, /private\.test resolves to 192\.168\.7\.7, a private address/);
  });

  test('guardLookup keeps only public addresses, in both call forms', async () => {
    const lookup = guardLookup(fakeLookup({ mixed: ['127.0.0.1', '93.184.215.14', 'fe80::1', '2606:2800:21f:cb07::1'] }));
    const all = await new Promise((resolve, reject) =>
      lookup('mixed', { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
    );
    assert.deepEqual(all, [
      { address: '93.184.215.14', family: 4 },
      { address: '2606:2800:21f:cb07::1', family: 6 },
    ]);
    const one = await new Promise((resolve, reject) =>
      lookup('mixed', {}, (err, address, family) => (err ? reject(err) : resolve([address, family]))),
    );
    assert.deepEqual(one, ['93.184.215.14', 4]);
  });

  test('guardLookup refuses a name with only private addresses and passes DNS errors through', async () => {
    const lookup = guardLookup(fakeLookup({ meta: ['169.254.169.254'] }));
    const refused = await new Promise<unknown>((resolve) => lookup('meta', { all: true }, resolve));
    assert.ok(refused instanceof PrivateAddressError);
    assert.equal(refused.code, 'TCRAWL_PRIVATE_ADDRESS');
    assert.equal(refused.kind, 'link-local');
    const missing = await new Promise<unknown>((resolve) => lookup('nope', { all: true }, resolve));
    assert.equal((missing as { code?: string }).code, 'ENOTFOUND');
  });

  test('assertPublicHost refuses localhost and private literals, accepts public names', async () => {
    await assert.rejects(assertPublicHost('localhost'), (err: PrivateAddressError) => {
      assert.equal(err.code, 'TCRAWL_PRIVATE_ADDRESS');
      assert.match(err.message, /localhost resolves to .*loopback.*--allow-private/);
      return true;
    });
    await assert.rejects(assertPublicHost('127.0.0.1'), { code: 'TCRAWL_PRIVATE_ADDRESS' });
    await assert.rejects(assertPublicHost('[::1]'), { code: 'TCRAWL_PRIVATE_ADDRESS' });
    await assert.rejects(assertPublicHost('0.0.0.0'), /0\.0\.0\.0 is an unspecified address/);
    await assertPublicHost('93.184.215.14');
    await assertPublicHost('example.test', { lookup: fakeLookup({ 'example.test': ['93.184.215.14'] }) });
  });
});

describe('agentFor', () => {
  test('equal options share one Agent; other options get another; closeAgents starts over', async () => {
    const spec = { ...AGENT, maxPages: 10, userAgent: 'x' }; // a whole spec works: only agent fields count
    const a = agentFor(AGENT);
    assert.equal(agentFor(spec), a);
    assert.equal(agentFor({ ...AGENT, connectionsPerOrigin: 64 }), a);
    assert.notEqual(agentFor({ ...AGENT, headersTimeoutMs: 301 }), a);
    await closeAgents();
    assert.notEqual(agentFor(AGENT), a);
  });
});
