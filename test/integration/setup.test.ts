import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { plaintextAccess, runtimeConfig } from '../../src/config';
import { connectClient } from '../../src/temporal-connection';
import { isTemporalFrontend } from '../../src/infra/temporal-server';
import { findTemporalCli } from '../../src/infra/temporal-cli';
import { searchAttributeTypes } from '../../workflows/search-attributes';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { freePort, killAndWait, privateDir } from '../helpers/processes';
import { runTcrawl, waitFor } from '../helpers/worker-processes';

/**
 * A Temporal server tcrawl did not start has none of its search attributes:
 * `tcrawl setup` registers them, once; a crawl started before that still runs.
 */
describe('tcrawl setup on a Temporal server without tcrawl\'s search attributes', () => {
  let stack: TestStack;
  let server: ChildProcess;
  let address: string;

  before(async () => {
    stack = await openStack();
    const port = await freePort();
    address = `127.0.0.1:${port}`;
    const cli = await findTemporalCli(runtimeConfig(), () => undefined);
    const dir = privateDir('tcrawl-setup-');
    server = spawn(cli, ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--headless', '--db-filename', path.join(dir, 't.db'), '--log-level', 'error'], { stdio: 'ignore' });
    await waitFor('the bare dev server', () => isTemporalFrontend(address), 60_000);
  });

  after(async () => {
    if (server?.pid) await killAndWait(server.pid);
    await stack?.close();
  });

  const env = () => ({ ...process.env, TEMPORAL_ADDRESS: address, DATABASE_URL: stack.databaseUrl, TCRAWL_TASK_QUEUE: uniqueId('setup') });

  it('a crawl started before setup runs, with a note naming the missing attributes and the command', async () => {
    const run = await runTcrawl(['crawl', 'http://127.0.0.1:9/', '--id', uniqueId('before-setup'), '--allow-private'], env());
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /search attributes .*TcrawlPhase.* are not registered in namespace default; run `tcrawl setup`/);
  });

  it('registers all of them, then says they are there', async () => {
    const first = await runTcrawl(['setup'], env());
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, `Registered ${Object.keys(searchAttributeTypes).join(', ')} in namespace default.\n`);
    const connection = await connectClient(address, plaintextAccess);
    const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace: 'default' }).finally(() => connection.close());
    for (const name of Object.keys(searchAttributeTypes)) assert.ok(name in (customAttributes ?? {}), `${name} registered`);
    const again = await runTcrawl(['setup'], env());
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /has tcrawl's search attributes already/);
  });
});
