import type { SetRateRequest } from '../src/crawl-types';

/**
 * Politeness as the scheduler sees it: pure functions over plain state, so
 * the workflow stays deterministic and this can be unit-tested.
 *
 * Every request start is paced by *pacers*: one per host, one per rate group
 * the host is in, and one for the whole crawl when it has a total rate. A
 * rate-limited pacer hands out one grant at a time; the next one may start no
 * sooner than one interval after the previous grant's last *actual* request
 * start (which the batch reports). Inside a grant the worker spaces requests
 * by the grant's interval. So consecutive starts on any pacer are at least its
 * interval apart, whatever the number of workers and whatever dies — that is
 * what makes a limit hold for the whole fleet.
 */

export interface HostState {
  /** URLs believed queued (a hint: the database is the truth, see reconcile). */
  queued: number;
  /** Batches in flight. */
  batches: number;
  /** Requests in flight allowed to those batches, summed. */
  slots: number;
  /** No request to this host may start before this time (pacing, Retry-After, retry back-off). */
  notBeforeMs: number;
  /** A batch has reported (robots.txt is known): until then one batch at a time, so Crawl-delay is learnt first. */
  probed: boolean;
  /** robots.txt Crawl-delay, ms (0 = none). */
  crawlDelayMs: number;
  /** Ban back-off: the lowered rate (requests/s) while the host pushes back, null when it does not. */
  banRate: number | null;
  /** Consecutive batches with ban responses at the minimum rate. */
  bannedBatches: number;
  /** Adaptive throttle: smoothed response latency, ms. */
  latencyMs: number | null;
  /** Not scheduled before this time, for `reason` (Retry-After, robots unreachable, banned, batches failing). */
  pausedUntilMs: number;
  reason: string | null;
  /** Consecutive batches of the host that failed for good (absent before v1). */
  failedBatches?: number;
}

/** A pacer shared by several hosts: a rate group, or the crawl's total. */
export interface SharedPacer {
  busy: boolean;
  notBeforeMs: number;
}

export interface Limits {
  /** Default per-host rate, requests/s; 0 = unlimited. */
  rate: number;
  /** Per-host overrides from `set-rate --host`. */
  hostRates: Record<string, number>;
  /** Requests/s across the crawl; 0 = unlimited. */
  totalRate: number;
  groups: Array<{ name: string; hosts: string[]; rate: number }>;
  concurrency: number;
  batchSize: number;
  throttle: 'fixed' | 'adaptive';
  targetConcurrency: number;
}

export interface Schedule {
  hosts: Record<string, HostState>;
  /** 'total' and 'group:<name>'. */
  shared: Record<string, SharedPacer>;
  limits: Limits;
}

export interface Grant {
  host: string;
  limit: number;
  concurrency: number;
  startAtMs: number;
  intervalMs: number;
  /** Shared pacers this grant holds. */
  pacers: string[];
}

/** What a finished batch tells the scheduler about its host. */
export interface GrantOutcome {
  /** URLs the batch leased (with those an earlier attempt of it finished). */
  leased: number;
  /** URLs still queued for the host when the batch finished. */
  hostQueued: number;
  /** Earliest time a queued URL of the host becomes due, when none is due now. */
  hostNextDueAtMs: number | null;
  /** The host must not be asked again before this (Retry-After, robots.txt unreachable). */
  pauseHostUntilMs: number | null;
  /** Why, for status: 'retry_after', 'robots_unreachable', 'crawl_delay_too_long'. */
  pauseReason: string | null;
  /** Requests started (redirect hops and robots.txt included). */
  requests: number;
  firstStartMs: number | null;
  /** Epoch ms the batch's last request started, null if it made none. */
  lastStartMs: number | null;
  /** When the batch's next request could have started: its spacing plus the worker's safety margin. */
  nextStartAtMs: number | null;
  /** Responses that mean "slow down" (banStatuses, ban body markers). */
  banned: number;
  meanLatencyMs: number | null;
  /** The host's robots.txt Crawl-delay in ms (0 = none); null when robots.txt was not consulted. */
  crawlDelayMs: number | null;
}

/** A batch that reported nothing (it failed for good): frees its capacity, teaches nothing. */
export const noOutcome: GrantOutcome = {
  leased: 0,
  hostQueued: 0,
  hostNextDueAtMs: null,
  pauseHostUntilMs: null,
  pauseReason: null,
  requests: 0,
  firstStartMs: null,
  lastStartMs: null,
  nextStartAtMs: null,
  banned: 0,
  meanLatencyMs: null,
  crawlDelayMs: null,
};

/** How far ahead of its start a batch may be handed out (it waits in the worker). */
export const grantLeadMs = 1000;
/** A rate-limited batch spans at most this long, so a new rate takes effect within it (before v3). */
const maxWindowMs = 1000;
/**
 * Since v3 a batch is a window over many hosts: paced hosts start requests
 * until `windowMs` after it is handed out (a change of limits reaches it
 * through steering, not by its end), hosts due within `gatherMs` go together,
 * and at most `maxHostsPerBatch` of them (its input and result grow by about
 * 0.4 KB each).
 */
export const windowMs = 20_000;
export const gatherMs = 3000;
export const maxHostsPerBatch = 100;

/** Grants handed out as one batch (v3): every paced host's requests start by `untilMs`. */
export interface Window {
  grants: Grant[];
  untilMs: number;
}
/** Ban back-off never goes below this rate… */
export const minBanRate = 0.05;
/** …and a host still banned after this many batches there is paused… */
const bannedBatchesBeforePause = 3;
/** …for this long. */
export const banPauseMs = 10 * 60_000;

/** Why a set-rate request cannot apply to these limits, or null: a rate ≥ 0 for a group the crawl has. */
export function rateRequestProblem(limits: Limits, { target, rate }: SetRateRequest): string | null {
  if (!Number.isFinite(rate) || rate < 0) return `rate must be a number ≥ 0 (0 = no limit), got ${rate}`;
  if ('group' in target && !limits.groups.some((g) => g.name === target.group)) {
    return `no rate group "${target.group}" in this crawl (groups: ${limits.groups.map((g) => g.name).join(', ') || 'none'})`;
  }
  return null;
}

/** Applies a set-rate request to the limits. */
export function applyRateRequest(limits: Limits, { target, rate }: SetRateRequest): void {
  if ('host' in target) limits.hostRates[target.host] = rate;
  else if ('group' in target) limits.groups = limits.groups.map((g) => (g.name === target.group ? { ...g, rate } : g));
  else if ('total' in target) limits.totalRate = rate;
  else limits.rate = rate;
}

export function newHost(queued = 0): HostState {
  return { queued, batches: 0, slots: 0, notBeforeMs: 0, probed: false, crawlDelayMs: 0, banRate: null, bannedBatches: 0, latencyMs: null, pausedUntilMs: 0, reason: null };
}

/** The host's own configured rate (0 = unlimited), before back-off. */
export function configuredRate(name: string, limits: Limits): number {
  return limits.hostRates[name] ?? limits.rate;
}

/** The rate the host is paced at now (0 = unlimited): configured, lowered by back-off. */
export function hostRate(name: string, host: HostState, limits: Limits): number {
  const configured = configuredRate(name, limits);
  if (host.banRate === null) return configured;
  return configured > 0 ? Math.min(configured, host.banRate) : host.banRate;
}

/** Minimum ms between two request starts to this host (0 = none). */
export function hostIntervalMs(name: string, host: HostState, limits: Limits): number {
  const rate = hostRate(name, host, limits);
  let interval = Math.max(rate > 0 ? 1000 / rate : 0, host.crawlDelayMs);
  // Scrapy's AutoThrottle rule: enough delay that about targetConcurrency requests are in flight.
  if (limits.throttle === 'adaptive' && host.latencyMs !== null) interval = Math.max(interval, host.latencyMs / limits.targetConcurrency);
  return interval;
}

/** Matches `host[:port]` against a group pattern: exact, or `*.example.com` (any port). */
export function hostMatches(host: string, pattern: string): boolean {
  const hostname = host.replace(/:\d+$/, '');
  if (pattern.startsWith('*.')) return hostname.endsWith(pattern.slice(1)) || hostname === pattern.slice(2);
  return pattern.includes(':') ? host === pattern : hostname === pattern;
}

/** The shared pacers (rate groups, the crawl total) a host's requests count against. */
export function sharedPacersOf(name: string, limits: Pick<Limits, 'groups' | 'totalRate'>): Array<{ key: string; rate: number }> {
  const pacers = limits.groups.filter((g) => g.rate > 0 && g.hosts.some((p) => hostMatches(name, p))).map((g) => ({ key: `group:${g.name}`, rate: g.rate }));
  if (limits.totalRate > 0) pacers.push({ key: 'total', rate: limits.totalRate });
  return pacers;
}

function sharedPacer(schedule: Schedule, key: string): SharedPacer {
  return (schedule.shared[key] ??= { busy: false, notBeforeMs: 0 });
}

function isEligible(schedule: Schedule, name: string, nowMs: number, leadMs = grantLeadMs): boolean {
  const host = schedule.hosts[name];
  const { limits } = schedule;
  if (host.queued <= 0 || host.slots >= limits.concurrency || host.pausedUntilMs > nowMs) return false;
  if (!host.probed && host.batches > 0) return false;
  if (hostIntervalMs(name, host, limits) > 0 && host.batches > 0) return false;
  if (host.notBeforeMs > nowMs + leadMs) return false;
  return sharedPacersOf(name, limits).every(({ key }) => {
    const pacer = sharedPacer(schedule, key);
    return !pacer.busy && pacer.notBeforeMs <= nowMs + leadMs;
  });
}

/** Least-busy host first, then the one waiting longest, so no host starves the others. */
function beforeInTurn(schedule: Schedule, a: string, b: string): number {
  const [x, y] = [schedule.hosts[a], schedule.hosts[b]];
  return x.slots - y.slots || x.notBeforeMs - y.notBeforeMs;
}

/** The spacing a grant of the host keeps: its own, or its shared pacers' if wider (0 = none). */
function grantIntervalMs(schedule: Schedule, name: string): number {
  const { limits } = schedule;
  return Math.max(hostIntervalMs(name, schedule.hosts[name], limits), ...sharedPacersOf(name, limits).map(({ rate }) => 1000 / rate));
}

/**
 * Who a window's budget is split over. `hostsWithWork` (v3): every host with
 * work, in flight or queued — but the budget a window is given is what the
 * batches in flight have not reserved, so hosts in flight were counted twice
 * (of 200 hosts with 30 pages each, the second window's 100 got 15 URLs
 * each, and needed a second window halfway through, a second lost each).
 * `hostsWaiting` (v4): the hosts with work and no batch, among which the
 * unreserved budget is what is left to split.
 */
export type BudgetShare = 'hostsWithWork' | 'hostsWaiting';

/**
 * The next batch to hand out (v3), or null: the hosts due within `gatherMs`,
 * in turn, up to `maxHostsPerBatch`, either all paced or all unpaced (an
 * unpaced host's batch ends as soon as its lease is done, a paced one's at
 * the window's end). A paced host may take as many URLs as starts fit in the
 * window, leasing them as it goes (what its pages find, too), but reserves
 * no more of the budget than its share of it (see {@link BudgetShare}) or,
 * if more, what it has queued: so
 * no host holds budget another needs. An unpaced host is granted as before
 * v3. Mutates the state it grants from.
 */
export function takeWindow(schedule: Schedule, budget: number, nowMs: number, shareOver: BudgetShare = 'hostsWithWork'): Window | null {
  if (budget <= 0) return null;
  const due = Object.keys(schedule.hosts)
    .filter((name) => isEligible(schedule, name, nowMs, gatherMs))
    .sort((a, b) => beforeInTurn(schedule, a, b));
  if (due.length === 0) return null;
  const paced = grantIntervalMs(schedule, due[0]) > 0;
  const untilMs = nowMs + windowMs;
  let sharing = 0;
  for (const host of Object.values(schedule.hosts)) {
    if (shareOver === 'hostsWaiting' ? host.queued > 0 && host.batches === 0 : host.queued > 0 || host.batches > 0) sharing++;
  }
  const share = Math.max(1, Math.floor(budget / Math.max(1, sharing)));
  const grants: Grant[] = [];
  let left = budget;
  for (const name of due) {
    if (grants.length >= maxHostsPerBatch || left <= 0) break;
    // A shared pacer taken by an earlier grant of this batch makes its other hosts wait for the next.
    if (grantIntervalMs(schedule, name) > 0 !== paced || !isEligible(schedule, name, nowMs, gatherMs)) continue;
    const grant = grantFor(schedule, name, Math.min(left, Math.max(share, schedule.hosts[name].queued)), nowMs, untilMs);
    grants.push(grant);
    left -= grant.limit;
  }
  return { grants, untilMs };
}

/** Picks the next batch to hand out (before v3), or null; at most `budget` URLs. Mutates the state it grants from. */
export function takeGrant(schedule: Schedule, budget: number, nowMs: number): Grant | null {
  if (budget <= 0) return null;
  let chosen: string | undefined;
  for (const name of Object.keys(schedule.hosts)) {
    if (isEligible(schedule, name, nowMs) && (chosen === undefined || beforeInTurn(schedule, name, chosen) < 0)) chosen = name;
  }
  return chosen === undefined ? null : grantFor(schedule, chosen, budget, nowMs);
}

/** The host's start now, as a grant would have it: its own pacer's and its shared pacers'. */
function grantStartMs(schedule: Schedule, name: string, nowMs: number): number {
  let startAtMs = Math.max(nowMs, schedule.hosts[name].notBeforeMs);
  for (const { key } of sharedPacersOf(name, schedule.limits)) startAtMs = Math.max(startAtMs, sharedPacer(schedule, key).notBeforeMs);
  return startAtMs;
}

/** URLs a paced host may take in a window ending at `untilMs`: the starts that fit, `batchSize` at most. */
function pacedLimit(schedule: Schedule, name: string, nowMs: number, untilMs: number): number {
  const fits = Math.floor((untilMs - grantStartMs(schedule, name, nowMs)) / grantIntervalMs(schedule, name)) + 1;
  return Math.min(schedule.limits.batchSize, Math.max(1, fits));
}

/**
 * A grant of the host, at most `budget` URLs. With `untilMs` (v3) a paced
 * host gets as many as starts fit until then, whatever it has queued now (it
 * leases what its pages find as it goes); without, a paced grant spans at
 * most `maxWindowMs`, and a first one only learns robots.txt.
 */
function grantFor(schedule: Schedule, name: string, budget: number, nowMs: number, untilMs?: number): Grant {
  const host = schedule.hosts[name];
  const { limits } = schedule;
  const shared = sharedPacersOf(name, limits);
  const intervalMs = grantIntervalMs(schedule, name);
  const startAtMs = grantStartMs(schedule, name, nowMs);
  for (const { key } of shared) sharedPacer(schedule, key).busy = true;
  const paced = intervalMs > 0;
  const concurrency = paced ? limits.concurrency : Math.min(limits.concurrency - host.slots, Math.max(1, Math.ceil(limits.concurrency / 4)));
  let limit: number;
  if (paced && untilMs !== undefined) {
    limit = Math.min(budget, pacedLimit(schedule, name, nowMs, untilMs));
  } else {
    limit = Math.min(limits.batchSize, budget, host.queued);
    if (paced) limit = Math.min(limit, Math.max(1, Math.floor(maxWindowMs / intervalMs)));
    // A first batch only learns robots.txt (and its Crawl-delay): keep it small.
    if (!host.probed) limit = Math.min(limit, limits.concurrency);
  }
  host.queued -= limit;
  host.batches += 1;
  host.slots += concurrency;
  return { host: name, limit, concurrency, startAtMs, intervalMs, pacers: shared.map(({ key }) => key) };
}

/** Returns a finished batch's capacity and takes in what it learned about the host. */
export function settleGrant(schedule: Schedule, grant: Grant, outcome: GrantOutcome, nowMs: number): void {
  const host = schedule.hosts[grant.host];
  const { limits } = schedule;
  host.batches -= 1;
  host.slots -= grant.concurrency;
  host.queued = outcome.hostQueued;
  if (outcome.crawlDelayMs !== null) host.crawlDelayMs = outcome.crawlDelayMs;
  host.probed = true;
  if (outcome.meanLatencyMs !== null) host.latencyMs = host.latencyMs === null ? outcome.meanLatencyMs : (host.latencyMs + outcome.meanLatencyMs) / 2;
  adjustForBans(grant.host, host, outcome, limits, nowMs);
  // The next start on each pacer this grant held: where the batch's spacing would have put its next request
  // (at least one interval after the last one that actually started), or later if the host was just slowed.
  const after = (intervalMs: number) => (outcome.lastStartMs === null ? 0 : Math.max(outcome.lastStartMs + intervalMs, outcome.nextStartAtMs ?? 0));
  host.notBeforeMs = Math.max(host.notBeforeMs, after(hostIntervalMs(grant.host, host, limits)), outcome.hostNextDueAtMs ?? 0);
  for (const key of grant.pacers) {
    const pacer = sharedPacer(schedule, key);
    pacer.busy = false;
    // The rate may have been set to 0 (no limit) while the grant was out: then there is no spacing to keep.
    const rate = sharedRate(key, limits);
    pacer.notBeforeMs = Math.max(pacer.notBeforeMs, after(rate > 0 ? 1000 / rate : 0));
  }
  if (outcome.pauseHostUntilMs !== null && outcome.pauseHostUntilMs > host.notBeforeMs) {
    host.notBeforeMs = outcome.pauseHostUntilMs;
    pause(host, outcome.pauseHostUntilMs, outcome.pauseReason ?? 'paused');
  }
}

function sharedRate(key: string, limits: Limits): number {
  if (key === 'total') return limits.totalRate;
  return limits.groups.find((g) => `group:${g.name}` === key)?.rate ?? 0;
}

/** First pause after a batch of the host failed for good; it doubles with each next one, up to `maxFailedBatchPauseMs`. */
const failedBatchPauseMs = 1000;
const maxFailedBatchPauseMs = 5 * 60_000;

/**
 * A batch of the host failed for good (a bug, a misconfigured worker): the
 * host waits a back-off that grows with each consecutive failure, so a
 * failure that repeats cannot spin the crawl, and says why.
 */
export function pauseAfterFailedBatch(host: HostState, code: string, nowMs: number): void {
  host.failedBatches = (host.failedBatches ?? 0) + 1;
  const pauseMs = Math.min(maxFailedBatchPauseMs, failedBatchPauseMs * 2 ** (host.failedBatches - 1));
  host.notBeforeMs = Math.max(host.notBeforeMs, nowMs + pauseMs);
  pause(host, nowMs + pauseMs, `batch failed: ${code} (${host.failedBatches} in a row)`);
}

function pause(host: HostState, untilMs: number, reason: string): void {
  host.pausedUntilMs = Math.max(host.pausedUntilMs, untilMs);
  host.reason = reason;
}

/**
 * AIMD: a batch that met ban responses halves the host's rate (from what it
 * achieved, if it had no limit); clean batches raise it by a tenth of the
 * configured rate until it is back. At the floor and still banned, pause.
 */
function adjustForBans(name: string, host: HostState, outcome: GrantOutcome, limits: Limits, nowMs: number): void {
  const configured = configuredRate(name, limits);
  if (outcome.banned > 0) {
    const current = hostRate(name, host, limits) || observedRate(outcome);
    const atFloor = host.banRate !== null && host.banRate <= minBanRate;
    host.banRate = Math.max(minBanRate, current / 2);
    host.bannedBatches = atFloor ? host.bannedBatches + 1 : 0;
    host.reason = `backing off: ${outcome.banned} ban response${outcome.banned > 1 ? 's' : ''}`;
    if (host.bannedBatches >= bannedBatchesBeforePause) {
      pause(host, nowMs + banPauseMs, `banned: still refused at ${minBanRate} requests/s`);
      host.bannedBatches = 0;
    }
    return;
  }
  if (host.banRate === null || outcome.requests === 0) return;
  host.bannedBatches = 0;
  host.banRate += Math.max(minBanRate, (configured || host.banRate) / 10);
  if (configured > 0 && host.banRate >= configured) {
    host.banRate = null;
    host.reason = null;
  }
}

/** Requests/s a batch achieved; 1 when it made too few requests to tell. */
function observedRate(outcome: GrantOutcome): number {
  if (outcome.firstStartMs === null || outcome.lastStartMs === null || outcome.requests < 2) return 1;
  return ((outcome.requests - 1) * 1000) / Math.max(1, outcome.lastStartMs - outcome.firstStartMs);
}

/**
 * When the next host becomes eligible, if any is waiting only for time. A
 * host eligible already is not a reason to wake: it was not granted because
 * the budget or the crawl's batch limit is used up, and only a finished
 * batch changes that.
 */
export function nextWakeMs(schedule: Schedule, nowMs: number): number | null {
  let wake: number | null = null;
  for (const [name, host] of Object.entries(schedule.hosts)) {
    if (host.queued <= 0 || host.slots >= schedule.limits.concurrency || host.batches > 0) continue;
    const shared = sharedPacersOf(name, schedule.limits).map(({ key }) => sharedPacer(schedule, key));
    if (shared.some((pacer) => pacer.busy)) continue;
    const at = Math.max(host.pausedUntilMs, host.notBeforeMs - grantLeadMs, ...shared.map((p) => p.notBeforeMs - grantLeadMs));
    if (at > nowMs && (wake === null || at < wake)) wake = at;
  }
  return wake;
}
