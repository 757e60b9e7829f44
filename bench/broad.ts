/**
 * `npm run bench:broad`: a polite broad crawl — many hosts, a few pages each,
 * every host at a low rate — and how much of its allowance (hosts × rate
 * request starts per second) it uses. Runs each shape in turn, side by side:
 * by default 200 hosts at `--rate 2` and 2,000 hosts at `--rate 0.2` (the
 * same 400 starts/s), 30 pages each, 20 ms latency, `--scope any`, on
 * loopback addresses (127.0.x.y). Prints, per run, what the *site* saw
 * (pages/s from the first request to the last, the share of the allowance,
 * the most starts of any host in any 1 s) and where the time went, from the
 * workflow's own history: batches, URLs per batch, how long batches waited
 * for a worker slot and ran, batches in flight on average, workflow tasks,
 * history events per page and the largest run's history.
 *
 * A shape `HOSTSxRATExSHARDS` splits the crawl over that many shard
 * workflows (spec `shards`), e.g. `--shapes 4000x0.1x1,4000x0.1x4` shows
 * where partitioning pays.
 *
 * With `--host-tree F` the crawl is seeded with one host and finds the others
 * by following links (host i's first page links to hosts F·i+1 … F·i+F), as a
 * crawl of the web does; without it every host is a seed. Each run also
 * prints the largest history event of any run (the largest payload a
 * workflow handed to or got from Temporal: inputs, results, continue-as-new
 * state), against Temporal's 2 MiB limit for one payload.
 *
 *   npm run bench:broad -- [--shapes 200x2,2000x0.2,4000x0.1x4] [--pages 30] [--latency 20] [--workers 1] [--worker-concurrency 32] [--host-tree 0]
 *
 * Services: TEMPORAL_ADDRESS / DATABASE_URL when set, else the local dev
 * server and embedded Postgres (stopped at the end if this started them).
 */
import { parseArgs } from 'node:util';
import { temporal } from '@temporalio/proto';
import { withPacingMargin } from '../activities/host-pacer';
import { shardWorkflowIdFor, startCrawl, workflowIdFor } from '../src/client';
import { runtimeConfig } from '../src/config';
import { isBatchActivity } from '../src/crawl-types';
import { ensureServices } from '../src/services';
import { parseCrawlSpec } from '../src/spec';
import { defaultMaxConcurrentBatches } from '../src/worker';
import { startCountingSite, type CountingHost } from '../test/fixtures/counting-site';
import { maxStartsInWindow, minGapMs } from '../test/helpers/rate-stats';
import { openStack, type TestStack } from '../test/helpers/stack';
import { kill, spawnWorkers, waitForPollers } from '../test/helpers/worker-processes';
import { runMain } from './run-main';

const log = (line: string) => process.stderr.write(`${line}\n`);
const EventType = temporal.api.enums.v1.EventType;

interface Shape {
  hosts: number;
  rate: number;
  /** The crawl's spec `shards`: child workflows it is split over by host. */
  shards: number;
}

interface Options {
  pages: number;
  latencyMs: number;
  workers: number;
  workerConcurrency: number;
  /** 0: every host is a seed; F: host 0 is, and page 0 of host i links to hosts F·i+1 … F·i+F. */
  hostTree: number;
}

/** Where a crawl's time went, read from its workflow histories (every run of the chain). */
interface HistoryProfile {
  runs: number;
  events: number;
  largestRunBytes: number;
  /** The largest history event of any run, bytes, and its type. */
  largestEventBytes: number;
  largestEventType: string;
  batches: number;
  /** Mean ms from a batch's scheduling to a worker starting it (all worker slots busy, or task dispatch). */
  meanQueuedMs: number;
  /** Mean ms a batch ran (its paced wait for its first start included). */
  meanRunMs: number;
  /** Σ (completed − scheduled) / wall time: batches the crawl kept in flight on average. */
  meanInFlight: number;
  workflowTasks: number;
  /** Mean ms from a workflow task's scheduling to its completion. */
  meanWorkflowTaskMs: number;
}

interface RunFigures extends Shape {
  allowancePerSec: number;
  pages: number;
  requests: number;
  seconds: number;
  pagesPerSec: number;
  /** Of the allowance: request starts per second over the run / allowance. */
  shareOfAllowance: number;
  maxHostStartsIn1s: number;
  /** The shortest gap between two starts at any host, ms (the rate's interval is the floor). */
  minHostGapMs: number;
  siteTime: SiteTime;
  profile: HistoryProfile;
}

/**
 * Where the site's time went, against the ideal: every host starting with
 * the run's first request and spaced exactly its interval (margin included)
 * to its last. The run's excess over that ideal is the hosts' late first
 * starts plus the gaps that ran longer than the interval.
 */
interface SiteTime {
  idealSeconds: number;
  /** Seconds after the run's first request that hosts made their first: median, 90th percentile, most. */
  firstStart: { p50: number; p90: number; max: number };
  /** Seconds per host of gaps beyond the interval: mean, most. */
  gapExcess: { mean: number; max: number };
  /** The host that finished last: when it began and its gaps' excess, seconds. */
  lastHost: { firstStart: number; gapExcess: number };
}

async function runShape(stack: TestStack, shape: Shape, opts: Options): Promise<RunFigures> {
  const site = await startCountingSite({ hosts: shape.hosts, pagesPerHost: opts.pages, latencyMs: opts.latencyMs, hostTree: opts.hostTree || undefined });
  const taskQueue = `bench-broad-${process.pid}-${Date.now()}`;
  const crawlId = taskQueue;
  const workers = spawnWorkers(stack, taskQueue, opts.workers, { concurrency: opts.workerConcurrency });
  try {
    await waitForPollers(stack, taskQueue, workers);
    const spec = parseCrawlSpec({
      seeds: opts.hostTree ? [site.hosts[0]!.pageUrl(0)] : site.hosts.map((h) => h.pageUrl(0)),
      maxPages: shape.hosts * opts.pages + 10,
      maxDepth: 1000,
      scope: 'any',
      rate: shape.rate,
      concurrency: 2,
      allowPrivate: true,
      shards: shape.shards,
    });
    log(`${shape.hosts} hosts × ${opts.pages} pages at ${shape.rate}/s per host (allowance ${shape.hosts * shape.rate}/s), ${shape.shards} shard(s), ${opts.workers} worker process(es)…`);
    await (await startCrawl(stack.client, taskQueue, crawlId, spec)).result();
    const starts = site.hosts.flatMap((h) => h.starts).sort((a, b) => a - b);
    const seconds = (starts[starts.length - 1]! - starts[0]!) / 1000;
    const { rows } = await stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1', [crawlId]);
    const pages = rows[0]!.n;
    const allowancePerSec = shape.hosts * shape.rate;
    return {
      ...shape,
      allowancePerSec,
      pages,
      requests: starts.length,
      seconds,
      pagesPerSec: pages / seconds,
      shareOfAllowance: starts.length / seconds / allowancePerSec,
      maxHostStartsIn1s: Math.max(...site.hosts.map((h: CountingHost) => maxStartsInWindow(h.starts))),
      minHostGapMs: Math.min(...site.hosts.map((h: CountingHost) => minGapMs(h.starts))),
      siteTime: siteTime(site.hosts, withPacingMargin(1000 / shape.rate)),
      profile: await profileHistory(stack, crawlId, shape.shards),
    };
  } finally {
    await Promise.all(workers.map(kill));
    await site.close();
  }
}

function siteTime(hosts: CountingHost[], intervalMs: number): SiteTime {
  const runStart = Math.min(...hosts.map((h) => h.starts[0]!));
  const perHost = hosts.map((h) => {
    const first = h.starts[0]!;
    const last = h.starts[h.starts.length - 1]!;
    return { first: (first - runStart) / 1000, last, excess: Math.max(0, last - first - (h.starts.length - 1) * intervalMs) / 1000 };
  });
  const firsts = perHost.map((h) => h.first).sort((a, b) => a - b);
  const quantile = (q: number) => firsts[Math.min(firsts.length - 1, Math.floor(q * firsts.length))]!;
  const lastHost = perHost.reduce((a, b) => (b.last > a.last ? b : a));
  const maxStarts = Math.max(...hosts.map((h) => h.starts.length));
  return {
    idealSeconds: ((maxStarts - 1) * intervalMs) / 1000,
    firstStart: { p50: quantile(0.5), p90: quantile(0.9), max: firsts[firsts.length - 1]! },
    gapExcess: { mean: perHost.reduce((sum, h) => sum + h.excess, 0) / perHost.length, max: Math.max(...perHost.map((h) => h.excess)) },
    lastHost: { firstStart: lastHost.first, gapExcess: lastHost.excess },
  };
}

/** Every run of the crawl's workflow and, sharded, of each shard's. */
async function profileHistory(stack: TestStack, crawlId: string, shards: number): Promise<HistoryProfile> {
  const crawlWorkflowId = workflowIdFor(crawlId);
  const workflowIds = [crawlWorkflowId, ...Array.from({ length: shards > 1 ? shards : 0 }, (_, index) => shardWorkflowIdFor(crawlId, index))];
  const profile: HistoryProfile = { runs: 0, events: 0, largestRunBytes: 0, largestEventBytes: 0, largestEventType: '', batches: 0, meanQueuedMs: 0, meanRunMs: 0, meanInFlight: 0, workflowTasks: 0, meanWorkflowTaskMs: 0 };
  let queuedMs = 0;
  let runMs = 0;
  let inFlightMs = 0;
  let workflowTaskMs = 0;
  let first = Infinity;
  let last = 0;
  for (const workflowId of workflowIds) for await (const execution of stack.client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    const history = await stack.client.workflow.getHandle(workflowId, execution.runId).fetchHistory();
    const events = history.events ?? [];
    profile.runs++;
    profile.events += events.length;
    profile.largestRunBytes = Math.max(profile.largestRunBytes, temporal.api.history.v1.History.encode(history).finish().length);
    const at = new Map<number, number>();
    for (const event of events) {
      const ms = Number(event.eventTime?.seconds ?? 0) * 1000 + Math.floor((event.eventTime?.nanos ?? 0) / 1e6);
      const id = Number(event.eventId);
      at.set(id, ms);
      const bytes = temporal.api.history.v1.HistoryEvent.encode(event).finish().length;
      if (bytes > profile.largestEventBytes) {
        profile.largestEventBytes = bytes;
        profile.largestEventType = EventType[event.eventType ?? 0] ?? '?';
      }
      first = Math.min(first, ms);
      last = Math.max(last, ms);
      if (event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && isBatchActivity(event.activityTaskScheduledEventAttributes?.activityType?.name)) profile.batches++;
      if (event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) {
        const scheduled = at.get(Number(event.activityTaskStartedEventAttributes?.scheduledEventId));
        if (scheduled !== undefined) queuedMs += ms - scheduled;
      }
      if (event.eventType === EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) {
        const attributes = event.activityTaskCompletedEventAttributes;
        const scheduled = at.get(Number(attributes?.scheduledEventId));
        const started = at.get(Number(attributes?.startedEventId));
        if (scheduled !== undefined) inFlightMs += ms - scheduled;
        if (started !== undefined) runMs += ms - started;
      }
      if (event.eventType === EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) {
        profile.workflowTasks++;
        const scheduled = at.get(Number(event.workflowTaskCompletedEventAttributes?.scheduledEventId));
        if (scheduled !== undefined) workflowTaskMs += ms - scheduled;
      }
    }
  }
  profile.meanQueuedMs = queuedMs / Math.max(1, profile.batches);
  profile.meanRunMs = runMs / Math.max(1, profile.batches);
  profile.meanInFlight = inFlightMs / Math.max(1, last - first);
  profile.meanWorkflowTaskMs = workflowTaskMs / Math.max(1, profile.workflowTasks);
  return profile;
}

function row(r: RunFigures): string {
  const p = r.profile;
  const t = r.siteTime;
  return [
    `${`${r.hosts} hosts × ${r.rate}/s${r.shards > 1 ? `, ${r.shards} shards` : ''}`.padEnd(18)} ${r.pages} pages in ${r.seconds.toFixed(1)} s: ${r.pagesPerSec.toFixed(1)} pages/s, ` +
      `${(100 * r.shareOfAllowance).toFixed(1)}% of the ${r.allowancePerSec}/s allowance; busiest host ${r.maxHostStartsIn1s} starts in 1 s, shortest gap ${r.minHostGapMs.toFixed(0)} ms`,
    `    site's time: ideal ${t.idealSeconds.toFixed(1)} s; hosts' first start ${t.firstStart.p50.toFixed(1)} s (median), ${t.firstStart.p90.toFixed(1)} s (p90), ` +
      `${t.firstStart.max.toFixed(1)} s (last) after the run's first; gaps beyond the interval ${t.gapExcess.mean.toFixed(1)} s per host (mean), ${t.gapExcess.max.toFixed(1)} s (most); ` +
      `the host that finished last began at ${t.lastHost.firstStart.toFixed(1)} s and lost ${t.lastHost.gapExcess.toFixed(1)} s to gaps`,
    `    ${p.batches} batches (${(r.requests / Math.max(1, p.batches)).toFixed(2)} requests each): queued ${p.meanQueuedMs.toFixed(0)} ms, ran ${p.meanRunMs.toFixed(0)} ms on average; ` +
      `${p.meanInFlight.toFixed(1)} in flight on average`,
    `    ${p.workflowTasks} workflow tasks (${p.meanWorkflowTaskMs.toFixed(0)} ms each from scheduled to completed); ${p.events} history events in ${p.runs} runs: ` +
      `${(p.events / Math.max(1, r.pages)).toFixed(2)} per page; largest run ${(p.largestRunBytes / 1024).toFixed(0)} KiB; ` +
      `largest event ${(p.largestEventBytes / 1024).toFixed(0)} KiB (${p.largestEventType.replace('EVENT_TYPE_', '')}) of the 2,048 KiB payload limit`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shapes: { type: 'string', default: '200x2,2000x0.2' },
      pages: { type: 'string', default: '30' },
      latency: { type: 'string', default: '20' },
      workers: { type: 'string', default: '1' },
      'worker-concurrency': { type: 'string', default: String(defaultMaxConcurrentBatches) },
      'host-tree': { type: 'string', default: '0' },
    },
  });
  const shapes = values.shapes.split(',').map((entry): Shape => {
    const [hosts, rate, shards = 1] = entry.split('x').map(Number);
    if (!Number.isInteger(hosts) || !(hosts! > 0) || !(rate! > 0) || !Number.isInteger(shards) || !(shards > 0)) {
      throw new Error(`--shapes: "${entry}" is not HOSTSxRATE or HOSTSxRATExSHARDS (e.g. 200x2, 4000x0.1x4)`);
    }
    return { hosts: hosts!, rate: rate!, shards };
  });
  const opts: Options = { pages: Number(values.pages), latencyMs: Number(values.latency), workers: Number(values.workers), workerConcurrency: Number(values['worker-concurrency']), hostTree: Number(values['host-tree']) };
  const services = await ensureServices(runtimeConfig(), { detached: false, log });
  process.env.TEMPORAL_ADDRESS = services.temporalAddress;
  process.env.DATABASE_URL = services.databaseUrl;
  const stack = await openStack();
  try {
    const runs: RunFigures[] = [];
    for (const shape of shapes) {
      runs.push(await runShape(stack, shape, opts));
      log(row(runs[runs.length - 1]!));
    }
    process.stdout.write(`${runs.map(row).join('\n')}\n${JSON.stringify({ ...opts, runs })}\n`);
  } finally {
    await stack.close();
    await services.stop();
  }
}

runMain(main);
