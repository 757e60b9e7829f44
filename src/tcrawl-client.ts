import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Pool } from 'pg';
import { storedCrawl } from '../activities/crawl-store';
import { countFailedUrls } from '../activities/frontier-store';
import {
  awaitCrawlResult,
  cancelCrawl,
  crawlExistsError,
  crawlStatus,
  pauseCrawl,
  resumeCrawl,
  retryFailedInRunningCrawl,
  setCrawlRate,
  startCrawl,
  startRerun,
  workflowIdFor,
  type CrawlStatus,
} from './client';

export { CrawlCancelledError } from './client';
import { runtimeConfig, type RuntimeConfig } from './config';
import type { CrawlProgress, CrawlSummary, RequeueFilter, SetRateRequest } from './crawl-types';
import { InvalidInputError, TcrawlError } from './errors';
import { createPool, migrate } from './infra/database';
import { missingSearchAttributes } from './infra/search-attributes';
import { ensureServices, type Services } from './services';
import { connectClient, connectWorker } from './temporal-connection';
import { parseCrawlSpec, type CrawlSpec, type CrawlSpecInput } from './spec';
import { createCrawlWorker, runWorkerUntil, type Drain } from './worker';
import { listCrawls, type CrawlListRow, type ListCrawlsOptions } from './operate/list';
import { deleteCrawl, type CrawlDeletion, type DeleteCrawlOptions } from './results/delete';
import { exportRecords, exportRows, type ExportOptions, type RecordStream } from './results/export';
import { writeOutputs, type OutputReport } from './results/outputs';
import type { ExportFormat, ExportKind, ExportRecords } from './results/export-format';
import { replayCrawl, type CrawlReplay, type ReplayCrawlOptions } from './operate/replay';
import { buildReport, type ReportOptions } from './report/build-report';

export interface ConnectOptions {
  /** Where TEMPORAL_ADDRESS, TEMPORAL_TLS*, TEMPORAL_API_KEY, DATABASE_URL, TEMPORAL_NAMESPACE, TCRAWL_TASK_QUEUE and TCRAWL_DATA_DIR are read. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Notes on the services (starting the local ones, a missing setup). @default lines to stderr */
  log?: (line: string) => void;
  /** Postgres connections at most; a worker run by {@link TcrawlClient.runWorker} shares them. @default 10 */
  poolSize?: number;
}

/**
 * Connects to tcrawl's services as the CLI does: TEMPORAL_ADDRESS and
 * DATABASE_URL when set, else the local Temporal dev server and embedded
 * Postgres under the data folder, started on demand and left running.
 *
 * @example
 * const tcrawl = await connect();
 * const crawl = await tcrawl.startCrawl({ seeds: ['https://example.com/'], maxPages: 100 });
 * const summary = await crawl.result();
 * await tcrawl.close();
 */
export async function connect(options: ConnectOptions = {}): Promise<TcrawlClient> {
  const config = runtimeConfig(options.env);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const services = await ensureServices(config, { detached: true, log });
  const pool = createPool(services.databaseUrl, options.poolSize ?? 10);
  try {
    await migrate(pool);
    const connection = await connectClient(services.temporalAddress, config);
    return new TcrawlClient(config, services, new Client({ connection, namespace: config.temporalNamespace }), pool, log);
  } catch (error) {
    await pool.end();
    throw error;
  }
}

/** A connection to tcrawl's Temporal server and database: starts crawls and finds them. */
export class TcrawlClient {
  private searchAttributes: Promise<boolean> | undefined;

  /** Use {@link connect}. */
  constructor(
    readonly config: RuntimeConfig,
    readonly services: Services,
    /** The Temporal client, for what tcrawl does not wrap. */
    readonly temporal: Client,
    /** The crawl database (tables crawls, frontier, pages, items, robots). */
    readonly pool: Pool,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Validates `spec` and starts a crawl. `id` names it (default
   * `<host>-<timestamp>-<random>`); an id used before is refused with
   * `TCRAWL_CRAWL_EXISTS`. The crawl runs while a worker serves the task
   * queue: `tcrawl worker`, or {@link runWorker}.
   */
  startCrawl(spec: CrawlSpecInput, options: { id?: string } = {}): Promise<CrawlHandle> {
    return this.startParsed(parseCrawlSpec(spec), options);
  }

  /** {@link startCrawl} for a spec validated already (the CLI's, built from flags). */
  async startParsed(parsed: CrawlSpec, options: { id?: string } = {}): Promise<CrawlHandle> {
    const crawlId = options.id ?? newCrawlId(parsed.seeds[0]);
    assertCrawlId(crawlId);
    // Temporal refuses a used workflow id; this catches an id whose rows outlived their Temporal history.
    if ((await this.pool.query('SELECT 1 FROM crawls WHERE crawl_id = $1', [crawlId])).rowCount) throw crawlExistsError(crawlId);
    await startCrawl(this.temporal, this.config.taskQueue, crawlId, parsed, { searchAttributes: await this.hasSearchAttributes() });
    return this.crawl(crawlId);
  }

  /** A handle on an existing crawl (nothing is checked until it is used). */
  crawl(crawlId: string): CrawlHandle {
    return new CrawlHandle(this, crawlId);
  }

  /** The crawls the Temporal server knows, one row per crawl (its latest execution), as `tcrawl list` shows them. */
  list(options: ListCrawlsOptions = {}): Promise<CrawlListRow[]> {
    return listCrawls(this.temporal, options);
  }

  /**
   * A crawl's rows of one kind as a stream of text (JSON lines or CSV), read
   * from Postgres through a cursor in constant memory, as `tcrawl export` writes them.
   */
  export(crawlId: string, options: ExportOptions & { format: ExportFormat }): Promise<Readable> {
    return exportRows(this.pool, crawlId, options);
  }

  /** The same rows as typed records: `for await (const page of await tcrawl.records(id, { what: 'pages' }))`. */
  records<W extends ExportKind>(crawlId: string, options: ExportOptions<W>): Promise<RecordStream<ExportRecords[W]>> {
    return exportRecords(this.pool, crawlId, options);
  }

  /**
   * Writes the crawl's `outputs` (mirror, tar, jsonl) from its database, as
   * `tcrawl output`: complete whichever workers fetched what, and again at
   * any time (each output is replaced whole). Paths resolve against `cwd`.
   */
  writeOutputs(crawlId: string, options: { cwd?: string } = {}): Promise<OutputReport[]> {
    return writeOutputs(this.pool, crawlId, options);
  }

  /** Deletes a crawl's rows in every table and its workflow executions, as `tcrawl delete` (`force` cancels a running one first). */
  delete(crawlId: string, options: DeleteCrawlOptions = {}): Promise<CrawlDeletion> {
    return deleteCrawl(this.pool, this.temporal, crawlId, options);
  }

  /** A crawl's report: one self-contained HTML page of charts from its rows, as `tcrawl report` writes it. */
  report(crawlId: string, options: ReportOptions = {}): Promise<string> {
    return buildReport(this.pool, crawlId, options);
  }

  /** Replays every execution of the crawl's workflow against this release's workflow code, as `tcrawl replay` does. */
  replay(crawlId: string, options: ReplayCrawlOptions = {}): Promise<CrawlReplay> {
    return replayCrawl(this.temporal, crawlId, options);
  }

  /**
   * Runs a worker in this process until `stop()`: it runs crawl workflows and
   * their batches for this client's task queue, beside any other worker.
   */
  async runWorker(options: { maxConcurrentBatches?: number } = {}): Promise<RunningWorker> {
    const connection = await connectWorker(this.services.temporalAddress, this.config);
    const worker = await createCrawlWorker({ connection, namespace: this.config.temporalNamespace, taskQueue: this.config.taskQueue, pool: this.pool, ...options });
    let requestStop!: () => void;
    const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
    const ran = runWorkerUntil(worker, stopRequested).then(async (drain) => {
      if (drain === 'drained') await connection.close();
      return drain;
    });
    return {
      stop: () => {
        requestStop();
        return ran;
      },
    };
  }

  /** Whether crawls can carry tcrawl's search attributes here: asked once, with a note when `tcrawl setup` is missing. */
  hasSearchAttributes(): Promise<boolean> {
    this.searchAttributes ??= missingSearchAttributes(this.temporal.connection, this.config.temporalNamespace).then((missing) => {
      if (missing.length > 0) this.log(`Note: search attributes ${missing.join(', ')} are not registered in namespace ${this.config.temporalNamespace}; run \`tcrawl setup\` to see crawls' progress in the Web UI's list.`);
      return missing.length === 0;
    });
    return this.searchAttributes;
  }

  /** Closes the connections (services started by {@link connect} keep running: `tcrawl down` stops them). */
  async close(): Promise<void> {
    await this.temporal.connection.close();
    await this.pool.end();
  }
}

/** A running worker of {@link TcrawlClient.runWorker}. */
export interface RunningWorker {
  /** Stops polling and drains: batches in flight get a grace period, then are handed back to Temporal. */
  stop(): Promise<Drain>;
}

/** One crawl: its progress and result, and how to steer it. */
export class CrawlHandle {
  /** The crawl's Temporal workflow id, as the Web UI and `temporal` CLI show it. */
  readonly workflowId: string;

  constructor(
    private readonly tcrawl: TcrawlClient,
    readonly crawlId: string,
  ) {
    this.workflowId = workflowIdFor(crawlId);
  }

  /**
   * Waits for the crawl to finish and returns its summary (waiting through
   * Temporal outages). A cancelled crawl rejects with `TCRAWL_CRAWL_CANCELLED`
   * (the error's `summary` holds its final figures); a failed one, with Temporal's error.
   */
  result(): Promise<CrawlSummary> {
    return awaitCrawlResult(this.tcrawl.temporal, this.crawlId, () => undefined);
  }

  /** Live progress from the running workflow (null when no worker answers), or the final figures of a finished crawl. */
  async progress(): Promise<CrawlProgress | null> {
    return (await this.status()).progress;
  }

  /** Temporal's execution status beside the progress, and activities being retried. */
  status(): Promise<CrawlStatus> {
    return crawlStatus(this.tcrawl.temporal, this.crawlId);
  }

  /** No new batches; those in flight finish. Resolves once the workflow has taken it (phase `paused`). */
  pause(): Promise<CrawlProgress> {
    return pauseCrawl(this.tcrawl.temporal, this.crawlId);
  }

  /**
   * Resumes a paused crawl; a cancelled (or failed, terminated, timed out)
   * crawl goes on as a new execution of the same crawl, from its frontier.
   */
  async resume(): Promise<{ rerun: boolean }> {
    const status = await this.status();
    if (status.status === 'RUNNING') {
      await resumeCrawl(this.tcrawl.temporal, this.crawlId);
      return { rerun: false };
    }
    if (status.status === 'COMPLETED') {
      throw new InvalidInputError(`Crawl "${this.crawlId}" has finished: there is nothing to resume. To fetch its failed URLs again: tcrawl retry-failed ${this.crawlId}`, 'TCRAWL_NOT_RESUMABLE');
    }
    await this.rerun({});
    return { rerun: true };
  }

  /** Cancels the crawl and waits until it has wound down; returns its final figures. It can be resumed later. */
  cancel(): Promise<CrawlSummary | null> {
    return cancelCrawl(this.tcrawl.temporal, this.crawlId);
  }

  /** A new rate for one host, one rate group, the crawl's total, or the default per-host rate. */
  setRate(rate: number, target: SetRateRequest['target'] = { default: true }): Promise<CrawlProgress['limits']> {
    return setCrawlRate(this.tcrawl.temporal, this.crawlId, { target, rate });
  }

  /**
   * Re-queues the crawl's failed URLs (all, or those with one of `reasons` /
   * `statuses`) and crawls them: in the running workflow, or as a new
   * execution of the crawl if it has finished. `requeued` counts them (for
   * a new execution: those it will re-queue as it starts).
   */
  async retryFailed(filter: RequeueFilter = {}): Promise<{ requeued: number; rerun: boolean }> {
    for (;;) {
      const status = await this.status().catch((error: unknown) => {
        if (error instanceof TcrawlError && error.code === 'TCRAWL_UNKNOWN_CRAWL') return null; // Its history may be gone; its rows decide.
        throw error;
      });
      if (status?.status === 'RUNNING') return { ...(await retryFailedInRunningCrawl(this.tcrawl.temporal, this.crawlId, filter)), rerun: false };
      const requeued = await countFailedUrls(this.tcrawl.pool, this.crawlId, filter);
      if (requeued === 0) return { requeued, rerun: false };
      try {
        await this.rerun({ retryFailed: filter });
        return { requeued, rerun: true };
      } catch (error) {
        // Another client started an execution meanwhile: ask that one.
        if (!(error instanceof WorkflowExecutionAlreadyStartedError)) throw error;
      }
    }
  }

  private async rerun(options: { retryFailed?: RequeueFilter }): Promise<void> {
    const stored = await storedCrawl(this.tcrawl.pool, this.crawlId);
    if (!stored) throw new InvalidInputError(`No crawl with id "${this.crawlId}" in the database ${this.tcrawl.config.databaseUrl ? 'DATABASE_URL' : 'of the embedded Postgres'}`, 'TCRAWL_UNKNOWN_CRAWL');
    await startRerun(this.tcrawl.temporal, this.tcrawl.config.taskQueue, stored, { ...options, searchAttributes: await this.tcrawl.hasSearchAttributes() });
  }
}

/** Crawl ids are workflow ids and file names in exports: a safe alphabet. */
export function assertCrawlId(crawlId: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(crawlId)) {
    throw new InvalidInputError(`Crawl id "${crawlId}" may only use letters, digits, '.', '_' and '-' (at most 128, starting with a letter or digit)`, 'TCRAWL_INVALID_ID');
  }
}

/** `<host>-<yyyymmdd-hhmmss>-<4 hex>`. */
export function newCrawlId(seed: string): string {
  const host = new URL(seed).hostname.replace(/[^A-Za-z0-9.-]/g, '-');
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${host}-${stamp}-${randomBytes(2).toString('hex')}`;
}

export type { CrawlSpec };
