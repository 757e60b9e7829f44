import type { ActivityOptions } from '@temporalio/workflow';

/** The frontier's bookkeeping (seed, reconcile, steer, list, re-queue): short statements, retried until the database answers. */
export const frontierActivityOptions: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
};

/**
 * Sitemap reading is paced like any request (a Crawl-delay of a minute, 100 files): it may take hours,
 * heartbeats its progress, and a new attempt resumes from the last heartbeat.
 */
export const sitemapActivityOptions: ActivityOptions = {
  startToCloseTimeout: '12 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
};
