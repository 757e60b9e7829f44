/**
 * Outputs across a fleet: three worker processes crawl the mirror site, one
 * is SIGKILLed mid-crawl, and the mirror, the tar.gz and the rotated JSON
 * lines written afterwards from the database hold every page exactly once,
 * byte for byte what the site served — whichever worker fetched it, a batch
 * run twice included. Writing them again replaces them whole: nothing twice,
 * nothing stale.
 *
 * Why no kill "between writing a file and committing the rows": workers
 * write no files. A body goes to `bodies` in the transaction that saves its
 * page's rows, keyed by digest, so a batch run again adds nothing; the files
 * are written from the database by `tcrawl output`.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { startCrawl } from '../../src/client';
import { mirrorPath } from '../../src/results/mirror-path';
import { writeOutputs, type OutputReport } from '../../src/results/outputs';
import { parseCrawlSpec } from '../../src/spec';
import { startMirrorSite, type MirrorSite } from '../fixtures/mirror-site';
import { filesBelow, tarGzEntries } from '../helpers/output-files';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { kill, runTcrawl, spawnWorkers, stderrTail, waitFor, waitForPollers, workerEnv } from '../helpers/worker-processes';

const rotateBytes = 1500;

describe('outputs', () => {
  let stack: TestStack;
  let site: MirrorSite;
  let outDir: string;
  let crawlId: string;
  const expectedPath = (p: string) => mirrorPath(site.url(p), site.bodies.get(p)!.contentType);

  before(async () => {
    stack = await openStack();
    site = await startMirrorSite({ pages: 40, blobs: 8, latencyMs: 10 });
    outDir = await fs.mkdtemp(path.join(os.tmpdir(), 'tcrawl-outputs-'));
    crawlId = uniqueId('outputs');
    const taskQueue = uniqueId('tq');
    const workers = spawnWorkers(stack, taskQueue, 3, { concurrency: 2 });
    try {
      await waitForPollers(stack, taskQueue, workers);
      const spec = parseCrawlSpec({
        seeds: [site.url('/')],
        include: [`^${site.origin.replaceAll('.', '\\.')}/(docs|files|copies|list)`],
        rules: [{ glob: '**/files/*.bin', parse: 'binary' }],
        items: { selector: '.item', fields: { name: '.name', n: '.n' } },
        outputs: [
          { type: 'mirror', dir: 'mirror' },
          { type: 'tar', path: 'archive/site.tar.gz' },
          { type: 'jsonl', path: 'items.jsonl', rotateBytes },
          { type: 'item-files', dir: 'items', name: '{host}/{name}.json' },
        ],
        rate: 25,
        batchSize: 5,
        allowPrivate: true,
        maxPages: 500,
      });
      const result = (await startCrawl(stack.client, taskQueue, crawlId, spec)).result();
      // Mid-crawl: some pages saved, most still to come.
      await waitFor('30 pages saved', async () => (await stack.pool.query('SELECT 1 FROM pages WHERE crawl_id = $1', [crawlId])).rowCount! >= 30, 60_000);
      await kill(workers[0]);
      const summary = await result;
      assert.equal(summary.saved, site.bodies.size, `every page saved (workers: ${workers.map(stderrTail).join('\n')})`);
    } finally {
      await Promise.all(workers.map(kill));
    }
  });

  after(async () => {
    await site?.close();
    await stack?.close();
    if (outDir) await fs.rm(outDir, { recursive: true, force: true });
  });

  it('keeps each body once in the database, however many pages share it', async () => {
    const { rows } = await stack.pool.query<{ bodies: number; pages: number }>(
      `SELECT (SELECT count(*)::int FROM bodies WHERE crawl_id = $1) AS bodies, (SELECT count(*)::int FROM pages WHERE crawl_id = $1 AND body_sha256 IS NOT NULL) AS pages`,
      [crawlId],
    );
    assert.deepEqual(rows[0], { bodies: site.bodies.size - 1, pages: site.bodies.size }, '/copies/one and /copies/two share one body');
  });

  let reports: OutputReport[];

  it('writes a mirror: every page once at its path, byte for byte, identical bodies hard-linked', async () => {
    reports = await writeOutputs(stack.pool, crawlId, { cwd: outDir });
    const mirror = path.join(outDir, 'mirror');
    const files = await filesBelow(mirror);
    assert.deepEqual([...files.keys()].sort(), [...site.bodies.keys()].map(expectedPath).sort());
    for (const [p, { body }] of site.bodies) assert.ok(body.equals(files.get(expectedPath(p))!.body), `${p} as served`);
    assert.equal(files.get(expectedPath('/copies/one'))!.ino, files.get(expectedPath('/copies/two'))!.ino, 'one file, two names');
    assert.ok(files.has(path.join(new URL(site.origin).host, 'docs', 'page-3.html')) && files.has(path.join(new URL(site.origin).host, 'docs', 'page-3', 'notes.html')));
    assert.deepEqual({ written: reports[0].written, linked: reports[0].linked, conflicts: reports[0].conflicts }, { written: site.bodies.size, linked: 1, conflicts: 0 });
  });

  it('writes a tar.gz: one entry per page, files as served, the copy a hard link', async () => {
    const list = await tarGzEntries(path.join(outDir, 'archive', 'site.tar.gz'));
    const entries = new Map(list.map((entry) => [entry.name, entry]));
    assert.equal(entries.size, list.length, 'no name twice in the archive');
    assert.deepEqual([...entries.keys()].sort(), [...site.bodies.keys()].map(expectedPath).sort());
    const links = [...entries].filter(([, entry]) => entry.type === 'link');
    assert.equal(links.length, 1);
    const [[linkName, link]] = links;
    assert.ok([expectedPath('/copies/one'), expectedPath('/copies/two')].includes(linkName) && [expectedPath('/copies/one'), expectedPath('/copies/two')].includes(link.linkname!));
    for (const [p, { body }] of site.bodies) {
      const entry = entries.get(expectedPath(p))!;
      if (entry.type === 'file') assert.ok(body.equals(entry.body), `${p} as served`);
    }
  });

  it('writes JSON lines in parts of at most rotateBytes: every item once', async () => {
    const parts = reports[2].parts!;
    assert.ok(parts.length > 1, `${parts.length} parts`);
    const keys: string[] = [];
    for (const part of parts) {
      const text = await fs.readFile(part, 'utf8');
      assert.ok(Buffer.byteLength(text) <= rotateBytes, `${part}: ${Buffer.byteLength(text)} bytes`);
      for (const line of text.trimEnd().split('\n')) {
        const item = JSON.parse(line) as { url: string; position: number; data: { name: string } };
        keys.push(`${new URL(item.url).pathname} ${item.position} ${item.data.name}`);
      }
    }
    assert.equal(new Set(keys).size, keys.length, 'no item twice');
    assert.equal(keys.length, 2 * 40);
  });

  it('writes a file per item, named from its fields, holding its fields', async () => {
    const files = await filesBelow(path.join(outDir, 'items'));
    const host = new URL(site.origin).host;
    const expected = Array.from({ length: 40 }, (_, n) => [`${n}a`, `${n}b`]).flat().map((suffix) => path.join(host, `item ${suffix}.json`));
    assert.deepEqual([...files.keys()].sort(), expected.sort());
    const item = JSON.parse(files.get(path.join(host, 'item 7b.json'))!.body.toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(item, { name: 'item 7b', n: '15' });
    assert.equal(reports[3].conflicts, 0);
  });

  it('tcrawl output: the same outputs from the command line; an unknown crawl is bad input', async () => {
    const env = workerEnv(stack, 'unused');
    const run = await runTcrawl(['output', crawlId, '--json'], env, 120_000, outDir);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual((JSON.parse(run.stdout) as OutputReport[]).map((r) => [r.output.type, r.written]), reports.map((r) => [r.output.type, r.written]));
    assert.match(run.stderr, /Wrote mirror .*: \d+ files \(1 hard-linked to an identical body\)/);
    const unknown = await runTcrawl(['output', 'no-such-crawl'], env, 60_000, outDir);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.match(unknown.stderr, /No crawl with id "no-such-crawl".*TCRAWL_UNKNOWN_CRAWL/s);
  });

  it('writes the same again: each output replaced whole, a stale part removed', async () => {
    const parts = reports[2].parts!;
    const stale = parts[parts.length - 1].replace(/\.(\d+)\.jsonl$/, (_, n: string) => `.${String(Number(n) + 1).padStart(5, '0')}.jsonl`);
    await fs.writeFile(stale, '{"left":"by an earlier run over more items"}\n');
    await fs.writeFile(path.join(outDir, 'mirror', 'stray-file'), 'not from the crawl');
    const again = await writeOutputs(stack.pool, crawlId, { cwd: outDir });
    assert.deepEqual(again.map((r) => [r.written, r.bytes]), reports.map((r) => [r.written, r.bytes]));
    await assert.rejects(fs.stat(stale), { code: 'ENOENT' });
    await assert.rejects(fs.stat(path.join(outDir, 'mirror', 'stray-file')), { code: 'ENOENT' });
    const left = await fs.readdir(outDir, { recursive: true });
    assert.deepEqual(left.filter((name) => /\.(partial|old)$/.test(name)), [], 'no staging left');
  });
});
