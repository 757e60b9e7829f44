/**
 * A fleet of real `tcrawl worker` processes (bin/tcrawl.js, as users run
 * them) in numbered slots that are kept filled: a worker that dies, killed
 * by the chaos run or of its own accord, is replaced in its slot at once.
 * Each slot's processes connect to Postgres as application
 * `tcrawl-chaos-worker-<n>` (PGAPPNAME, read by node-postgres), so a backend
 * seen in pg_stat_activity names the slot whose process to kill.
 */
import type { ChildProcess } from 'node:child_process';
import type { TestStack } from '../test/helpers/stack';
import { kill, spawnWorkers, stderrTail } from '../test/helpers/worker-processes';

export const APP_NAME_PREFIX = 'tcrawl-chaos-worker-';
/** A worker that exits on its own (say, Temporal is down while it starts) is replaced after this pause, not in a tight loop. */
const respawnAfterCrashMs = 1000;

export class WorkerFleet {
  private readonly slots: ChildProcess[] = [];
  /** When each slot's current process was started, ms since the epoch. */
  private readonly spawnedAtMs: number[] = [];
  private readonly killedByUs = new WeakSet<ChildProcess>();
  private stopping = false;
  /** Exits we did not cause: `slot: code or signal`, with the process's last stderr. */
  readonly unexpectedExits: string[] = [];

  constructor(
    private readonly stack: TestStack,
    private readonly taskQueue: string,
    size: number,
    private readonly concurrency: number,
    private readonly log: (line: string) => void,
  ) {
    for (let n = 1; n <= size; n++) this.spawn(n);
  }

  get size(): number {
    return this.slots.length;
  }

  /** The current process of each slot (it may be starting up). */
  processes(): ChildProcess[] {
    return [...this.slots];
  }

  pidOf(slot: number): number | undefined {
    return this.slots[slot - 1].pid;
  }

  /**
   * The slots whose current process polls for batches (a new one bundles the
   * workflow code first, and holds no work until it polls): the ones worth
   * killing. Temporal's default worker identity is `pid@hostname`.
   */
  async pollingSlots(): Promise<number[]> {
    const activityQueue = 2; // TASK_QUEUE_TYPE_ACTIVITY
    const { pollers } = await this.stack.client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: this.taskQueue }, taskQueueType: activityQueue });
    const polling = new Set((pollers ?? []).map((p) => p.identity?.split('@')[0]));
    return this.slots.flatMap((proc, i) => (polling.has(String(proc.pid)) ? [i + 1] : []));
  }

  /** When the slot's current process was started: a backend older than that belonged to one already dead. */
  spawnedAt(slot: number): number {
    return this.spawnedAtMs[slot - 1];
  }

  /** The slot whose processes use this Postgres application name, if any. */
  slotOf(applicationName: string): number | undefined {
    const n = Number(applicationName.slice(APP_NAME_PREFIX.length));
    return applicationName.startsWith(APP_NAME_PREFIX) && n >= 1 && n <= this.slots.length ? n : undefined;
  }

  /**
   * SIGKILLs the slot's process — the signal is sent before this returns its
   * promise — and resolves once it is gone; a new one is already starting then.
   */
  kill(slot: number): Promise<void> {
    const proc = this.slots[slot - 1];
    this.killedByUs.add(proc);
    return kill(proc);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.slots.map(kill));
  }

  private spawn(slot: number): void {
    const [proc] = spawnWorkers(this.stack, this.taskQueue, 1, {
      concurrency: this.concurrency,
      env: { PGAPPNAME: `${APP_NAME_PREFIX}${slot}` },
    });
    this.slots[slot - 1] = proc;
    this.spawnedAtMs[slot - 1] = Date.now();
    this.log(`worker ${slot}: started pid ${proc.pid}`);
    proc.once('exit', (code, signal) => {
      if (this.stopping) return;
      const ours = this.killedByUs.has(proc);
      if (!ours) {
        this.unexpectedExits.push(`worker ${slot} (pid ${proc.pid}) exited: ${signal ?? `code ${code}`}\n${stderrTail(proc).trim().split('\n').slice(-5).join('\n')}`);
        this.log(`worker ${slot}: pid ${proc.pid} exited on its own (${signal ?? `code ${code}`})`);
      }
      setTimeout(() => this.stopping || this.spawn(slot), ours ? 0 : respawnAfterCrashMs);
    });
  }
}
