import type { Pool } from 'pg';
import { createCrawlBatch } from './crawl-batch';
import { CrawlStore } from './crawl-store';
import type { CrawlMetrics } from './crawl-metrics';
import { EgressHealth } from './egress-health';
import { HostPacer } from './host-pacer';
import { createFrontierActivities } from './frontier-activities';
import { RobotsCache } from './robots-cache';
import { fetchRobotsTxt } from './robots-fetch';
import { createSitemapActivities } from './sitemaps';

export interface ActivityDeps {
  pool: Pool;
  /** Egress routes' health, shared with every worker through the database: one per worker. @default a new one on `pool` */
  egress?: EgressHealth;
  /** Where the batches count what they do. @default counted nowhere */
  metrics?: CrawlMetrics;
}

/** Every side effect of a crawl, as plain async functions bound to their dependencies. */
export function createActivities({ pool, egress = new EgressHealth(pool), metrics }: ActivityDeps) {
  const robots = new RobotsCache(pool, (url, settings, beforeRequest) => fetchRobotsTxt(url, settings, beforeRequest, egress));
  const crawls = new CrawlStore(pool);
  const hostPacer = new HostPacer(pool);
  return {
    ...createFrontierActivities(pool, crawls),
    ...createCrawlBatch({ pool, robots, crawls, hostPacer, egress, metrics }),
    ...createSitemapActivities({ pool, robots, crawls, egress }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
