/**
 * Stable codes (ApplicationFailure types) of the activity failures that
 * retrying on the same worker cannot fix. The workflow matches on them, so
 * they live here, where workflow code may import them; activities raise them.
 */
export const activityFailureCodes = {
  /** This worker's database has no such crawl, or another one of that id: its DATABASE_URL differs from the crawl's. */
  wrongDatabase: 'TCRAWL_WRONG_DATABASE',
  /** The crawl id names another crawl in this database already. */
  crawlExists: 'TCRAWL_CRAWL_EXISTS',
  /** A batch failed `maxBatchAttempts` times; its leases were given back. */
  batchFailed: 'TCRAWL_BATCH_FAILED',
} as const;
