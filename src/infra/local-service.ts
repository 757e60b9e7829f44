import * as fs from 'node:fs';
import * as net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A service tcrawl may have started on this machine (the Temporal dev server,
 * the embedded Postgres) or found already running.
 */
export interface LocalService {
  /** True when this call started the service; false when it reused a running one. */
  started: boolean;
  /** Stops the service if this process owns it (attached start); a no-op otherwise. Idempotent. */
  stop(): Promise<void>;
}

/** The last `lines` lines of a file, read from byte `fromByte` on; '' when the file is missing. */
export function tailFile(file: string, lines = 30, fromByte = 0): string {
  let text: string;
  try {
    const buf = fs.readFileSync(file);
    text = buf.subarray(Math.min(fromByte, buf.length)).toString('utf8');
  } catch {
    return '';
  }
  return text.split('\n').filter((l) => l.trim() !== '').slice(-lines).join('\n');
}

/** Size of a file in bytes, 0 when it is missing: where this run's lines of a shared log begin. */
export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** Whether a process with this pid exists (signal 0 probes without sending anything). */
export function isProcessAlive(pid: number): boolean {
  // 0 and negative pids address process groups (-1: every process); never probe those.
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Reads a pid file; undefined when missing or garbage. */
export function readPidFile(file: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Polls `done` every `intervalMs` until it returns true or `timeoutMs` passes; returns whether it finished. */
export async function pollUntil(done: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/**
 * Sends SIGTERM, waits up to `graceMs` for the process to go away, then SIGKILL.
 * Returns false when the process was not running.
 */
export async function terminateProcess(pid: number, graceMs = 10_000): Promise<boolean> {
  if (!isProcessAlive(pid)) return false;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return false;
  }
  if (await pollUntil(() => !isProcessAlive(pid), graceMs, 100)) return true;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Exited between the check and the kill.
  }
  await pollUntil(() => !isProcessAlive(pid), 5_000, 100);
  return true;
}

/** Whether something accepts TCP connections at host:port (refusals answer fast, so this is a cheap first check). */
export function isPortOpen(host: string, port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const finish = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}
