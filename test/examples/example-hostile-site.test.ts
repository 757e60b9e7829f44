/**
 * The hostile-site example (examples/hostile-site.yaml) end to end, as a
 * user runs it — `tcrawl crawl --spec … --wait --json` — on a fleet of 3
 * `tcrawl worker` processes, against the imitation site and 3 local proxies
 * on free ports. The site spends its budget of answers for the minute on the
 * crawl's first pages and refuses everyone after; it refuses the third
 * proxy's address always. The checks (test/helpers/hostile-example.ts, the
 * runner's too): every page saved once and answered once, the budget's bans
 * met, the blocked proxy rested after a few refusals, never more than the
 * spec's rate in any second over all proxies.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { exampleSpecOnPorts, exampleSpecPort, readExampleSpec } from '../helpers/api-examples';
import { describeHostileFigures, exampleProxyUrls, hostileChecks, startHostileExample, type CrawlSummary, type EgressRow, type HostileExample } from '../helpers/hostile-example';
import { openStack, uniqueId, type TestStack } from '../helpers/stack';
import { kill, runTcrawl, spawnWorkers, stderrTail, waitForPollers, workerEnv, type CliRun } from '../helpers/worker-processes';

describe('example hostile-site: a budget shared by everyone, a blocked proxy, 3 workers', () => {
  let stack: TestStack;
  let example: HostileExample;
  let run: CliRun;
  let env: NodeJS.ProcessEnv;
  const crawlId = uniqueId('hostile-site');

  before(async () => {
    stack = await openStack();
    example = await startHostileExample({ site: 0, proxies: [0, 0, 0] });
    const fixedProxyPorts = exampleProxyUrls().map((url) => Number(new URL(url).port));
    const spec = exampleSpecOnPorts(
      'hostile-site',
      new Map([[exampleSpecPort('hostile-site'), example.site.port], ...fixedProxyPorts.map((fixed, i): [number, number] => [fixed, Number(new URL(example.proxies[i].url).port)])]),
    );
    const taskQueue = uniqueId('tq-hostile');
    env = workerEnv(stack, taskQueue);
    const workers = spawnWorkers(stack, taskQueue, 3, { concurrency: 4 });
    try {
      await waitForPollers(stack, taskQueue, workers);
      run = await runTcrawl(['crawl', '--spec', spec, '--id', crawlId, '--wait', '--json'], env, 240_000);
      assert.equal(run.code, 0, `tcrawl crawl exited ${run.code}:\n${run.stderr}\nworkers:\n${workers.map(stderrTail).join('\n')}`);
    } finally {
      await Promise.all(workers.map(kill));
    }
  });

  after(async () => {
    await example?.close();
    await stack?.close();
  });

  it('every page saved once, the bans met and backed off from, the blocked proxy rested, the rate held over all proxies', async (t) => {
    const summary = JSON.parse(run.stdout) as CrawlSummary;
    const { rows } = await stack.pool.query<{ url: string }>(`SELECT url FROM pages WHERE crawl_id = $1`, [crawlId]);
    const status = await runTcrawl(['status', crawlId, '--json'], env);
    assert.equal(status.code, 0, status.stderr);
    const { egress } = JSON.parse(status.stdout) as { egress: EgressRow[] };
    const { figures, checks } = hostileChecks(example, rows.map((r) => r.url), summary, egress, readExampleSpec('hostile-site').rate as number);
    t.diagnostic(`crawl: ${summary.saved} saved, ${summary.failed} failed in ${(summary.elapsedMs / 1000).toFixed(1)} s`);
    for (const line of describeHostileFigures(figures)) t.diagnostic(line);
    t.diagnostic(`routes: ${JSON.stringify(egress)}`);
    for (const check of checks) assert.ok(check.ok, check.what);
    // A wait of over a minute: its progress reporter's queries once gathered a listener each on one signal.
    assert.doesNotMatch(run.stderr, /MaxListenersExceededWarning/);
  });
});
