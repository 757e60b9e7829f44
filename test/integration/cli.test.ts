import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';

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

describe('tcrawl CLI', () => {
  let stack: TestStack;
  let site: FixtureSite;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    stack = await openStack();
    site = await startFixtureSite();
    env = { TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl, TCRAWL_TASK_QUEUE: uniqueId('cli') };
  });

  after(async () => {
    await site?.close();
    await stack?.close();
  });

  it('crawl --wait --json runs a worker, crawls, and prints the summary as JSON; status reports it', async () => {
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

  const badInputs: Array<[string, string[], RegExp]> = [
    ['an invalid seed URL', ['crawl', 'example.com'], /did you mean https:\/\/example\.com/],
    ['a non-http seed', ['crawl', 'ftp://example.com/'], /not an http\(s\) URL/],
    ['an unknown option', ['crawl', 'https://example.com/', '--bogus'], /unknown option '--bogus'/],
    ['a non-numeric rate', ['crawl', 'https://example.com/', '--rate', 'fast'], /"fast" is not a number/],
    ['a bad scope', ['crawl', 'https://example.com/', '--scope', 'planet'], /Allowed choices are host, domain, any/],
    ['a bad regex', ['crawl', 'https://example.com/', '--include', '(['], /include\.0: is not a valid regular expression/],
    ['a private seed without --allow-private', ['crawl', 'http://127.0.0.1:9/'], /--allow-private/],
    ['a field without an item', ['crawl', 'https://example.com/', '--field', 'x=.y'], /--field needs --item/],
    ['an invalid selector', ['crawl', 'https://example.com/', '--item', '.p', '--field', 'x=::bogus('], /TCRAWL_INVALID_SELECTOR|Invalid CSS selector/],
    ['no seeds', ['crawl'], /seeds/],
  ];
  for (const [what, args, message] of badInputs) {
    it(`exits 2 with a message on ${what}`, async () => {
      const run = await tcrawl(args, env);
      assert.equal(run.code, 2, `exit code; stderr: ${run.stderr}`);
      assert.match(run.stderr, message);
      assert.equal(run.stdout, '');
    });
  }

  it('exits 2 on a spec file with an unknown key, naming it and the known keys', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-spec-'));
    const file = path.join(dir, 'spec.json');
    writeFileSync(file, JSON.stringify({ seeds: ['https://example.com/'], maxPagez: 3 }));
    const run = await tcrawl(['crawl', '--spec', file], env);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /unknown key "maxPagez".*known keys: seeds, maxPages/s);
  });

  it('exits 2 for the status of an unknown crawl', async () => {
    const run = await tcrawl(['status', uniqueId('nope')], env);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /No crawl with id/);
  });
});
