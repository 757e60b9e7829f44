/**
 * Real `tcrawl worker` processes (bin/tcrawl.js, as a user runs them), for
 * tests that need a fleet, or a worker to kill.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import type { TestStack } from './stack';

export const tcrawlBin = path.resolve(__dirname, '../../bin/tcrawl.js');

export interface SpawnWorkersOptions {
  /** `tcrawl worker --concurrency`: batches each process runs at once. @default 4 */
  concurrency?: number;
  /** Extra environment for the processes. */
  env?: NodeJS.ProcessEnv;
  /** Extra `tcrawl worker` flags (`--metrics-port`, …). */
  args?: string[];
}

/** The environment a tcrawl process needs to join `stack` on `taskQueue`. */
export function workerEnv(stack: TestStack, taskQueue: string): NodeJS.ProcessEnv {
  return { ...process.env, TEMPORAL_ADDRESS: stack.temporalAddress, DATABASE_URL: stack.databaseUrl, TCRAWL_TASK_QUEUE: taskQueue };
}

/**
 * Starts `n` worker processes on `taskQueue`. Their stderr is shown with
 * TCRAWL_TEST_VERBOSE=1. They take a few seconds to start polling: see
 * `waitForPollers`. Stop each with `kill`.
 */
export function spawnWorkers(stack: TestStack, taskQueue: string, n: number, opts: SpawnWorkersOptions = {}): ChildProcess[] {
  return Array.from({ length: n }, () => {
    const child = spawn(process.execPath, [tcrawlBin, 'worker', '--concurrency', String(opts.concurrency ?? 4), ...(opts.args ?? [])], {
      env: { ...workerEnv(stack, taskQueue), ...opts.env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    stderrTails.set(child, '');
    child.stderr!.on('data', (chunk: Buffer) => {
      stderrTails.set(child, (stderrTails.get(child)! + chunk.toString()).slice(-keptStderrChars));
      if (process.env.TCRAWL_TEST_VERBOSE) process.stderr.write(`[worker ${child.pid}] ${chunk}`);
    });
    return child;
  });
}

const keptStderrChars = 8000;
const stderrTails = new WeakMap<ChildProcess, string>();

/** The last few KB a worker process wrote to stderr, to explain a failure. */
export function stderrTail(proc: ChildProcess): string {
  return stderrTails.get(proc) ?? '';
}

/** SIGKILLs the process (no clean shutdown: leases and tasks are left behind) and waits until it is gone. */
export async function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGKILL');
  await exited;
}

/** Polls `check` every 100 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Waits until each of `procs` polls `taskQueue` for activities (a process
 * takes a second or more to start polling: keep that out of a
 * measurement). Matches Temporal's default worker identity, `pid@hostname`.
 */
export async function waitForPollers(stack: TestStack, taskQueue: string, procs: ChildProcess[], timeoutMs = 120_000): Promise<void> {
  const activityQueue = 2; // TASK_QUEUE_TYPE_ACTIVITY
  await waitFor(
    `${procs.length} worker processes to poll task queue ${taskQueue}`,
    async () => {
      for (const proc of procs) {
        if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`worker process ${proc.pid} exited (${proc.exitCode ?? proc.signalCode}) before polling`);
      }
      const { pollers } = await stack.client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: taskQueue }, taskQueueType: activityQueue });
      const polling = new Set((pollers ?? []).map((p) => p.identity?.split('@')[0]));
      return procs.every((proc) => polling.has(String(proc.pid)));
    },
    timeoutMs,
  );
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** When the process was started and when it exited, ms since the epoch. */
  startedAtMs: number;
  exitedAtMs: number;
}

/** Runs `tcrawl …args` (bin/tcrawl.js) to completion with `env`; never rejects. */
export function runTcrawl(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000, cwd?: string): Promise<CliRun> {
  const startedAtMs = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [tcrawlBin, ...args], { env, timeout: timeoutMs, cwd }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr, startedAtMs, exitedAtMs: Date.now() });
    });
  });
}

/** Resolves when `child` exits: its code, the signal that ended it, and when. */
export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null; atMs: number }> {
  return once(child, 'exit').then(([code, signal]) => ({ code, signal, atMs: Date.now() }));
}

/**
 * Sends `signal` and waits for the exit, failing if it takes longer than
 * `withinMs`: how long it took, and the exit code (null if a signal killed it).
 */
export async function signalAndWait(
  child: ChildProcess,
  signal: NodeJS.Signals,
  withinMs: number,
  exited = exitOf(child),
): Promise<{ elapsedMs: number; code: number | null }> {
  assert.equal(child.exitCode, null, `the process is running before ${signal}`);
  const sentAtMs = Date.now();
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running ${withinMs} ms after ${signal}`)), withinMs);
  });
  try {
    const { code, atMs } = await Promise.race([exited, late]);
    return { elapsedMs: atMs - sentAtMs, code };
  } finally {
    clearTimeout(timer);
  }
}
