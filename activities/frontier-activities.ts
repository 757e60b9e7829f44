import { ApplicationFailure } from '@temporalio/activity';
import type { Pool } from 'pg';
import { maxReportedHosts, type CrawlRef, type ReconcileRequest, type ReconcileResult, type RequeueRequest, type RequeueResult, type QueuedHostsRequest, type QueuedHostsResult, type SeedRequest, type SeedResult, type ShardQueuesRequest, type ShardQueuesResult, type SteerRequest } from '../src/crawl-types';
import type { CrawlStore } from './crawl-store';
import { frontierCounts, hostQueues, insertUrls, releaseLeases, requeueFailedUrls, shardQueues, withTransaction } from './frontier-store';

export function createFrontierActivities(pool: Pool, crawls: CrawlStore) {
  async function queuedHosts(request: QueuedHostsRequest): Promise<QueuedHostsResult> {
    await crawls.load(request);
    const { queues, omitted } = await hostQueues(pool, request.crawlId, { maxHosts: request.maxHosts, shard: request.shard });
    return { hosts: queues, hostsOmitted: omitted };
  }

  async function reconcileFrontier(request: ReconcileRequest): Promise<ReconcileResult> {
    if (request.token !== undefined) await crawls.load(request);
    const { crawlId, shard } = request;
    const released = await releaseLeases(pool, crawlId, shard);
    const { queues, omitted } = await hostQueues(pool, crawlId, { maxHosts: maxReportedHosts, shard });
    return { hosts: queues, hostsOmitted: omitted, released, counts: await frontierCounts(pool, crawlId, shard) };
  }

  async function markSteered(request: SteerRequest): Promise<number> {
    if (request.token !== undefined) await crawls.load(request);
    return crawls.markSteered(request.crawlId, request.seq, request.shard);
  }

  return {
    /**
     * Records the crawl (spec and token) and queues its seeds; returns what is
     * queued per host and what the frontier already holds — a new execution
     * of an existing crawl (a reset, a re-run) starts from those counts.
     */
    async seedFrontier(request: SeedRequest): Promise<SeedResult> {
      const { crawlId, seeds, settings } = request;
      await withTransaction(pool, async (client) => {
        await crawls.register(client, request, { seeds, ...settings });
        await insertUrls(client, crawlId, seeds.map((url) => ({ url, depth: 0, foundOn: null })));
      });
      const queuedByHost: Record<string, number> = {};
      const { queues, omitted } = await hostQueues(pool, crawlId, { maxHosts: maxReportedHosts });
      for (const [host, queue] of Object.entries(queues)) queuedByHost[host] = queue.queued;
      return { queuedByHost, hostsOmitted: omitted, database: await crawls.describeDatabase(), counts: await frontierCounts(pool, crawlId) };
    },

    /** The hosts with most queued URLs, for a workflow with room to track more (unlike a reconcile it releases nothing: batches may be in flight). */
    queuedHosts,

    /** Called by the workflow when it has no batch in flight: any lease left is an orphan. */
    reconcileFrontier,

    /**
     * Tells the crawl's windowed batches in flight that the workflow changed
     * something they must not outlast (a rate, a pause, a cancel, a
     * continue-as-new): each stops starting requests and reports. Returns
     * the count stored.
     */
    markSteered,

    /*
     * A shard's workflow (since v5) asks for its own hosts by these names: a worker from before shards,
     * mid-deploy, does not serve them (under the names above it would take the crawl's hosts for the shard's).
     */

    /** {@link queuedHosts} of the shard's hosts. */
    queuedShardHosts: (request: QueuedHostsRequest) => queuedHosts(withShard(request)),

    /** {@link reconcileFrontier} of the shard's hosts: the leases of other shards' batches stay. */
    reconcileShard: (request: ReconcileRequest) => reconcileFrontier(withShard(request)),

    /** {@link markSteered} for the shard's batches; a new execution of the shard asks with 0 to learn the count it goes on from. */
    steerShard: (request: SteerRequest) => markSteered(withShard(request)),

    /** A sharded crawl's frontier per shard: which shards have work, and the crawl's counts (since v5). */
    async shardQueues(request: ShardQueuesRequest): Promise<ShardQueuesResult> {
      await crawls.load(request);
      return { ...(await shardQueues(pool, request.crawlId, request.shards)), counts: await frontierCounts(pool, request.crawlId) };
    },

    /** `tcrawl retry-failed`: the crawl's failed URLs (all, or by reason / status) back in the queue. */
    async requeueFailed(request: RequeueRequest): Promise<RequeueResult> {
      await crawls.load(request);
      const { requeued, byHost, byStatus, byReason } = await requeueFailedUrls(pool, request.crawlId, request);
      // Bounded like every result: the workflow learns of hosts left out at its next reconcile.
      const hosts = Object.entries(byHost).sort(([, a], [, b]) => b - a);
      return { requeued, byHost: Object.fromEntries(hosts.slice(0, maxReportedHosts)), hostsOmitted: Math.max(0, hosts.length - maxReportedHosts), byStatus, byReason };
    },
  };
}

/** A shard's request: one without its shard would act on the whole crawl. */
function withShard<T extends CrawlRef>(request: T): T {
  if (!request.shard) throw ApplicationFailure.nonRetryable(`A shard activity for crawl ${request.crawlId} came without its shard`, 'TCRAWL_SHARD_MISSING');
  return request;
}
