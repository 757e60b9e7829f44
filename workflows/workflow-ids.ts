/**
 * Workflow ids, for clients and for the workflow itself (which starts its
 * shards by them): a crawl's is `crawl-<id>`, a shard's (spec `shards`) is
 * the crawl's and its index.
 */
export function workflowIdFor(crawlId: string): string {
  return `crawl-${crawlId}`;
}

export function shardWorkflowIdFor(crawlId: string, index: number): string {
  return `${workflowIdFor(crawlId)}/shard-${index}`;
}
