import { setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import type { CrawlPhase, CrawlProgress } from '../src/crawl-types';
import { currentDetails } from './current-details';
import { crawlSearchAttributes } from './search-attributes';

/** Search attributes are upserted at most this often (each upsert is a history event), and at every phase change. */
const searchAttributesEveryMs = 15_000;

type PublishedCounts = Pick<CrawlProgress, 'saved' | 'queued' | 'failed'>;

/**
 * What the Web UI shows without any command: current details on the
 * workflow's page (no history event; a worker answers the UI's query), and
 * search attributes in the list (throttled: each upsert is an event), for a
 * workflow started with them.
 */
export class ProgressPublisher {
  private published: { atMs: number; phase: CrawlPhase | null; values: string } = { atMs: 0, phase: null, values: '' };

  /** `publishes`: started with tcrawl's search attributes (registered on its server). */
  constructor(private readonly publishes: boolean) {}

  /** `attributesAllowed` is asked only when the workflow has search attributes (it may be a `patched()` check). */
  show(progress: CrawlProgress, attributesAllowed: () => boolean): void {
    setCurrentDetails(currentDetails(progress, Date.now()));
    if (!this.publishes || !attributesAllowed()) return;
    const values = publishedValues(progress);
    const due = Date.now() >= this.published.atMs + searchAttributesEveryMs;
    if (progress.phase === this.published.phase && (!due || values === this.published.values)) return;
    upsertSearchAttributes([
      { key: crawlSearchAttributes.phase, value: progress.phase },
      { key: crawlSearchAttributes.saved, value: progress.saved },
      { key: crawlSearchAttributes.queued, value: progress.queued },
      { key: crawlSearchAttributes.failed, value: progress.failed },
    ]);
    this.published = { atMs: Date.now(), phase: progress.phase, values };
  }

  /** When the search attributes are due again, if they lag behind these counts (a wake-up, so nothing shows stale for long). */
  nextAtMs(counts: PublishedCounts): number | null {
    if (!this.publishes || publishedValues(counts) === this.published.values) return null;
    return this.published.atMs + searchAttributesEveryMs;
  }
}

/** The counts the search attributes carry, to tell whether they changed. */
function publishedValues(p: PublishedCounts): string {
  return `${p.saved}/${p.queued}/${p.failed}`;
}
