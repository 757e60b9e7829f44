import type { Pool } from 'pg';
import { boundedHostQueues, queuedCount, type HostQueue } from './frontier-store';

/** A batch counts each of its hosts' queued URLs up to this many. */
const countUpTo = 10_000;
/** A host with more is counted in full at most this often per worker process. */
const fullCountEveryMs = 10_000;
/** Full counts kept at most (one per host of a crawl that has more than `countUpTo` queued). */
const maxKeptCounts = 10_000;

interface FullCount {
  queued: number;
  atMs: number;
  /** Set while a count is being read: batches of the host ending at once share it. */
  reading: Promise<number> | null;
}

/**
 * The queues a batch reports for its hosts as it ends, in work that does not
 * grow with a queue: the workflow schedules a host by whether it has work
 * and enough for its next grant, so a count up to `countUpTo` decides that,
 * and a host with more shows (in progress and `TcrawlQueued`) its last full
 * count, at most `fullCountEveryMs` old, or `countUpTo` if that is higher.
 */
export class HostQueueCounter {
  private readonly fullCounts = new Map<string, FullCount>();

  constructor(private readonly pool: Pool) {}

  async queuesOf(crawlId: string, hosts: string[]): Promise<Record<string, HostQueue>> {
    const { queues, capped } = await boundedHostQueues(this.pool, crawlId, hosts, countUpTo);
    await Promise.all(
      capped.map(async (host) => {
        queues[host].queued = Math.max(queues[host].queued, await this.fullCount(crawlId, host));
      }),
    );
    return queues;
  }

  private async fullCount(crawlId: string, host: string): Promise<number> {
    const key = `${crawlId} ${host}`;
    const now = Date.now();
    const known = this.fullCounts.get(key);
    if (known?.reading) return known.reading;
    if (known && now - known.atMs < fullCountEveryMs) return known.queued;
    if (!known && this.fullCounts.size >= maxKeptCounts) this.forgetOldest();
    const entry: FullCount = known ?? { queued: 0, atMs: 0, reading: null };
    entry.reading = queuedCount(this.pool, crawlId, host).then(
      (queued) => {
        Object.assign(entry, { queued, atMs: Date.now(), reading: null });
        return queued;
      },
      (error: unknown) => {
        entry.reading = null;
        throw error;
      },
    );
    // Last in the map's order, which is the order they were counted in.
    this.fullCounts.delete(key);
    this.fullCounts.set(key, entry);
    return entry.reading;
  }

  /** The first in the map's order: counted longest ago. */
  private forgetOldest(): void {
    const oldest = this.fullCounts.keys().next();
    if (!oldest.done) this.fullCounts.delete(oldest.value);
  }
}
