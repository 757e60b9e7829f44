/**
 * `npm run chaos`: proves the promise — start a crawl, kill anything, and
 * every in-scope page is fetched and saved exactly once.
 *
 * Crawls a local multi-host site full of traps (bench/chaos-site.ts) at a
 * limited per-host rate with `--workers` real `tcrawl worker` processes, on
 * a private Temporal dev server (file database) and a private embedded
 * Postgres, while bench/chaos-faults.ts SIGKILLs workers (some inside a save
 * transaction), the Temporal server and Postgres; the workflow is forced to
 * continue-as-new every few batches. Then it measures, from Postgres and the
 * site's request counts, what was saved, lost, doubled and fetched twice,
 * and prints a table and one JSON line. Exits 1 when the target is missed:
 * the crawl completes, 0 missing, 0 duplicate rows, counters = rows, and no
 * more duplicate fetches than URLs were leased at the moments of the faults.
 *
 *   npm run chaos -- [--pages 10000] [--workers 3] [--kill-every-ms 6000] [--seed 1] [--verbose]
 *                    [--hosts 4] [--rate 20] [--continue-as-new-after 25] [--min-worker-kills 30]
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { Client } from '@temporalio/client';
import { awaitCrawlResult, startCrawl, workflowIdFor } from '../src/client';
import type { CrawlSummary } from '../src/crawl-types';
import { parseCrawlSpec } from '../src/spec';
import { openStack, type TestStack } from '../test/helpers/stack';
import { waitForPollers } from '../test/helpers/worker-processes';
import { progressQuery, type crawlWorkflow } from '../workflows';
import { describeFault, injectFaults, sleepUnless, type Fault } from './chaos-faults';
import { WorkerFleet } from './chaos-fleet';
import { measure, table, targetMet, type ChaosEvidence, type ChaosFigures } from './chaos-report';
import { startPrivateServices } from './chaos-services';
import { HUGE_BYTES, startChaosSite, type ChaosSite } from './chaos-site';

interface ChaosRunOptions {
  pages: number;
  hosts: number;
  workers: number;
  killEveryMs: number;
  seed: number;
  verbose: boolean;
  /** Requests/s per host: what makes the crawl last minutes. */
  rate: number;
  continueAsNewAfterBatches: number;
  /** Fewer worker kills than this and the run proved too little: it fails (0 for quick trials). */
  minWorkerKills: number;
}

/** Kills inside a transaction a run must land to count as proof. */
const minKillsInTransaction = 3;
/** A crawl not finished by then is stuck: reported with the frontier's state. */
const crawlTimeoutMs = 45 * 60_000;
/** Batches each worker process runs at once. */
const workerConcurrency = 8;

const t0 = Date.now();
let verbose = false;
const timeline: string[] = [];
function log(line: string): void {
  const entry = `[chaos +${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`;
  timeline.push(entry);
  if (verbose) process.stderr.write(`${entry}\n`);
}
const say = (line: string) => process.stderr.write(`${line}\n`);

function parseOptions(argv: string[]): ChaosRunOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      pages: { type: 'string', default: '10000' },
      hosts: { type: 'string', default: '4' },
      workers: { type: 'string', default: '3' },
      'kill-every-ms': { type: 'string', default: '6000' },
      seed: { type: 'string', default: '1' },
      verbose: { type: 'boolean', default: false },
      rate: { type: 'string', default: '20' },
      'continue-as-new-after': { type: 'string', default: '25' },
      'min-worker-kills': { type: 'string', default: '30' },
    },
  });
  const integer = (name: keyof typeof values, min: number) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got ${values[name]}`);
    return n;
  };
  const positive = (name: keyof typeof values) => integer(name, 1);
  return {
    pages: positive('pages'),
    hosts: positive('hosts'),
    workers: positive('workers'),
    killEveryMs: positive('kill-every-ms'),
    seed: positive('seed'),
    verbose: values.verbose,
    rate: positive('rate'),
    continueAsNewAfterBatches: positive('continue-as-new-after'),
    minWorkerKills: integer('min-worker-kills', 0),
  };
}

/** mulberry32: a small seeded generator, so `--seed` replays the same choices. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function crawlSpec(site: ChaosSite, opts: ChaosRunOptions) {
  return parseCrawlSpec({
    seeds: site.seeds,
    maxPages: site.expected.size + 1000,
    maxDepth: 1000,
    rate: opts.rate,
    allowPrivate: true,
    retryBaseMs: 500,
    maxBodyBytes: HUGE_BYTES / 2,
    items: { selector: '.item', fields: { name: '.name' } },
  });
}

/** Runs of the crawl's workflow that ended in continue-as-new. */
async function continueAsNewRuns(client: Client, crawlId: string): Promise<number> {
  let continued = 0;
  for await (const run of client.workflow.list({ query: `WorkflowId = '${workflowIdFor(crawlId)}'` })) {
    if (run.status.name === 'CONTINUED_AS_NEW') continued++;
  }
  return continued;
}

async function frontierStates(stack: TestStack, crawlId: string): Promise<string> {
  const { rows } = await stack.pool.query(`SELECT state, count(*)::int AS n FROM frontier WHERE crawl_id = $1 GROUP BY state`, [crawlId]);
  return JSON.stringify(Object.fromEntries(rows.map((r) => [r.state, r.n])));
}

/**
 * Logs the frontier's states and the workflow's phase every 10 s until
 * `finished` settles: the run's pulse, in the timeline. Each query has a
 * deadline, so none is still pending (or being retried) when the caller
 * closes the connection after awaiting this.
 */
async function logProgress(stack: TestStack, crawlId: string, finished: Promise<unknown>): Promise<void> {
  let done = false;
  void finished.finally(() => (done = true));
  const handle = stack.client.workflow.getHandle<typeof crawlWorkflow>(workflowIdFor(crawlId));
  for (;;) {
    await sleepUnless(() => done, 10_000);
    if (done) return;
    const [states, progress] = await Promise.all([
      frontierStates(stack, crawlId).catch((error: Error) => `unavailable (${error.message})`),
      stack.client.connection.withDeadline(Date.now() + 2000, () => handle.query(progressQuery)).catch(() => undefined),
    ]);
    const workflow = progress ? `${progress.phase}, ${progress.inFlightBatches} batches in flight` : 'no answer to the progress query';
    log(`frontier ${states}; workflow ${workflow}`);
  }
}

/** The result, or a failure after `crawlTimeoutMs` naming the frontier's state and the URLs still leased. */
async function resultWithin(stack: TestStack, crawlId: string): Promise<CrawlSummary> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(async () => {
      const leased = await stack.pool.query(`SELECT url, batch_id, leased_at FROM frontier WHERE crawl_id = $1 AND state = 'leased' LIMIT 20`, [crawlId]).catch(() => ({ rows: [] }));
      reject(new Error(`the crawl did not finish within ${crawlTimeoutMs / 60_000} min; frontier ${await frontierStates(stack, crawlId).catch(() => '?')}; leased: ${JSON.stringify(leased.rows)}`));
    }, crawlTimeoutMs);
  });
  try {
    return await Promise.race([awaitCrawlResult(stack.client, crawlId, (error) => log(`waiting for the result through an outage: ${error.message}`)), stuck]);
  } finally {
    clearTimeout(timer);
  }
}

async function run(opts: ChaosRunOptions): Promise<{ figures: ChaosFigures; evidence: ChaosEvidence; faults: Fault[]; unexpectedExits: string[] }> {
  const site = await startChaosSite({ hosts: opts.hosts, pagesPerHost: Math.ceil(opts.pages / opts.hosts) });
  const services = await startPrivateServices(log);
  // openStack and the worker processes find the private services here (and only here: nothing else reads them).
  process.env.TEMPORAL_ADDRESS = services.temporalAddress;
  process.env.DATABASE_URL = services.databaseUrl;
  const stack = await openStack();
  const crawlId = `chaos-${randomBytes(4).toString('hex')}`;
  const taskQueue = crawlId;
  const fleet = new WorkerFleet(stack, taskQueue, opts.workers, workerConcurrency, log);
  try {
    say(`chaos: ${site.expected.size} URLs on ${opts.hosts} hosts at ${opts.rate}/s each, ${opts.workers} workers; Temporal ${services.temporalAddress}, Postgres ${services.databaseUrl}`);
    await waitForPollers(stack, taskQueue, fleet.processes());
    const startedAtMs = Date.now();
    await startCrawl(stack.client, taskQueue, crawlId, crawlSpec(site, opts), { continueAsNewAfterBatches: opts.continueAsNewAfterBatches });
    log(`crawl ${crawlId} started`);
    const result = resultWithin(stack, crawlId);
    const progressLogged = logProgress(stack, crawlId, result.catch(() => undefined));
    const expectedPages = [...site.expected.values()].filter((o) => o.state === 'done').length;
    const faults = await injectFaults(
      { crawlId, pool: stack.pool, fleet, services, expectedPages, startedAtMs, log },
      { killEveryMs: opts.killEveryMs, random: seededRandom(opts.seed), temporalAt: 0.3, postgresAt: 0.6, downMs: 3000 },
      result.catch(() => undefined),
    );
    const summary = await result;
    await progressLogged;
    const wallSeconds = (Date.now() - startedAtMs) / 1000;
    log(`crawl finished: saved ${summary.saved}, failed ${summary.failed}, skipped ${summary.skipped}, retried ${summary.retried}`);
    const measured = await measure({ pool: stack.pool, crawlId, site, summary, faults, continueAsNewRuns: await continueAsNewRuns(stack.client, crawlId), wallSeconds });
    return { ...measured, faults, unexpectedExits: fleet.unexpectedExits };
  } catch (error) {
    if (!verbose) say(timeline.join('\n')); // the evidence, unless it was shown as it happened
    throw error;
  } finally {
    await fleet.stop();
    await stack.close();
    await services.close();
    await site.close();
  }
}

function report(opts: ChaosRunOptions, { figures, evidence, faults, unexpectedExits }: Awaited<ReturnType<typeof run>>): boolean {
  const met = targetMet(figures);
  const enoughChaos = figures.workerKills >= opts.minWorkerKills && figures.killsInTransaction >= Math.min(minKillsInTransaction, opts.minWorkerKills);
  if (!met || opts.verbose) {
    say(`faults:\n${faults.map(describeFault).join('\n')}`);
    for (const [what, list] of Object.entries(evidence)) if (list.length > 0) say(`${what} (${list.length}):\n  ${list.slice(0, 30).join('\n  ')}`);
    if (unexpectedExits.length > 0) say(`workers that exited on their own:\n${unexpectedExits.join('\n')}`);
  }
  process.stdout.write(`${table(figures)}\n`);
  const verdict = !met ? 'TARGET MISSED' : enoughChaos ? 'target met' : `TOO LITTLE CHAOS (need ≥ ${opts.minWorkerKills} worker kills, ≥ ${minKillsInTransaction} inside a transaction)`;
  process.stdout.write(`${verdict}\n`);
  process.stdout.write(`${JSON.stringify({ ...figures, targetMet: met, enoughChaos, seed: opts.seed, workers: opts.workers, killEveryMs: opts.killEveryMs })}\n`);
  return met && enoughChaos;
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2));
  verbose = opts.verbose;
  return report(opts, await run(opts)) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
