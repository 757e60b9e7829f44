import { NativeConnection, Worker } from '@temporalio/worker';
import type { Pool } from 'pg';
import { createActivities } from '../activities';

export interface CrawlWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  /** Batches this worker runs at once (each fetches up to its own concurrency). @default 8 */
  maxConcurrentBatches?: number;
  /** Modules exporting workflow `interceptors` (tests build workflow variants with them). */
  workflowInterceptorModules?: string[];
}

/** A worker that runs crawl workflows and their batches. */
export function createCrawlWorker({ connection, namespace, taskQueue, pool, maxConcurrentBatches = 8, workflowInterceptorModules }: CrawlWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    workflowsPath: require.resolve('../workflows'),
    activities: createActivities({ pool }),
    maxConcurrentActivityTaskExecutions: maxConcurrentBatches,
    interceptors: { workflowModules: workflowInterceptorModules },
  });
}
