/**
 * What the API-crawl examples' runner (examples/run.ts) and their end-to-end
 * tests share: the example specs, the quota the clan API enforces, and the
 * figures both print about the requests an imitation API saw.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { maxStartsInWindow, meanRate } from './rate-stats';

export type ExampleName = 'clan-harvest' | 'reblog-graph' | 'docs-mirror' | 'id-archive' | 'hostile-site';

/** `examples/<name>.yaml` */
export function exampleSpecFile(name: ExampleName): string {
  return path.resolve(__dirname, '../../examples', `${name}.yaml`);
}

/** The example spec, parsed (YAML), as a user's file says it: before the schema's defaults. */
export function readExampleSpec(name: ExampleName): Record<string, unknown> & { seeds: string[] } {
  return parseYaml(fs.readFileSync(exampleSpecFile(name), 'utf8'));
}

/** The fixed loopback port the example's seeds name, where its imitation API must listen. */
export function exampleSpecPort(name: ExampleName): number {
  return Number(new URL(readExampleSpec(name).seeds[0]).port);
}

/**
 * The example spec with its fixed port replaced by `port` wherever it names
 * it (seeds, rule patterns, templates, rate groups), written to a temporary
 * file (removed when the process exits): its path. Tests run the example as
 * written, on a free port.
 */
export function exampleSpecOnPort(name: ExampleName, port: number): string {
  return exampleSpecOnPorts(name, new Map([[exampleSpecPort(name), port]]));
}

/** The same for several fixed ports (a site's and its proxies'): each `:fixed` becomes `:port`, in one pass. */
export function exampleSpecOnPorts(name: ExampleName, ports: ReadonlyMap<number, number>): string {
  const text = fs.readFileSync(exampleSpecFile(name), 'utf8');
  for (const fixed of ports.keys()) if (!text.includes(`:${fixed}`)) throw new Error(`examples/${name}.yaml does not name port ${fixed}`);
  const moved = text.replace(/:(\d+)\b/g, (match, fixed: string) => (ports.has(Number(fixed)) ? `:${ports.get(Number(fixed))}` : match));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tcrawl-${name}-`));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, `${name}.yaml`);
  fs.writeFileSync(file, moved);
  return file;
}

/**
 * Arrival-time jitter allowed when a rate is judged from the server's side:
 * a crawler that starts requests exactly 1/rate apart is seen with 10–25 ms of
 * jitter either way on a loaded two-core machine (see
 * test/fleet/politeness.test.ts), so a window of one second is judged
 * this much short of it. One request over 10/s puts 11 within 900 ms: no
 * real excess hides in the allowance.
 */
export const ARRIVAL_JITTER_MS = 30;

/** The clan API's quota in the example and its test: 10 requests a second over both hostnames, judged with the jitter allowance. */
export const CLAN_API_QUOTA = { requests: 10, windowMs: 1000 - ARRIVAL_JITTER_MS };

export interface ApiRequestRecord {
  /** Arrival, ms since the epoch. */
  at: number;
  host?: string;
  status: number;
}

export interface ApiFigures {
  requests: number;
  byHost: Record<string, number>;
  byStatus: Record<string, number>;
  /** The most requests that arrived within any 1000 ms. */
  maxInSecond: number;
  /** The same within any `1000 − ARRIVAL_JITTER_MS` ms: what a limit of N/s is judged by. */
  maxInSecondLessJitter: number;
  /** Requests per second from the first arrival to the last. */
  meanPerSecond: number;
  /** From the first arrival to the last, s. */
  spanSecs: number;
}

export function apiFigures(requests: readonly ApiRequestRecord[]): ApiFigures {
  const starts = requests.map((r) => r.at);
  const count = (key: (r: ApiRequestRecord) => string) => {
    const counts: Record<string, number> = {};
    for (const r of requests) counts[key(r)] = (counts[key(r)] ?? 0) + 1;
    return counts;
  };
  return {
    requests: requests.length,
    byHost: count((r) => r.host ?? '?'),
    byStatus: count((r) => String(r.status)),
    maxInSecond: maxStartsInWindow(starts, 1000),
    maxInSecondLessJitter: maxStartsInWindow(starts, 1000 - ARRIVAL_JITTER_MS),
    meanPerSecond: meanRate(starts),
    spanSecs: starts.length > 1 ? (Math.max(...starts) - Math.min(...starts)) / 1000 : 0,
  };
}

export function describeFigures(f: ApiFigures): string {
  const hosts = Object.entries(f.byHost).map(([host, n]) => `${host}: ${n}`).join(', ');
  return (
    `${f.requests} requests in ${f.spanSecs.toFixed(1)} s (${hosts}); statuses ${JSON.stringify(f.byStatus)}; ` +
    `max ${f.maxInSecond} in any 1 s window (${f.maxInSecondLessJitter} in any ${1000 - ARRIVAL_JITTER_MS} ms), mean ${f.meanPerSecond.toFixed(2)}/s`
  );
}

/** The most requests in flight at once, from arrival and answer times (ms). */
export function peakInFlight(spans: ReadonlyArray<{ at: number; answeredAt: number }>): number {
  const events = spans.flatMap((s) => [
    { t: s.at, delta: 1 },
    { t: s.answeredAt, delta: -1 },
  ]);
  // At equal times an answer goes first: a request answered as the next arrives did not overlap it.
  events.sort((a, b) => a.t - b.t || a.delta - b.delta);
  let now = 0;
  let peak = 0;
  for (const e of events) peak = Math.max(peak, (now += e.delta));
  return peak;
}
