import { createHash } from 'node:crypto';

/**
 * A sharded crawl (spec `shards` > 1) splits its hosts over child workflows
 * by a hash of the host name, so each child tracks and paces its own hosts
 * with its own history. The hash is md5's first 31 bits: Postgres computes
 * the same with `tcrawl_host_shard` (migration 8), so a shard's rows are
 * found in SQL without a column of their own.
 */
export function shardOfHost(host: string, shards: number): number {
  return (createHash('md5').update(host).digest().readUInt32BE(0) >>> 1) % shards;
}
