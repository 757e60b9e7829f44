import { subscribe } from 'node:diagnostics_channel';
import { localNowMs } from './database-clock';

/**
 * When a request's headers were written to its socket: the moment the site
 * sees it start. Pacing counts from there, not from when the gate let the
 * request go — a worker whose event loop is busy (hundreds of hosts starting
 * at once: stalls of 100–800 ms measured) may send a request long after its
 * turn, and the next one on time would reach the site too soon after it.
 *
 * undici publishes every request on `undici:client:sendHeaders` as it writes
 * its headers; a request is known there by origin, method and path, so a
 * watcher is matched by those (two identical requests in flight at once in
 * one process get each other's time, a few milliseconds apart at most).
 */

type Watcher = (atMs: number) => void;

const watchers = new Map<string, Watcher[]>();
let subscribed = false;

function keyOf(origin: string, method: string, path: string): string {
  return `${method} ${origin}${path}`;
}

function onSendHeaders(message: unknown): void {
  const { request } = message as { request: { origin: string | URL; method: string; path: string } };
  // Through an HTTP proxy an http:// request is sent in absolute form (RFC 9112 §3.2.2) to the proxy's
  // origin: its path is then the target's whole URL, and names the request as a direct one would.
  const key = isAbsoluteForm(request.path) ? `${request.method} ${request.path}` : keyOf(String(request.origin), request.method, request.path);
  const waiting = watchers.get(key);
  const watcher = waiting?.shift();
  if (waiting?.length === 0) watchers.delete(key);
  watcher?.(localNowMs());
}

function isAbsoluteForm(path: string): boolean {
  return path.startsWith('http://') || path.startsWith('https://');
}

/**
 * Calls `onStart` with the epoch ms the request's headers are written (if
 * they are); returns what stops watching, for a request that ended first.
 */
export function watchWireStart(origin: string, method: string, path: string, onStart: (atMs: number) => void): () => void {
  if (!subscribed) {
    subscribe('undici:client:sendHeaders', onSendHeaders);
    subscribed = true;
  }
  const key = keyOf(origin, method, path);
  const watcher: Watcher = (atMs) => onStart(atMs);
  const waiting = watchers.get(key) ?? [];
  waiting.push(watcher);
  watchers.set(key, waiting);
  return () => {
    const list = watchers.get(key);
    const at = list?.indexOf(watcher) ?? -1;
    if (at < 0) return;
    list!.splice(at, 1);
    if (list!.length === 0) watchers.delete(key);
  };
}
