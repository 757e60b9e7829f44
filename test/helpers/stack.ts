import { randomBytes } from 'node:crypto';
import { after, before } from 'node:test';
import { Client } from '@temporalio/client';
import { DefaultLogger, Runtime, type NativeConnection, type Worker } from '@temporalio/worker';
import type { Pool } from 'pg';
import { runtimeConfig, type TemporalAccess } from '../../src/config';
import { createPool, migrate } from '../../src/infra/database';
import { connectClient, connectWorker } from '../../src/temporal-connection';
import { createCrawlWorker } from '../../src/worker';
import { parseCrawlSpec, type CrawlSpecInput } from '../../src/spec';
import { startCrawl } from '../../src/client';
import type { BatchRequest, CrawlRef, CrawlSummary } from '../../src/crawl-types';
import { scopeRulesFor } from '../../src/scope';
import type { CrawlSpec } from '../../src/spec';
import { startFixtureSite, type FixtureSite, type FixtureSiteOptions } from '../fixtures/site';

/**
 * The real services the suite runs against, as prepared by test/run.ts. A
 * missing one fails the test with a message, it never skips it.
 */
export interface TestStack {
  temporalAddress: string;
  databaseUrl: string;
  pool: Pool;
  client: Client;
  nativeConnection: NativeConnection;
  close(): Promise<void>;
}

let runtimeInstalled = false;

/** Quiets the SDK's per-task logging (warnings and errors still show); once per process. */
export function quietRuntime(): void {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger('WARN') });
  runtimeInstalled = true;
}

/**
 * Connects to the suite's services; `temporalAddress` instead of TEMPORAL_ADDRESS for a server the test runs
 * itself, `access` for one that speaks TLS.
 */
export async function openStack(temporalAddress = requiredEnv('TEMPORAL_ADDRESS'), access: TemporalAccess = runtimeConfig()): Promise<TestStack> {
  const databaseUrl = requiredEnv('DATABASE_URL');
  quietRuntime();
  const pool = createPool(databaseUrl, 30);
  await migrate(pool);
  const connection = await connectClient(temporalAddress, access);
  const nativeConnection = await connectWorker(temporalAddress, access);
  return {
    temporalAddress,
    databaseUrl,
    pool,
    client: new Client({ connection }),
    nativeConnection,
    async close() {
      await connection.close();
      await nativeConnection.close();
      await pool.end();
    },
  };
}

function requiredEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite with \`npm test\`, which starts Temporal and Postgres and sets it.`);
  return value;
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export function startWorker(stack: TestStack, taskQueue: string, maxConcurrentBatches?: number): Promise<Worker> {
  return createCrawlWorker({ connection: stack.nativeConnection, namespace: 'default', taskQueue, pool: stack.pool, maxConcurrentBatches });
}

/** Defaults that make a local fixture crawl fast: no rate limit, private addresses allowed, short retries. */
export const localSiteDefaults: Partial<CrawlSpecInput> = { rate: 0, concurrency: 4, allowPrivate: true, retryBaseMs: 200, maxDepth: 20 };

/** Runs one crawl to completion with an in-process worker on its own task queue. */
export async function runCrawl(stack: TestStack, spec: CrawlSpecInput, crawlId = uniqueId('crawl')): Promise<CrawlSummary> {
  const taskQueue = uniqueId('tq');
  const worker = await startWorker(stack, taskQueue);
  const handle = await startCrawl(stack.client, taskQueue, crawlId, parseCrawlSpec({ ...localSiteDefaults, ...spec }));
  return worker.runUntil(handle.result());
}

/** `path` (with query) of each URL, for comparing against the fixture's expectations. */
export function pathOf(url: string): string {
  const parsed = new URL(url);
  return parsed.pathname + parsed.search;
}

/**
 * Opens the stack and a fixture site before a suite's tests, hands them to
 * `opened`, and closes both after the suite.
 */
export function withStackAndSite(opened: (stack: TestStack, site: FixtureSite) => void, siteOptions?: FixtureSiteOptions): void {
  let stack: TestStack | undefined;
  let site: FixtureSite | undefined;
  before(async () => {
    stack = await openStack();
    site = await startFixtureSite(siteOptions);
    opened(stack, site);
  });
  after(async () => {
    await site?.close();
    await stack?.close();
  });
}

/** The request of one unpaced batch of up to 10 URLs of `origin`'s host, as the workflow would send it. */
export function oneBatchRequest(spec: CrawlSpec, ref: CrawlRef, origin: string): BatchRequest & Required<Pick<BatchRequest, 'settings' | 'scope'>> {
  const { seeds: _seeds, ...settings } = spec;
  return {
    ...ref,
    batchId: `${ref.crawlId}/run/b1`,
    host: new URL(origin).host,
    limit: 10,
    concurrency: 2,
    startAtMs: Date.now(),
    intervalMs: 0,
    settings,
    scope: scopeRulesFor(spec),
  };
}
