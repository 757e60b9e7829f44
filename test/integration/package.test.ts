/**
 * tcrawl as a user installs it: `npm pack`, installed from the tarball into a
 * temporary project. The CLI, `require`/`import` and the type declarations
 * are exercised there, against the compiled package, never against src/.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startFixtureSite, type FixtureSite } from '../fixtures/site';
import { installPackedPackage, installedVersion, type CommandResult, type PackedProject } from '../helpers/packed-package';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';

/** What src/index.ts exports as values; a script's `require('tcrawl')` must find each. */
const valueExports = [
  'connect',
  'TcrawlClient',
  'CrawlHandle',
  'CrawlCancelledError',
  'parseCrawlSpec',
  'crawlSpecSchema',
  'TcrawlError',
  'InvalidInputError',
  'DependencyError',
  'runtimeConfig',
  'workflowIdFor',
  'createCrawlWorker',
  'runWorkerUntil',
];

const tsc = path.resolve(__dirname, '../../node_modules/typescript/bin/tsc');

function assertRan(result: CommandResult, what: string): void {
  assert.equal(result.code, 0, `${what} exited with ${result.signal ?? result.code}:\n${result.stderr}\n${result.stdout}`);
}

describe('the packed package', () => {
  let project: PackedProject;
  let stack: TestStack;

  before(async () => {
    [project, stack] = await Promise.all([
      // A TypeScript user's project has @types/node; the same version as this checkout's comes from npm's cache.
      installPackedPackage({ alsoInstall: [`@types/node@${installedVersion('@types/node')}`] }),
      openStack(),
    ]);
  });

  after(async () => {
    project?.remove();
    await stack?.close();
  });

  /**
   * A fixture site for one test, closed after it. A crawl of its own host each: crawls of one host share its
   * pace fleet-wide (activities/host-pacer.ts), and a rate's want outlives its crawl by a minute, so on one
   * site the example's three crawls took turns at 1 request/s and the --rate 0 crawl after them went at 1/s too.
   */
  async function siteFor(t: TestContext): Promise<FixtureSite> {
    const site = await startFixtureSite();
    t.after(() => site.close());
    return site;
  }

  it('holds the compiled code, its declarations and the bin, and no TypeScript sources', () => {
    const entries = execFileSync('tar', ['-tzf', project.tarball], { encoding: 'utf8' })
      .split('\n')
      .filter((entry) => entry && !entry.endsWith('/'))
      .map((entry) => entry.replace(/^package\//, ''));
    for (const file of ['bin/tcrawl.js', 'schema/crawl-spec.schema.json', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/index.js', 'dist/workflows/index.js', 'dist/workflow-bundle.js', 'dist/workflow-bundle.json', 'dist/activities/index.js']) {
      assert.ok(entries.includes(file), `the tarball lacks ${file}`);
    }
    const sources = entries.filter((entry) => entry.endsWith('.ts') && !entry.endsWith('.d.ts'));
    assert.deepEqual(sources, [], 'TypeScript sources in the tarball');
    const stray = entries.filter((entry) => !/^(dist|bin)\//.test(entry) && !['package.json', 'README.md', 'schema/crawl-spec.schema.json'].includes(entry));
    assert.deepEqual(stray, [], 'files outside dist/, bin/, package.json, README.md and the JSON Schema');
  });

  it('needs no TypeScript toolchain: neither tsx nor typescript is installed with it', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(project.dir, 'node_modules/tcrawl/package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const tool of ['tsx', 'typescript']) {
      assert.equal(manifest.dependencies[tool], undefined, `${tool} is a dependency of tcrawl`);
      assert.ok(!fs.existsSync(path.join(project.dir, 'node_modules', tool)), `installing tcrawl installed ${tool}`);
    }
  });

  it('npx tcrawl --help runs the installed CLI', async () => {
    const help = await project.run('npx', ['tcrawl', '--help']);
    assertRan(help, 'npx tcrawl --help');
    assert.match(help.stdout, /^Usage: tcrawl /);
    assert.match(help.stdout, /crawl \[options\] \[seeds\.\.\.\]/);
  });

  it('a script can require() and import it, and resolve its JSON Schema as tcrawl/schema.json', async () => {
    const names = JSON.stringify(valueExports);
    fs.writeFileSync(
      path.join(project.dir, 'required.cjs'),
      `const tcrawl = require('tcrawl');
const missing = ${names}.filter((name) => tcrawl[name] === undefined);
if (missing.length > 0) throw new Error('require("tcrawl") lacks ' + missing.join(', '));
const schema = require('tcrawl/schema.json');
if (schema.properties.maxPages.default !== 1000) throw new Error('tcrawl/schema.json is not the spec schema');
console.log(JSON.stringify(tcrawl.parseCrawlSpec({ $schema: require.resolve('tcrawl/schema.json'), seeds: ['https://example.com/'] })));
`,
    );
    fs.writeFileSync(
      path.join(project.dir, 'imported.mjs'),
      `import * as tcrawl from 'tcrawl';
import { parseCrawlSpec, InvalidInputError } from 'tcrawl';
const missing = ${names}.filter((name) => tcrawl[name] === undefined);
if (missing.length > 0) throw new Error('import of "tcrawl" lacks ' + missing.join(', '));
try {
  parseCrawlSpec({ seeds: ['ftp://example.com/'] });
  throw new Error('an ftp seed was accepted');
} catch (error) {
  if (!(error instanceof InvalidInputError)) throw error;
  console.log(error.name, error.code);
}
`,
    );
    const required = await project.run('node', ['required.cjs']);
    assertRan(required, 'node required.cjs');
    const spec = JSON.parse(required.stdout);
    assert.deepEqual(spec.seeds, ['https://example.com/']);
    assert.equal(spec.maxPages, 1000);
    const imported = await project.run('node', ['imported.mjs']);
    assertRan(imported, 'node imported.mjs');
    assert.equal(imported.stdout.trim(), 'InvalidInputError TCRAWL_INVALID_SPEC');
  });

  it('a TypeScript file type-checks against the installed declarations', async () => {
    // skipLibCheck, as most projects set it (the Temporal SDK's own declarations need it): the
    // expected-error lines of the script then prove that tcrawl's types resolved, since an unresolved one is any.
    fs.writeFileSync(
      path.join(project.dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, target: 'ES2022', module: 'node16', moduleResolution: 'node16', noEmit: true, types: ['node'], skipLibCheck: true },
        files: ['crawl-script.ts'],
      }),
    );
    fs.writeFileSync(
      path.join(project.dir, 'crawl-script.ts'),
      `import { connect, parseCrawlSpec, createCrawlWorker, type CrawlHandle, type CrawlSpec, type CrawlSummary, type CrawlWorkerOptions } from 'tcrawl';

const spec: CrawlSpec = parseCrawlSpec({ seeds: ['https://example.com/'], maxPages: 10 });
const pages: number = spec.maxPages;
// @ts-expect-error maxPages is a number: the declarations carry real types, not any.
const wrong: string = spec.maxPages;
const saved: CrawlSummary['saved'] = 0;
// @ts-expect-error the worker's pool is a pg Pool (from @types/pg, a dependency of tcrawl).
const pool: CrawlWorkerOptions['pool'] = 'postgres://';
export async function run(): Promise<number> {
  const tcrawl = await connect();
  const crawl: CrawlHandle = await tcrawl.startCrawl({ seeds: ['https://example.com/'] }, { id: 'typed' });
  // @ts-expect-error retryFailed takes reasons and statuses, not a string.
  await crawl.retryFailed('timeout');
  return (await crawl.result()).saved;
}
export const used = [pages, wrong, saved, pool, createCrawlWorker];
`,
    );
    const check = await project.run(process.execPath, [tsc, '-p', '.']);
    assertRan(check, 'tsc -p . in the project');
  });

  it('examples/three-crawls.ts, compiled by the project, starts three crawls, prints progress and waits for all', async (t) => {
    fs.copyFileSync(path.resolve(__dirname, '../../examples/three-crawls.ts'), path.join(project.dir, 'three-crawls.ts'));
    fs.writeFileSync(
      path.join(project.dir, 'tsconfig.example.json'),
      JSON.stringify({
        compilerOptions: { strict: true, target: 'ES2022', module: 'node16', moduleResolution: 'node16', outDir: 'out', types: ['node'], skipLibCheck: true },
        files: ['three-crawls.ts'],
      }),
    );
    assertRan(await project.run(process.execPath, [tsc, '-p', 'tsconfig.example.json']), 'tsc -p tsconfig.example.json');
    const env = { TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl, TCRAWL_TASK_QUEUE: uniqueId('example'), ALLOW_PRIVATE: '1' };
    // The example crawls at the default rate (1 request/s per host): seeds down the fixture's /deep chain keep
    // each crawl to a few pages (5, 3 and 1 saved) that still take seconds, so progress is printed while they run.
    // Each on a site of its own, so the three go at 1 request/s each rather than share one host's.
    const sites = await Promise.all([siteFor(t), siteFor(t), siteFor(t)]);
    const seeds = ['/deep/6', '/deep/8', '/deep/10'].map((p, i) => sites[i]!.url(p));
    const run = await project.run('node', ['out/three-crawls.js', ...seeds], { env, timeoutMs: 120_000 });
    assertRan(run, 'node out/three-crawls.js');
    const done = [...run.stdout.matchAll(/^done (\S+): (\d+) saved/gm)];
    assert.equal(done.length, 3, run.stdout);
    for (const [, crawlId, saved] of done) {
      const { rows } = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1', [crawlId]);
      assert.equal(rows[0]!.n, Number(saved), `${crawlId}: the printed count is the rows'`);
    }
    assert.match(run.stdout, /: (seeding|crawling|finished), \d+ saved, \d+ queued, \d+ failed/, 'progress lines while the crawls run');
  });

  /** A worker's output until the SDK says it runs (then it is stopped), or until it exits by itself. */
  async function workerOutput(worker: ChildProcess): Promise<{ output: string; code: number | null }> {
    let output = '';
    const exited = once(worker, 'exit') as Promise<[number | null]>;
    const collect = (chunk: Buffer): void => {
      output += chunk.toString();
      if (/state: 'RUNNING'/.test(output)) worker.kill('SIGTERM');
    };
    worker.stdout!.on('data', collect);
    worker.stderr!.on('data', collect);
    const timeout = setTimeout(() => worker.kill('SIGKILL'), 60_000);
    const [code] = await exited;
    clearTimeout(timeout);
    return { output, code };
  }

  it('a worker of the installed package runs the prebuilt workflow bundle; a stale or missing one is refused', async () => {
    const env = { TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl, TCRAWL_TASK_QUEUE: uniqueId('bundle'), TCRAWL_LOG_LEVEL: 'DEBUG' };
    const installed = path.join(project.dir, 'node_modules/tcrawl');
    const bin = path.join(installed, 'bin/tcrawl.js');
    const started = await workerOutput(project.start(process.execPath, [bin, 'worker'], env));
    assert.match(started.output, /state: 'RUNNING'/, `the worker did not start:\n${started.output.slice(-4000)}`);
    // The SDK logs the options it was created with (DEBUG), and "Workflow bundle created" (INFO) whenever it bundles.
    const bundle = path.join(installed, 'dist/workflow-bundle.js');
    const codePath = /workflowBundle: \{\s*codePath: '([^']+)'\s*\}/.exec(started.output)?.[1];
    assert.equal(codePath && fs.realpathSync(codePath), fs.realpathSync(bundle), 'the worker was not created with the prebuilt bundle');
    assert.doesNotMatch(started.output, /Workflow bundle created/, 'the worker bundled the workflow code');

    // Compiled workflow code that is not what the bundle was made from (a build that stopped after tsc, a hand edit).
    const compiledWorkflow = path.join(installed, 'dist/workflows/index.js');
    const original = fs.readFileSync(compiledWorkflow);
    fs.appendFileSync(compiledWorkflow, '\n// changed\n');
    try {
      const stale = await project.run(process.execPath, [bin, 'worker'], { env });
      assert.equal(stale.code, 1, stale.stderr);
      assert.match(stale.stderr, /the workflow bundle .* is not that of the compiled code .*: run `npm run build` in .* \[TCRAWL_STALE_BUILD\]/);
    } finally {
      fs.writeFileSync(compiledWorkflow, original);
    }

    fs.renameSync(bundle, `${bundle}.moved`);
    try {
      const missing = await project.run(process.execPath, [bin, 'worker'], { env });
      assert.equal(missing.code, 1, missing.stderr);
      assert.match(missing.stderr, /the workflow bundle is missing .* \[TCRAWL_NOT_BUILT\]/);
    } finally {
      fs.renameSync(`${bundle}.moved`, bundle);
    }
  });

  it('npx tcrawl crawl --wait crawls the fixture site with its own worker; the summary matches Postgres', async (t) => {
    const site = await siteFor(t);
    const crawlId = uniqueId('packed');
    const env = { TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl, TCRAWL_TASK_QUEUE: uniqueId('packed') };
    const run = await project.run('npx', ['tcrawl', 'crawl', site.url('/'), '--id', crawlId, '--wait', '--allow-private', '--rate', '0', '--max-depth', '20', '--json'], { env });
    assertRan(run, 'npx tcrawl crawl');
    const summary = JSON.parse(run.stdout);
    assert.equal(summary.crawlId, crawlId);
    assert.equal(summary.saved, site.expectations.savedPaths.length);
    const { rows } = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1', [crawlId]);
    assert.equal(rows[0]!.n, summary.saved);
  });
});
