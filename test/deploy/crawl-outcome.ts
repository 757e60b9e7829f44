/**
 * What a deploy mid-crawl must leave behind, read from Postgres and from the
 * crawl's history: every page saved once, nothing queued or leased, and who
 * ran what.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { isBatchActivity } from '../../src/crawl-types';
import type { Pool } from 'pg';

export interface CrawlOutcome {
  /** Saved URLs, sorted, one entry per `pages` row. */
  savedUrls: string[];
  /** Frontier rows still queued or leased. */
  unfinished: number;
}

export async function crawlOutcome(pool: Pool, crawlId: string): Promise<CrawlOutcome> {
  const pages = await pool.query<{ url: string }>('SELECT url FROM pages WHERE crawl_id = $1 ORDER BY url', [crawlId]);
  const open = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM frontier WHERE crawl_id = $1 AND state IN ('queued', 'leased')`, [crawlId]);
  return { savedUrls: pages.rows.map((row) => row.url), unfinished: open.rows[0].n };
}

export async function savedPages(pool: Pool, crawlId: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pages WHERE crawl_id = $1', [crawlId]);
  return rows[0].n;
}

export type HistoryEvents = NonNullable<Awaited<ReturnType<WorkflowHandle['fetchHistory']>>['events']>;

/** One batch that completed: the worker whose workflow task scheduled it, and the one that ran its last attempt. */
export interface BatchRun {
  scheduledBy: string;
  ranBy: string;
}

export function batchRuns(events: HistoryEvents): BatchRun[] {
  const byId = new Map(events.map((e) => [String(e.eventId), e]));
  return events.flatMap((event) => {
    const started = event.activityTaskStartedEventAttributes;
    const scheduled = started && byId.get(String(started.scheduledEventId))?.activityTaskScheduledEventAttributes;
    if (!started || !scheduled || !isBatchActivity(scheduled.activityType?.name)) return [];
    const task = byId.get(String(scheduled.workflowTaskCompletedEventId))?.workflowTaskCompletedEventAttributes;
    return [{ scheduledBy: task?.identity ?? '', ranBy: started.identity ?? '' }];
  });
}

/** Identities of the workers that started a workflow task of the crawl. */
export function workflowTaskWorkers(events: HistoryEvents): Set<string> {
  return new Set(events.flatMap((e) => e.workflowTaskStartedEventAttributes?.identity ?? []));
}
