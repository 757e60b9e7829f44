/**
 * `npm test`: brings up a real stack, runs the suite against it, tears it down.
 *
 *   npm test                                # test/unit/*.test.ts + test/integration/*.test.ts
 *   npm test -- test/unit/url.test.ts       # a subset; arguments starting with '-' go to `node --test`
 *
 * Temporal: TEMPORAL_ADDRESS, else a dev server on 127.0.0.1:7299 (UI 8299) with a
 * fresh database, stopped at the end. Its Web UI goes to the tests as
 * TCRAWL_TEST_WEB_UI: the dev server's, else the one given in TCRAWL_TEST_WEB_UI,
 * else TEMPORAL_ADDRESS's port + 1000 on its host if the UI there belongs to that
 * server (the dev server's default); else it is unset and the Web UI test fails,
 * saying how to set it. Postgres: DATABASE_URL, else the embedded
 * cluster (stopped at the end if this run started it). Either way the tests get a
 * fresh database `tcrawl_test_<random>` as DATABASE_URL, dropped at the end unless
 * TCRAWL_KEEP_TEST_DB=1. A missing dependency fails the run; nothing is skipped.
 *
 * `npm run build` runs first (beside the stack's start-up): tests that spawn
 * bin/tcrawl.js run the compiled dist/, which must be the sources under test.
 * `npm test` passes --typecheck-and-lint: `npm run typecheck` and `npm run lint`
 * run beside them too (2 cores: ~25 s one after another), and no test runs if one fails.
 * `npm run test:cluster` passes --own-temporal: its test runs a Temporal server of
 * its own, so none is started or looked for (TEMPORAL_ADDRESS is unset for it).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { Client } from 'pg';
import { plaintextAccess, runtimeConfig, type RuntimeConfig } from '../src/config';
import { connectClient } from '../src/temporal-connection';
import { TcrawlError } from '../src/errors';
import { ensureTemporalServer, isTemporalFrontend } from '../src/infra/temporal-server';
import { ensureEmbeddedPostgres } from '../src/infra/embedded-postgres';
import { webUiClusterId } from './helpers/web-ui';

const ROOT = path.resolve(__dirname, '..');
const SUITE_DIRS = ['test/unit', 'test/integration'];
const TEST_TEMPORAL_PORT = 7299;
const TEST_TEMPORAL_UI_PORT = 8299;
/** The argument with which `npm test` asks for the type-check and the lint as well; not a `node --test` option. */
const CHECKS_FLAG = '--typecheck-and-lint';
/** The argument with which a suite that runs a Temporal server of its own (test:cluster) asks for none. */
const OWN_TEMPORAL_FLAG = '--own-temporal';

const log = (line: string): void => void process.stderr.write(`[test] ${line}\n`);

/** Undo steps, run last-registered first; each runs at most once even if cleanup starts twice. */
const undo: { what: string; run: () => Promise<void> }[] = [];
let child: ChildProcess | undefined;
/** Exit code for the signal that interrupted the run (130 for SIGINT), once one has. */
let interrupted: number | undefined;

async function cleanup(): Promise<void> {
  for (let step = undo.pop(); step; step = undo.pop()) {
    try {
      await step.run();
    } catch (err) {
      log(`cleanup: could not ${step.what}: ${(err as Error).message}`);
    }
  }
}

/** Splits arguments into `node --test` options and test files; with no files, the whole suite. */
function testArgs(args: string[]): { options: string[]; files: string[] } {
  const options = args.filter((a) => a.startsWith('-'));
  const given = args.filter((a) => !a.startsWith('-')).map((a) => path.resolve(a));
  for (const file of given) {
    if (!fs.existsSync(file)) throw new Error(`No such test file: ${file}`);
  }
  const files = given.length > 0 ? given : SUITE_DIRS.flatMap(suiteFiles);
  if (files.length === 0) {
    throw new Error(`No test files found (looked for *.test.ts in ${SUITE_DIRS.join(' and ')}). An empty suite is a failure, not a pass.`);
  }
  return { options, files };
}

function suiteFiles(dir: string): string[] {
  const abs = path.join(ROOT, dir);
  if (!fs.existsSync(abs)) return [];
  return fs.readdirSync(abs).filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join(abs, f));
}

/** `npm run build`, so dist/ (what bin/tcrawl.js runs) is compiled from the sources under test. */
function build(): Promise<void> {
  return npmScript('build', 'Built dist/', 'the tests run the compiled code, so they need a build.');
}

/** `npm run <script>`; rejects saying `why` it matters if it fails. */
function npmScript(script: string, done: string, why: string): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const npm = spawn('npm', ['run', '--silent', script], { cwd: ROOT, stdio: 'inherit' });
    npm.once('error', (err) => reject(new Error(`could not run npm run ${script}: ${err.message}`)));
    npm.once('exit', (code, signal) => {
      if (code === 0) {
        log(`${done} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
        resolve();
      } else {
        reject(new Error(`npm run ${script} failed (${signal ?? `exit code ${code}`}): ${why}`));
      }
    });
  });
}

/** With {@link CHECKS_FLAG}: the type-check and the lint, which `npm test` requires to pass before any test. */
function checks(wanted: boolean): Promise<void>[] {
  if (!wanted) return [];
  return [npmScript('typecheck', 'Type-checked', 'see the errors above.'), npmScript('lint', 'Linted', 'see the problems above.')];
}

/** A Temporal frontend, and its Web UI's URL when known. */
interface TestTemporal {
  address: string;
  webUiUrl: string | undefined;
}

async function prepareTemporal(config: RuntimeConfig): Promise<TestTemporal> {
  if (config.temporalAddress) {
    if (!(await isTemporalFrontend(config.temporalAddress, 5_000))) {
      throw new Error(`TEMPORAL_ADDRESS=${config.temporalAddress} does not answer as a Temporal frontend. Start it, or unset TEMPORAL_ADDRESS to let the tests start a local dev server.`);
    }
    log(`Temporal: ${config.temporalAddress} (from TEMPORAL_ADDRESS)`);
    return { address: config.temporalAddress, webUiUrl: process.env.TCRAWL_TEST_WEB_UI || (await conventionalWebUi(config.temporalAddress)) };
  }
  // A private data folder: a fresh database, and no clobbering of a dev server's log or pid file.
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcrawl-test-temporal-'));
  undo.push({ what: `remove ${dataDir}`, run: async () => fs.rmSync(dataDir, { recursive: true, force: true }) });
  const server = await ensureTemporalServer({
    config: { ...config, dataDir },
    port: TEST_TEMPORAL_PORT,
    uiPort: TEST_TEMPORAL_UI_PORT,
    dbFile: path.join(dataDir, 'temporal.db'),
    detached: false,
    log,
  });
  undo.push({ what: 'stop the Temporal dev server', run: server.stop });
  if (!server.started) log(`Note: reusing the Temporal server already on port ${TEST_TEMPORAL_PORT}; its database is not fresh.`);
  return { address: server.address, webUiUrl: server.uiUrl };
}

/**
 * `temporal server start-dev` serves its Web UI on the frontend's port + 1000:
 * that UI, if one answers there and shows the same cluster as the frontend.
 */
async function conventionalWebUi(address: string): Promise<string | undefined> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  const url = `http://${host}:${port + 1000}`;
  const uiClusterId = await webUiClusterId(url);
  if (uiClusterId === undefined) return undefined;
  const connection = await connectClient(address, plaintextAccess, { connectTimeout: 5_000 });
  try {
    const { clusterId } = await connection.workflowService.getClusterInfo({});
    if (clusterId !== uiClusterId) return undefined;
    log(`Web UI: ${url} (TEMPORAL_ADDRESS's port + 1000, same cluster)`);
    return url;
  } finally {
    await connection.close();
  }
}

/** A URL of a Postgres server where the tests may create a database. */
async function preparePostgres(config: RuntimeConfig): Promise<string> {
  if (config.databaseUrl) {
    log(`Postgres: ${redact(config.databaseUrl)} (from DATABASE_URL)`);
    return config.databaseUrl;
  }
  const pg = await ensureEmbeddedPostgres({ config, detached: false, log });
  undo.push({ what: 'stop the embedded Postgres', run: pg.stop });
  return pg.databaseUrl;
}

async function createTestDatabase(serverUrl: string): Promise<string> {
  const name = `tcrawl_test_${randomBytes(4).toString('hex')}`;
  await withClient(serverUrl, (c) => c.query(`CREATE DATABASE ${c.escapeIdentifier(name)}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  if (process.env.TCRAWL_KEEP_TEST_DB === '1') {
    undo.push({ what: 'keep the test database', run: async () => log(`Kept the test database (TCRAWL_KEEP_TEST_DB=1): ${redact(url.href)}`) });
  } else {
    // FORCE: a test that leaked a connection must not make the drop fail.
    undo.push({ what: `drop database ${name}`, run: () => withClient(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`)) });
  }
  return url.href;
}

async function withClient(url: string, fn: (c: Client) => Promise<unknown>): Promise<void> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    await fn(client);
  } catch (err) {
    throw new Error(`Postgres at ${redact(url)}: ${(err as Error).message}`, { cause: err });
  } finally {
    await client.end().catch(() => {});
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, '//$1:***@');
}

function runTests(options: string[], files: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const args = ['--import', 'tsx', '--test', '--test-concurrency=1', ...options, ...files];
  log(`node ${args.map((a) => path.relative(ROOT, a) || a).join(' ')}`);
  return new Promise((resolve) => {
    child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: 'inherit' });
    child.once('error', (err) => {
      log(`could not run node --test: ${err.message}`);
      resolve(1);
    });
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
  });
}

function onSignal(signal: NodeJS.Signals): void {
  const code = 128 + os.constants.signals[signal];
  if (interrupted !== undefined) {
    log(`${signal} again: exiting without finishing cleanup.`);
    process.exit(code);
  }
  interrupted = code;
  if (child && child.exitCode === null && child.signalCode === null) {
    // The tests stop; main() then cleans up as usual.
    log(`${signal}: stopping the tests, then cleaning up…`);
    child.kill(signal);
    return;
  }
  log(`${signal}: cleaning up…`);
  void cleanup().finally(() => process.exit(code));
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const { options, files } = testArgs(args.filter((a) => a !== CHECKS_FLAG && a !== OWN_TEMPORAL_FLAG));
  const config = runtimeConfig();
  const started = Date.now();
  const ownTemporal = args.includes(OWN_TEMPORAL_FLAG);
  const noTemporal: TestTemporal = { address: '', webUiUrl: undefined };
  // All start at once; allSettled so a failure of one still registers the others' cleanup.
  const [built, temporal, postgres, ...checked] = await Promise.allSettled([
    build(), ownTemporal ? noTemporal : prepareTemporal(config), preparePostgres(config), ...checks(args.includes(CHECKS_FLAG))]);
  for (const check of checked) if (check.status === 'rejected') throw check.reason;
  if (built.status === 'rejected') throw built.reason;
  if (temporal.status === 'rejected') throw temporal.reason;
  if (postgres.status === 'rejected') throw postgres.reason;
  const [{ address: temporalAddress, webUiUrl }, serverUrl] = [temporal.value, postgres.value];
  const databaseUrl = await createTestDatabase(serverUrl);
  log(`Stack ready in ${((Date.now() - started) / 1000).toFixed(1)}s: Temporal ${temporalAddress || 'started by the tests'}, database ${redact(databaseUrl)}`);
  const env: NodeJS.ProcessEnv = { ...process.env, TEMPORAL_ADDRESS: temporalAddress, DATABASE_URL: databaseUrl };
  if (webUiUrl) env.TCRAWL_TEST_WEB_UI = webUiUrl;
  const code = await runTests(options, files, env);
  log(`Tests finished with exit code ${code}.`);
  return interrupted ?? code;
}

process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
main()
  .catch((err: unknown) => {
    const code = err instanceof TcrawlError ? ` [${err.code}]` : '';
    log(`error${code}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  })
  .then(async (code) => {
    await cleanup();
    process.exit(code);
  });
