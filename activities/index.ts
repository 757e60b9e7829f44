import type { Pool } from 'pg';
import { createCrawlBatch } from './crawl-batch';
import { CrawlStore } from './crawl-store';
import { HostPacer } from './host-pacer';
import { createFrontierActivities } from './frontier-activities';
import { RobotsCache } from './robots-cache';
import { fetchRobotsTxt } from './robots-fetch';
import { createSitemapActivities } from './sitemaps';

export interface ActivityDeps {
  pool: Pool;
}

/** Every side effect of a crawl, as plain async functions bound to their dependencies. */
export function createActivities({ pool }: ActivityDeps) {
  const robots = new RobotsCache(pool, fetchRobotsTxt);
  const crawls = new CrawlStore(pool);
  const hostPacer = new HostPacer(pool);
  return {
    ...createFrontierActivities(pool, crawls),
    ...createCrawlBatch({ pool, robots, crawls, hostPacer }),
    ...createSitemapActivities({ pool, robots, crawls }),
  };
}

export type Activities = ReturnType<typeof createActivities>;
