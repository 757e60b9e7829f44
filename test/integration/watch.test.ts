/**
 * `tcrawl status <id> --watch` as a user runs it (bin/tcrawl.js), on crawls
 * of the fixture site slowed by their rate limit: plain lines when stdout is
 * not a terminal, an in-place frame on a pseudo-terminal (util-linux
 * `script`), and what it does when the worker or the Temporal server is away.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from '@temporalio/client';
import { startCrawl, workflowIdFor } from '../../src/client';
import { plaintextAccess, runtimeConfig } from '../../src/config';
import { connectClient, connectWorker } from '../../src/temporal-connection';
import { ensureTemporalServer, type TemporalServer } from '../../src/infra/temporal-server';
import { parseCrawlSpec, type CrawlSpecInput } from '../../src/spec';
import { createCrawlWorker } from '../../src/worker';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { localSiteDefaults, openStack, startWorker, uniqueId, type TestStack } from '../helpers/stack';
import { freePort, killAndWait, privateDir } from '../helpers/processes';
import { tcrawlBin, waitFor } from '../helpers/worker-processes';

interface Watch {
  proc: ChildProcess;
  /** stdout (and, for a terminal, everything the terminal showed) so far. */
  output(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function watchProcess(command: string, args: string[], env: NodeJS.ProcessEnv): Watch {
  const proc = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return { proc, output: () => stdout, stderr: () => stderr, exited };
}

/** `tcrawl status <id> --watch …` with stdout a pipe. */
function watchPlain(crawlId: string, env: NodeJS.ProcessEnv, ...args: string[]): Watch {
  return watchProcess(process.execPath, [tcrawlBin, 'status', crawlId, '--watch', ...args], env);
}

/** The progress lines of a plain watch: `<elapsed> · <phase> · <finished>/<total> (or `<finished> finished`) · saved N · …`. */
function progressLines(output: string): { line: string; saved: number }[] {
  return output
    .split('\n')
    .map((line) => ({ line, match: /^\S+(?: \S+)? · (?:seeding|crawling|draining|finished) · (?:\d+\/\d+\+?|\d+ finished) · saved (\d+) · /.exec(line) }))
    .filter(({ match }) => match)
    .map(({ line, match }) => ({ line, saved: Number(match![1]) }));
}

function assertSavedGrows(lines: { saved: number }[], output: string): void {
  const saved = lines.map((l) => l.saved);
  assert.ok(saved.length >= 3, `several progress lines (saved: ${saved.join(', ')}):\n${output}`);
  for (let i = 1; i < saved.length; i++) assert.ok(saved[i] >= saved[i - 1], `saved never goes down: ${saved.join(', ')}`);
  assert.ok(saved[saved.length - 1] > saved[0], `saved grows: ${saved.join(', ')}`);
}

// The tests run at once: each has its own crawl, task queue, watch process and fixture site (the outage
// test its own Temporal server), and most of their time is waiting — on slow crawls, on the watch's 5 s
// query timeout. A site each: crawls of one host share its pace fleet-wide (activities/host-pacer.ts), so
// on one site every crawl went at the slowest one's rate, split between them.
describe('tcrawl status --watch', { concurrency: true }, () => {
  let stack: TestStack;
  let env: NodeJS.ProcessEnv;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    stack = await openStack();
    env = { ...process.env, TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl };
  });

  after(async () => {
    for (let step = cleanups.pop(); step; step = cleanups.pop()) await step().catch(() => undefined);
    await stack?.close();
  });

  /** A fixture site of the test's own (a host no other crawl paces), closed after the suite. */
  async function ownSite(): Promise<FixtureSite> {
    const site = await startFixtureSite({ extraPages: 60 });
    cleanups.unshift(() => site.close()); // closed after the crawls' own cleanups, which run last-pushed first
    return site;
  }

  /** A crawl of `site` at `rate` requests/s: slow enough to watch. */
  const slowSpec = (site: FixtureSite, rate: number, maxPages: number, more: Partial<CrawlSpecInput> = {}) =>
    parseCrawlSpec({ ...localSiteDefaults, seeds: [site.url('/')], rate, concurrency: 2, maxPages, batchSize: 4, ...more });

  it('prints a line per poll with saved growing, no ANSI, across continue-as-new runs, and ends with the summary (exit 0)', { timeout: 120_000 }, async () => {
    const crawlId = uniqueId('watch');
    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const { watched, summary } = await worker.runUntil(async () => {
      const handle = await startCrawl(stack.client, taskQueue, crawlId, slowSpec(await ownSite(), 5, 30), { continueAsNewAfterBatches: 2 });
      const watch = watchPlain(crawlId, env, '--interval', '1');
      return { watched: { ...(await watch.exited), output: watch.output(), stderr: watch.stderr() }, summary: await handle.result() };
    });
    assert.equal(watched.code, 0, watched.stderr);
    assert.doesNotMatch(watched.output, /\x1b/, 'no ANSI escapes when stdout is not a terminal');
    const lines = progressLines(watched.output);
    assertSavedGrows(lines, watched.output);
    assert.ok(lines.some(({ line }) => / · \d+\/30 · /.test(line)), `the count is against max pages (30), read from Postgres:\n${watched.output}`);
    assert.ok(lines.some(({ line }) => /ETA \S+( \S+)? \(to max pages\)$/.test(line)), `an ETA to max pages:\n${watched.output}`);
    assert.ok(lines.some(({ line }) => / \d+\.\d pages\/s · /.test(line)), 'a rate');
    assert.match(watched.output, new RegExp(`^Crawl ${crawlId} completed in .+ \\(\\d+\\.\\d pages/s\\)\\n  saved ${summary.saved} · failed ${summary.failed} · skipped ${summary.skipped} · `, 'm'));
    const { count: runs } = await stack.client.workflow.count(`WorkflowId = "${workflowIdFor(crawlId)}"`);
    assert.ok(runs > 2, `the crawl continued as new while watched (${runs} runs) and the watch followed it`);

    // A crawl that has ended: the summary at once.
    const again = watchPlain(crawlId, env);
    assert.equal((await again.exited).code, 0, again.stderr());
    assert.match(again.output(), new RegExp(`^Crawl ${crawlId} completed in `));
    assert.equal(progressLines(again.output()).length, 0);
  });

  it('says so when no worker answers, keeps watching, and goes on once a worker comes', { timeout: 120_000 }, async () => {
    const crawlId = uniqueId('watch-noworker');
    const taskQueue = uniqueId('tq');
    await startCrawl(stack.client, taskQueue, crawlId, slowSpec(await ownSite(), 5, 40));
    const watch = watchPlain(crawlId, env, '--interval', '1');
    await waitFor('the watch to say no worker answered', () => watch.output().includes('No worker answered'), 60_000);
    const worker = await startWorker(stack, taskQueue);
    const { code } = await worker.runUntil(watch.exited);
    assert.equal(code, 0, watch.stderr());
    const output = watch.output();
    assert.equal(output.split('No worker answered').length - 1, 1, `said once, not at every poll:\n${output}`);
    assertSavedGrows(progressLines(output.slice(output.indexOf('No worker answered'))), output);
    assert.match(output, new RegExp(`^Crawl ${crawlId} completed in `, 'm'));
  });

  it('ends with exit 1 when the crawl is terminated, as status does', { timeout: 60_000 }, async () => {
    const crawlId = uniqueId('watch-terminated');
    const handle = await startCrawl(stack.client, uniqueId('idle'), crawlId, slowSpec(await ownSite(), 5, 20));
    const watch = watchPlain(crawlId, env, '--interval', '0.5');
    await waitFor('the watch to start', () => watch.output().includes('No worker answered'), 60_000);
    await handle.terminate('tcrawl watch test');
    assert.equal((await watch.exited).code, 1, watch.stderr());
    assert.match(watch.output(), new RegExp(`^Crawl ${crawlId} terminated\\.$`, 'm'));
  });

  it('refuses --watch with --json (exit 2)', async () => {
    const watch = watchPlain('any', env, '--json');
    assert.equal((await watch.exited).code, 2);
    assert.match(watch.stderr(), /option '--watch' cannot be used with option '--json'/);
  });

  it('waits out a Temporal outage: says it is unreachable, then goes on to the end', { timeout: 240_000 }, async () => {
    const dataDir = privateDir('tcrawl-watch-temporal-');
    cleanups.push(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    const serverOptions = {
      config: { ...runtimeConfig(), dataDir },
      port: await freePort(),
      uiPort: await freePort(),
      dbFile: path.join(dataDir, 't.db'),
      detached: false,
      log: () => undefined,
    };
    let server: TemporalServer = await ensureTemporalServer(serverOptions);
    cleanups.push(() => server.stop());
    const connection = await connectClient(server.address, plaintextAccess);
    cleanups.push(() => connection.close());
    const nativeConnection = await connectWorker(server.address, plaintextAccess);
    cleanups.push(() => nativeConnection.close());

    const crawlId = uniqueId('watch-outage');
    const taskQueue = uniqueId('tq');
    const worker = await createCrawlWorker({ connection: nativeConnection, namespace: 'default', taskQueue, pool: stack.pool });
    const watch = await worker.runUntil(async () => {
      await startCrawl(new Client({ connection }), taskQueue, crawlId, slowSpec(await ownSite(), 4, 30));
      const watch = watchPlain(crawlId, { ...env, TEMPORAL_ADDRESS: server.address }, '--interval', '1');
      await waitFor('two progress lines', () => progressLines(watch.output()).length >= 2, 60_000);
      const killed = server;
      await killAndWait(killed.pid!);
      await killed.stop(); // already gone: only unregisters its exit hook
      await waitFor('the watch to say Temporal is unreachable', () => watch.output().includes('Temporal unreachable'), 60_000);
      server = await ensureTemporalServer(serverOptions);
      await watch.exited;
      return watch;
    });
    const { code } = await watch.exited;
    assert.equal(code, 0, watch.stderr());
    const output = watch.output();
    assert.match(output, /^Temporal unreachable \(.+\), retrying…$/m);
    assert.ok(progressLines(output.slice(output.indexOf('Temporal unreachable'))).length >= 1, `progress again after the outage:\n${output}`);
    assert.match(output, new RegExp(`^Crawl ${crawlId} completed in `, 'm'));
  });

  it('on a terminal: redraws the frame in place with a bar, and on Ctrl-C restores the cursor and exits 130', { timeout: 120_000 }, async () => {
    assert.doesNotThrow(() => execFileSync('script', ['--version']), 'util-linux `script` runs the watch on a pseudo-terminal: install util-linux');
    const crawlId = uniqueId('watch-tty');
    const taskQueue = uniqueId('tq');
    const worker = await startWorker(stack, taskQueue);
    const handle = await startCrawl(stack.client, taskQueue, crawlId, slowSpec(await ownSite(), 2, 1000));
    cleanups.push(() => handle.terminate('tcrawl watch test: done'));
    // A pseudo-terminal nobody sized is 0×0: give it a size, as a terminal window has.
    const command = `stty rows 30 cols 100; exec ${process.execPath} ${tcrawlBin} status ${crawlId} --watch`;
    const tty = watchProcess('script', ['-qfec', command, '/dev/null'], env);
    const frames = () => tty.output().split(`crawl ${crawlId} · `).length - 1;
    const { code } = await worker.runUntil(async () => {
      await waitFor('three frames with progress', () => frames() >= 3 && /[█░]{10,}/.test(tty.output()), 90_000);
      tty.proc.stdin!.write('\x03'); // Ctrl-C, typed: the terminal sends SIGINT to the watch
      return tty.exited;
    });
    const output = tty.output();
    assert.equal(code, 130, `${output}\n${tty.stderr()}`);
    assert.ok(output.includes('\x1b[?25l'), 'the cursor is hidden while drawing');
    assert.match(output, /\x1b\[2K\x1b\[1A/, 'each frame erases the previous one in place');
    assert.ok(output.lastIndexOf('\x1b[?25h') > output.lastIndexOf('\x1b[?25l'), 'the cursor is shown again after the last frame');
    assert.match(output, /Stopped watching \(SIGINT\); crawl \S+ goes on\./);
    assert.match(output, /host +queued +batches/, 'the host table');
  });
});
