import type { Pool } from 'pg';
import { maxReportedHosts, type ReconcileRequest, type ReconcileResult, type RequeueRequest, type RequeueResult, type QueuedHostsRequest, type QueuedHostsResult, type SeedRequest, type SeedResult, type SteerRequest } from '../src/crawl-types';
import type { CrawlStore } from './crawl-store';
import { frontierCounts, hostQueues, insertUrls, releaseLeases, requeueFailedUrls, withTransaction } from './frontier-store';

export function createFrontierActivities(pool: Pool, crawls: CrawlStore) {
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
    async queuedHosts(request: QueuedHostsRequest): Promise<QueuedHostsResult> {
      await crawls.load(request);
      const { queues, omitted } = await hostQueues(pool, request.crawlId, { maxHosts: request.maxHosts });
      return { hosts: queues, hostsOmitted: omitted };
    },

    /** Called by the workflow when it has no batch in flight: any lease left is an orphan. */
    async reconcileFrontier(request: ReconcileRequest): Promise<ReconcileResult> {
      if (request.token !== undefined) await crawls.load(request);
      const released = await releaseLeases(pool, request.crawlId);
      const { queues, omitted } = await hostQueues(pool, request.crawlId, { maxHosts: maxReportedHosts });
      return { hosts: queues, hostsOmitted: omitted, released, counts: await frontierCounts(pool, request.crawlId) };
    },

    /**
     * Tells the crawl's windowed batches in flight that the workflow changed
     * something they must not outlast (a rate, a pause, a cancel, a
     * continue-as-new): each stops starting requests and reports.
     */
    async markSteered(request: SteerRequest): Promise<void> {
      if (request.token !== undefined) await crawls.load(request);
      await crawls.markSteered(request.crawlId, request.seq);
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
