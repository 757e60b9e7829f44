import type { Pool } from 'pg';
import type { ReconcileResult, SeedRequest, SeedResult } from '../src/crawl-types';
import { hostQueues, insertSeeds, releaseLeases } from './frontier-store';

export function createFrontierActivities(pool: Pool) {
  return {
    /** Records the crawl and queues its seeds; returns what is queued per host. */
    async seedFrontier({ crawlId, seeds, settings }: SeedRequest): Promise<SeedResult> {
      await insertSeeds(pool, crawlId, { seeds, ...settings }, seeds);
      const queuedByHost: Record<string, number> = {};
      for (const [host, queue] of Object.entries(await hostQueues(pool, crawlId))) queuedByHost[host] = queue.queued;
      return { queuedByHost };
    },

    /** Called by the workflow when it has no batch in flight: any lease left is an orphan. */
    async reconcileFrontier({ crawlId }: { crawlId: string }): Promise<ReconcileResult> {
      const released = await releaseLeases(pool, crawlId);
      return { hosts: await hostQueues(pool, crawlId), released };
    },
  };
}
