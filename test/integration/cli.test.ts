import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { specFlags } from '../../src/spec-flags';

const bin = path.resolve(__dirname, '../../bin/tcrawl.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function tcrawl(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

// Three tests at a time: the two crawls (each on a site and a task queue of its own: env's is the first's) and the rest, each a
// process that exits at validation or on an unknown crawl, fill the 15 s the regression test waits for a
// worker's answer.
describe('tcrawl CLI', { concurrency: 3 }, () => {
  let stack: TestStack;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    stack = await openStack();
    env = { TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl, TCRAWL_TASK_QUEUE: uniqueId('cli') };
  });

  after(async () => {
    await stack?.close();
  });

  /** A fixture site for one test, closed after it: its request counts (/flaky, /throttled) are that test's crawls' alone. */
  async function siteFor(t: TestContext): Promise<FixtureSite> {
    const site = await startFixtureSite();
    t.after(() => site.close());
    return site;
  }

  it('crawl --wait --json runs a worker, crawls, and prints the summary as JSON; status reports it', async (t) => {
    const site = await siteFor(t);
    const crawlId = uniqueId('cli');
    const run = await tcrawl(['crawl', site.url('/'), '--allow-private', '--rate', '0', '--max-depth', '20', '--id', crawlId, '--wait', '--json'], env);
    assert.equal(run.code, 0, run.stderr);
    const summary = JSON.parse(run.stdout);
    assert.equal(summary.crawlId, crawlId);
    assert.equal(summary.saved, site.expectations.savedPaths.length);
    assert.match(run.stderr, new RegExp(`Started crawl ${crawlId}`));

    const status = await tcrawl(['status', crawlId, '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).status, 'COMPLETED');
  });

  it('regression: a second crawl --wait right after the first waited forever — the first one\'s exited worker still looked alive — it brings its own worker', async (t) => {
    const site = await siteFor(t);
    // A queue of its own: the first run finds it empty, so only the second has an exited worker's poller to doubt (15 s).
    const queueEnv = { ...env, TCRAWL_TASK_QUEUE: uniqueId('again') };
    for (const run of [1, 2]) {
      const crawlId = uniqueId(`again${run}`);
      const result = await tcrawl(['crawl', site.url('/'), '--allow-private', '--rate', '0', '--max-depth', '20', '--id', crawlId, '--wait', '--json'], queueEnv);
      assert.equal(result.code, 0, `run ${run}: ${result.stderr}`);
      assert.equal(JSON.parse(result.stdout).saved, site.expectations.savedPaths.length, `run ${run}`);
    }
  });

  const badInputs: Array<[string, string[], RegExp]> = [
    ['an invalid seed URL', ['crawl', 'example.com'], /did you mean https:\/\/example\.com/],
    ['a non-http seed', ['crawl', 'ftp://example.com/'], /not an http\(s\) URL/],
    ['an unknown option', ['crawl', 'https://example.com/', '--bogus'], /unknown option '--bogus'/],
    ['a non-numeric rate', ['crawl', 'https://example.com/', '--rate', 'fast'], /"fast" is not a number/],
    ['a bad scope', ['crawl', 'https://example.com/', '--scope', 'planet'], /Allowed choices are host, domain, any/],
    ['a bad regex', ['crawl', 'https://example.com/', '--include', '(['], /include\.0: is not a valid regular expression \(\/\(\[\/: Unterminated character class\)/],
    ['a private seed without --allow-private', ['crawl', 'http://127.0.0.1:9/'], /--allow-private/],
    ['an invalid selector', ['crawl', 'https://example.com/', '--item', '.p', '--field', 'x=::bogus('], /items\.fields\.x: invalid CSS selector "::bogus\("/],
    ['an invalid JSONPath', ['crawl', 'https://example.com/', '--field', 'x=$.a['], /items\.fields\.x: invalid JSONPath "\$\.a\["/],
    ['no seeds', ['crawl'], /seeds: needs at least one seed URL/],
    [
      'a non-Latin-1 User-Agent (regression: it passed, then undici threw "invalid user-agent header" on every request and the crawl wedged)',
      ['crawl', 'http://x/', '--user-agent', 'tcrawl — my bot'],
      /userAgent: "—" \(U\+2014\) at position 7 is not allowed in an HTTP header value/,
    ],
    ['a User-Agent with a newline', ['crawl', 'http://x/', '--user-agent', 'bot\r\nX-Injected: 1'], /userAgent: a control character \(U\+000D\) at position 3/],
    ['a relative seed', ['crawl', '/path'], /seeds\.0: "\/path" is a relative URL/],
    ['a javascript: seed', ['crawl', 'https://example.com/', 'javascript:alert(1)'], /seeds\.1: "javascript:alert\(1\)" is not an http\(s\) URL/],
    ['a seed host with a space', ['crawl', 'http://exa mple.com/'], /seeds\.0: "http:\/\/exa mple\.com\/" is not a valid URL/],
    ['a negative rate', ['crawl', 'https://example.com/', '--rate', '-1'], /rate: Too small: expected number to be >=0/],
    ['a batch size of 0', ['crawl', 'https://example.com/', '--batch-size', '0'], /batchSize: Too small/],
    ['a batch size of 5000', ['crawl', 'https://example.com/', '--batch-size', '5000'], /batchSize: Too big: expected number to be <=1000/],
    ['an infinite rate', ['crawl', 'https://example.com/', '--rate', 'Infinity'], /"Infinity" is not a number/],
    ['a fractional page budget', ['crawl', 'https://example.com/', '--max-pages', '2.5'], /maxPages: Invalid input: expected int/],
    ['a non-numeric value of a generated flag', ['crawl', 'https://example.com/', '--max-redirects', 'many'], /option '--max-redirects <integer>' argument 'many' is invalid\. "many" is not a number/],
    ['a bad throttle', ['crawl', 'https://example.com/', '--throttle', 'slow'], /Allowed choices are fixed, adaptive/],
    ['a field that is not name=value', ['crawl', 'https://example.com/', '--item', '.p', '--field', 'title'], /argument 'title' is invalid\. "title" must look like name=value/],
    ['a timeout out of range', ['crawl', 'https://example.com/', '--connect-timeout-ms', '0'], /connectTimeoutMs: Too small/],
    ['a ban status out of range', ['crawl', 'https://example.com/', '--ban-status', '700'], /banStatuses\.0: Too big/],
  ];
  for (const [what, args, message] of badInputs) {
    it(`exits 2 with a message on ${what}`, async () => {
      const run = await tcrawl(args, env);
      assert.equal(run.code, 2, `exit code; stderr: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, '');
    });
  }

  it('crawl --help lists a flag for every flag-shaped spec key, with its key and default, and the spec-file only keys', async () => {
    const run = await tcrawl(['crawl', '--help'], env);
    assert.equal(run.code, 0, run.stderr);
    const help = run.stdout.replace(/\s+/g, ' ');
    for (const flag of specFlags()) assert.ok(help.includes(`--${flag.name}`), `--${flag.name} missing from:\n${run.stdout}`);
    assert.match(help, /--max-pages <integer> .*\(maxPages; default: 1000\)/);
    assert.match(help, /--no-robots Obey robots\.txt\. \(obeyRobots: false; default: true\)/);
    assert.match(help, /Spec-file only \(set them with --spec\): rateGroups/);
  });

  it('exits 2 on a spec file with an unknown key, naming it and the known keys', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-spec-'));
    const file = path.join(dir, 'spec.json');
    writeFileSync(file, JSON.stringify({ seeds: ['https://example.com/'], maxPagez: 3 }));
    const run = await tcrawl(['crawl', '--spec', file], env);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown key "maxPagez".*known keys: seeds, maxPages/s);
  });

  it('exits 2 on a seed with credentials, without printing them', async () => {
    const run = await tcrawl(['crawl', 'https://crawler:hunter2@example.com/'], env);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /seeds\.0: "https:\/\/example\.com\/" was given with credentials/);
    assert.doesNotMatch(run.stderr, /hunter2/);
  });

  it('exits 2 on a spec file with wrong types and an empty seed list, naming each key', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tcrawl-spec-')), 'spec.json');
    writeFileSync(file, JSON.stringify({ seeds: [], maxPages: '10', obeyRobots: 'no', userAgent: 'bot\u0000' }));
    const run = await tcrawl(['crawl', '--spec', file], env);
    assert.equal(run.code, 2, run.stderr);
    for (const problem of [/seeds: needs at least one seed URL/, /maxPages: Invalid input: expected number, received string/, /obeyRobots: Invalid input: expected boolean/, /userAgent: a control character \(U\+0000\)/]) {
      assert.match(run.stderr, problem);
    }
  });

  it('exits 2 for the status of an unknown crawl', async () => {
    const run = await tcrawl(['status', uniqueId('nope')], env);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /No crawl with id/);
  });
});
