/**
 * tcrawl over mutual TLS to the Temporal server built from
 * go.temporal.io/server, its frontend run with a certificate of a CA openssl
 * makes here and `requireClientAuth` (deploy/temporal/config.yaml's
 * TEMPORAL_TLS_* variables). `tcrawl setup`, a `tcrawl worker` and
 * `tcrawl crawl --wait` connect with TEMPORAL_TLS_SERVER_CA_CERT_PATH and a
 * client certificate, and crawl a local site; without the client certificate,
 * without TLS, or trusting another CA, they are refused with
 * TCRAWL_TEMPORAL_UNREACHABLE and what to set.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runtimeConfig } from '../../src/config';
import type { CrawlSummary } from '../../src/crawl-types';
import { findTemporalClusterBinaries } from '../../src/infra/temporal-cluster-binaries';
import { setupClusterDatabases, startTemporalCluster, type TemporalCluster } from '../../src/infra/temporal-cluster';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { clusterPorts, dropClusterDatabases, freshClusterDatabases } from '../helpers/cluster';
import { privateDir } from '../helpers/processes';
import { assertSavedExactlyOnce } from '../helpers/saved-once';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { testCertificateAuthority, type CertificateFiles } from '../helpers/tls';
import { kill, runTcrawl, spawnWorkers, stderrTail, waitForPollers } from '../helpers/worker-processes';

const t0 = Date.now();
function log(line: string): void {
  process.stderr.write(`[cluster-tls +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}\n`);
}

describe('a Temporal cluster with mutual TLS on its frontend', () => {
  const postgresUrl = process.env.DATABASE_URL!;
  const databases = freshClusterDatabases(postgresUrl, 'tls');
  const dir = privateDir('tcrawl-cluster-tls-');
  const cleanups: (() => Promise<unknown>)[] = [];
  let cluster: TemporalCluster;
  let stack: TestStack;
  let site: FixtureSite;
  let caFile: string;
  let workerCert: CertificateFiles;
  let strangerCaFile: string;

  /**
   * The environment of a tcrawl process connecting to the cluster as `tls` says: by the name its certificate
   * is issued for, as in production (by IP address, Node warns that TLS's server name cannot be one, RFC 6066).
   */
  function env(tls: NodeJS.ProcessEnv, taskQueue = uniqueId('tq')): NodeJS.ProcessEnv {
    return { ...process.env, TEMPORAL_ADDRESS: frontendByName(), DATABASE_URL: postgresUrl, TCRAWL_TASK_QUEUE: taskQueue, ...tls };
  }
  const frontendByName = (): string => cluster.address.replace('127.0.0.1', 'localhost');
  const mtls = (): NodeJS.ProcessEnv => ({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: caFile, TEMPORAL_TLS_CLIENT_CERT_PATH: workerCert.cert, TEMPORAL_TLS_CLIENT_KEY_PATH: workerCert.key });

  before(async () => {
    assert.ok(postgresUrl, 'DATABASE_URL is set (run this with npm run test:cluster)');
    cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    const ca = testCertificateAuthority(dir);
    caFile = ca.caFile;
    const frontend = ca.server('frontend');
    const systemWorker = ca.client('system-worker');
    workerCert = ca.client('tcrawl-worker');
    strangerCaFile = testCertificateAuthority(dir, 'stranger CA').caFile;

    const binaries = await findTemporalClusterBinaries(runtimeConfig(), log);
    cleanups.push(() => dropClusterDatabases(databases));
    await setupClusterDatabases(binaries, databases, log);
    const ports = await clusterPorts();
    const address = `127.0.0.1:${ports.frontend}`;
    const access = runtimeConfig({ TEMPORAL_ADDRESS: address, ...mtls() });
    const tls = { certFile: frontend.cert, keyFile: frontend.key, caFile, clientCaFile: caFile, systemWorkerCertFile: systemWorker.cert, systemWorkerKeyFile: systemWorker.key };
    cluster = await startTemporalCluster({ binaries, databases, ports, tls, access, logFile: path.join(dir, 'temporal-server.log'), log });
    cleanups.push(() => cluster.stop());
    stack = await openStack(cluster.address, access);
    cleanups.push(() => stack.close());
    site = await startFixtureSite({ extraPages: 200 });
    cleanups.push(() => site.close());
  });

  after(async () => {
    for (let step = cleanups.pop(); step; step = cleanups.pop()) await step().catch((err: unknown) => log(`cleanup: ${(err as Error).message}`));
  });

  it('tcrawl setup, a worker and crawl --wait over mutual TLS: the site is crawled, every page saved once', { timeout: 240_000 }, async () => {
    const workerEnv = env(mtls());
    const setup = await runTcrawl(['setup'], workerEnv);
    assert.equal(setup.code, 0, setup.stderr);
    assert.match(setup.stdout, /Registered TcrawlCrawlId, .* in namespace default/);

    const [worker] = spawnWorkers(stack, workerEnv.TCRAWL_TASK_QUEUE!, 1, { env: workerEnv });
    cleanups.push(() => kill(worker));
    await waitForPollers(stack, workerEnv.TCRAWL_TASK_QUEUE!, [worker]);
    assert.match(stderrTail(worker), new RegExp(`Worker polling task queue "${workerEnv.TCRAWL_TASK_QUEUE}" on ${frontendByName()}`));

    const crawlId = uniqueId('tls');
    const started = Date.now();
    const crawl = await runTcrawl(['crawl', site.url('/'), '--allow-private', '--rate', '0', '--retry-base-ms', '200', '--max-depth', '20', '--max-pages', '10000', '--batch-size', '20', '--id', crawlId, '--wait', '--json'], workerEnv, 180_000);
    assert.equal(crawl.code, 0, crawl.stderr);
    const summary = JSON.parse(crawl.stdout) as CrawlSummary;
    log(`crawl of ${summary.saved} pages over mTLS: ${((Date.now() - started) / 1000).toFixed(1)}s`);
    await assertSavedExactlyOnce(stack.pool, site, crawlId, summary, 0, log);
    assert.equal(worker.exitCode, null, `the worker is still running:\n${stderrTail(worker)}`);
  });

  it('refused without the client certificate, in plaintext, and trusting another CA: TCRAWL_TEMPORAL_UNREACHABLE, saying what to set', { timeout: 120_000 }, async () => {
    const cases: [string, NodeJS.ProcessEnv, RegExp][] = [
      ['the CA but no client certificate', { TEMPORAL_TLS_SERVER_CA_CERT_PATH: caFile }, /If the server requires client certificates \(mutual TLS\), set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH/],
      ['plaintext', {}, /in plaintext \(no TEMPORAL_TLS\* set\)[^]*If the server requires TLS, set TEMPORAL_TLS=true/],
      ['the client certificate, trusting another CA', { ...mtls(), TEMPORAL_TLS_SERVER_CA_CERT_PATH: strangerCaFile }, /set TEMPORAL_TLS_SERVER_CA_CERT_PATH to its CA/],
    ];
    for (const [what, tls, hint] of cases) {
      const run = await runTcrawl(['status', 'no-such-crawl'], env(tls), 60_000);
      log(`${what}: exit ${run.code} after ${((run.exitedAtMs - run.startedAtMs) / 1000).toFixed(1)}s: ${run.stderr.trim().split('\n')[0]}`);
      assert.equal(run.code, 1, `${what}: ${run.stderr}`);
      assert.match(run.stderr, new RegExp(`^tcrawl: Could not connect to Temporal at ${frontendByName()} `), what);
      assert.match(run.stderr, hint, what);
      assert.match(run.stderr, /\[TCRAWL_TEMPORAL_UNREACHABLE\]\n$/, what);
    }
  });

  it('a bad TLS setting is refused before connecting (exit 2): a key without its certificate', async () => {
    const run = await runTcrawl(['worker'], env({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: caFile, TEMPORAL_TLS_CLIENT_KEY_PATH: workerCert.key }));
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /TEMPORAL_TLS_CLIENT_KEY_PATH is set without TEMPORAL_TLS_CLIENT_CERT_PATH.*\[TCRAWL_TLS_KEY_WITHOUT_CERT\]/);
  });
});
