/**
 * The mirror and ID-archive examples (examples/docs-mirror.yaml,
 * examples/id-archive.yaml) end to end on a fleet: three `tcrawl worker`
 * processes serve both crawls, one is SIGKILLed while both are under way,
 * and each `tcrawl crawl --spec … --wait` writes its output when its crawl
 * ends. The mirror holds every page the regex leads to, the archive every
 * report the catalogue names — each exactly once, byte for byte what the
 * imitation sites served — and nothing else.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { startMirrorSite, type MirrorSite } from '../fixtures/mirror-site';
import { startReportArchive, type ReportArchive } from '../fixtures/report-archive';
import { exampleSpecOnPort, readExampleSpec } from '../helpers/api-examples';
import { filesBelow, tarGzEntries } from '../helpers/output-files';
import { maxStartsInWindow } from '../helpers/rate-stats';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { kill, runTcrawl, spawnWorkers, stderrTail, waitFor, waitForPollers, workerEnv, type CliRun } from '../helpers/worker-processes';

describe('examples docs-mirror and id-archive: 3 workers, one SIGKILLed mid-crawl, each output complete and exactly once', () => {
  let stack: TestStack;
  let docs: MirrorSite;
  let archive: ReportArchive;
  let cwd: string;
  let runs: { mirror: CliRun; ids: CliRun };
  const mirrorId = uniqueId('docs-mirror');
  const idsId = uniqueId('id-archive');

  before(async () => {
    stack = await openStack();
    docs = await startMirrorSite({ pages: 60, blobs: 10, latencyMs: 10 });
    archive = await startReportArchive({ pages: 8, perPage: 20, latencyMs: 10 });
    cwd = await fs.mkdtemp(path.join(os.tmpdir(), 'tcrawl-example-outputs-'));
    const taskQueue = uniqueId('tq-outputs');
    const env = workerEnv(stack, taskQueue);
    const workers = spawnWorkers(stack, taskQueue, 3, { concurrency: 4 });
    try {
      await waitForPollers(stack, taskQueue, workers);
      const crawl = (spec: string, id: string) => runTcrawl(['crawl', '--spec', spec, '--id', id, '--wait', '--json'], env, 300_000, cwd);
      const running = Promise.all([crawl(exampleSpecOnPort('docs-mirror', Number(new URL(docs.origin).port)), mirrorId), crawl(exampleSpecOnPort('id-archive', archive.port), idsId)]);
      const finished = async (crawlId: string) =>
        (await stack.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM frontier WHERE crawl_id = $1 AND state <> 'queued'`, [crawlId])).rows[0]?.n ?? 0;
      await waitFor('both crawls under way', async () => (await finished(mirrorId)) >= 20 && (await finished(idsId)) >= 20, 120_000);
      await kill(workers[0]);
      const [mirror, ids] = await running;
      runs = { mirror, ids };
      for (const [name, run] of Object.entries(runs)) {
        assert.equal(run.code, 0, `${name}: tcrawl crawl exited ${run.code}:\n${run.stderr}\nworkers:\n${workers.slice(1).map(stderrTail).join('\n')}`);
      }
    } finally {
      await Promise.all(workers.map(kill));
    }
  });

  after(async () => {
    await docs?.close();
    await archive?.close();
    await stack?.close();
    if (cwd) await fs.rm(cwd, { recursive: true, force: true });
  });

  it('docs-mirror: every page the regex leads to, once, as served; /private/ left out', async (t) => {
    const dir = path.join(cwd, (readExampleSpec('docs-mirror').outputs as Array<{ dir: string }>)[0].dir);
    const files = await filesBelow(dir);
    const expected = docs.expectedMirror();
    assert.deepEqual([...files.keys()].sort(), [...expected.keys()].sort());
    for (const [name, body] of expected) assert.ok(body.equals(files.get(name)!.body), `${name} as served`);
    assert.ok(![...docs.requests.keys()].some((p) => p.startsWith('/private/')), 'nothing under /private/ requested');
    assert.match(runs.mirror.stderr, new RegExp(`Wrote mirror ${dir.replaceAll('.', '\\.')}: ${expected.size} files \\(1 hard-linked`));
    const requests = [...docs.requests.values()].reduce((a, b) => a + b, 0);
    t.diagnostic(`docs site: ${requests} requests for ${expected.size} pages (${requests - expected.size - 1} fetched again after the kill, robots.txt aside)`);
  });

  it('id-archive: every report the catalogue names, once, as served; no catalogue page, no decoy', async (t) => {
    const entries = await tarGzEntries(path.join(cwd, 'out/id-archive/reports.tar.gz'));
    const host = new URL(archive.origin).host;
    assert.deepEqual(entries.map((e) => e.name).sort(), [...archive.reports.keys()].map((id) => `${host}/download/${id}.pdf`).sort(), 'one entry per report');
    for (const entry of entries) {
      assert.equal(entry.type, 'file');
      assert.ok(archive.reports.get(/(\d+)\.pdf$/.exec(entry.name)![1])!.equals(entry.body), `${entry.name} as served`);
    }
    const downloads = [...archive.requests].filter(([p]) => p.startsWith('/download/'));
    assert.deepEqual(downloads.filter(([p]) => !archive.reports.has(/(\d+)\.pdf$/.exec(p)?.[1] ?? '')), [], 'no decoy id requested');
    const maxPerSecond = maxStartsInWindow(archive.starts, 1000 - 30);
    t.diagnostic(`report site: ${archive.starts.length} requests, ${downloads.length} distinct downloads of ${archive.reports.size} reports, at most ${maxPerSecond} in any 1 s (rate 20)`);
    assert.ok(maxPerSecond <= 20, `${maxPerSecond} requests in 1 s`);
  });
});
