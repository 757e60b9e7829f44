import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  banPauseMs,
  grantLeadMs,
  hostMatches,
  hostRate,
  minBanRate,
  newHost,
  nextWakeMs,
  noOutcome,
  pauseAfterFailedBatch,
  settleGrant,
  takeGrant,
  takeWindow,
  gatherMs,
  maxHostsPerBatch,
  windowMs,
  type GrantOutcome,
  type Limits,
  type Schedule,
} from '../../workflows/host-schedule';

function schedule(hosts: Record<string, number>, limits: Partial<Limits> = {}): Schedule {
  const state: Schedule = {
    hosts: {},
    shared: {},
    limits: { rate: 0, hostRates: {}, totalRate: 0, groups: [], concurrency: 2, batchSize: 100, throttle: 'fixed', targetConcurrency: 1, ...limits },
  };
  // Probed: robots.txt known, so the rules under test apply from the first grant.
  for (const [name, queued] of Object.entries(hosts)) state.hosts[name] = { ...newHost(queued), probed: true };
  return state;
}

function outcome(partial: Partial<GrantOutcome> = {}): GrantOutcome {
  return { ...noOutcome, ...partial };
}

describe('host schedule', () => {
  it('gives a rate-limited host one window at a time, each starting one interval after the last actual start', () => {
    const s = schedule({ h: 100 }, { rate: 2, batchSize: 10 });
    const first = takeGrant(s, 1000, 0)!;
    assert.deepEqual(first, { host: 'h', limit: 2, concurrency: 2, startAtMs: 0, intervalMs: 500, pacers: [] });
    assert.equal(takeGrant(s, 1000, 0), null, 'one batch at a time per rate-limited host');
    settleGrant(s, first, outcome({ leased: 2, hostQueued: 98, requests: 2, firstStartMs: 0, lastStartMs: 620 }), 700);
    assert.equal(takeGrant(s, 1000, 800)!.startAtMs, 1120, 'a late start pushes the next window, never squeezes it');
  });

  it("starts the next window where the worker's spacing (with its safety margin) would have put the next request", () => {
    const s = schedule({ h: 100 }, { rate: 10 });
    settleGrant(s, takeGrant(s, 1000, 0)!, outcome({ hostQueued: 90, requests: 10, firstStartMs: 0, lastStartMs: 909, nextStartAtMs: 1010 }), 950);
    assert.equal(takeGrant(s, 1000, 960)!.startAtMs, 1010);
  });

  it('sizes a rate-limited batch to one second of requests, so a new rate takes effect within a second', () => {
    assert.equal(takeGrant(schedule({ h: 1000 }, { rate: 10 }), 1000, 0)!.limit, 10);
    assert.equal(takeGrant(schedule({ h: 1000 }, { rate: 0.5 }), 1000, 0)!.limit, 1);
  });

  it('splits an unlimited host across several batches up to its concurrency', () => {
    const s = schedule({ h: 1000 }, { concurrency: 8, batchSize: 50 });
    const grants = [1, 2, 3, 4].map(() => takeGrant(s, 1000, 0));
    assert.deepEqual(grants.map((g) => g?.concurrency), [2, 2, 2, 2]);
    assert.equal(takeGrant(s, 1000, 0), null);
  });

  it('sends a single small batch to a host not probed yet, to learn its robots.txt first', () => {
    const s = schedule({}, { concurrency: 4 });
    s.hosts.h = newHost(500);
    assert.equal(takeGrant(s, 1000, 0)!.limit, 4);
    assert.equal(takeGrant(s, 1000, 0), null);
  });

  it('paces a host by its Crawl-delay once known, even with no rate limit', () => {
    const s = schedule({ h: 100 });
    const grant = takeGrant(s, 1000, 0)!;
    settleGrant(s, grant, outcome({ leased: 50, hostQueued: 50, requests: 1, firstStartMs: 0, lastStartMs: 0, crawlDelayMs: 2000 }), 10);
    const next = takeGrant(s, 1000, 1500)!;
    assert.equal(next.intervalMs, 2000);
    assert.equal(next.startAtMs, 2000);
    assert.equal(next.limit, 1);
  });

  it('honours the budget and a Retry-After pause, with its reason', () => {
    const s = schedule({ h: 50 }, { concurrency: 1, batchSize: 50 });
    const grant = takeGrant(s, 7, 0)!;
    assert.equal(grant.limit, 7);
    settleGrant(s, grant, outcome({ leased: 7, hostQueued: 43, pauseHostUntilMs: 60_000, pauseReason: 'retry_after' }), 100);
    assert.equal(takeGrant(s, 100, 30_000), null);
    assert.equal(s.hosts.h.reason, 'retry_after');
    assert.equal(nextWakeMs(s, 30_000), 60_000);
    assert.ok(takeGrant(s, 100, 60_000));
  });

  it('halves the rate on ban responses, recovers additively, and pauses a host banned at the floor', () => {
    const s = schedule({ h: 1000 }, { rate: 8 });
    const ban = (at: number) => settleGrant(s, takeGrant(s, 1000, at)!, outcome({ hostQueued: 900, requests: 4, banned: 2, lastStartMs: at }), at);
    ban(0);
    assert.equal(hostRate('h', s.hosts.h, s.limits), 4);
    ban(10_000);
    assert.equal(hostRate('h', s.hosts.h, s.limits), 2);
    settleGrant(s, takeGrant(s, 1000, 20_000)!, outcome({ hostQueued: 900, requests: 2, lastStartMs: 20_000 }), 20_000);
    assert.equal(hostRate('h', s.hosts.h, s.limits), 2.8, 'a clean batch adds a tenth of the configured rate');
    s.hosts.h.banRate = minBanRate;
    for (let i = 0; i < 3; i++) ban(100_000 + i * 100_000);
    assert.equal(s.hosts.h.pausedUntilMs, 300_000 + banPauseMs);
    assert.match(s.hosts.h.reason!, /banned/);
  });

  it('backs off an unlimited host from the rate it achieved', () => {
    const s = schedule({ h: 1000 });
    settleGrant(s, takeGrant(s, 1000, 0)!, outcome({ hostQueued: 900, requests: 11, banned: 1, firstStartMs: 0, lastStartMs: 1000 }), 1000);
    assert.equal(hostRate('h', s.hosts.h, s.limits), 5);
  });

  it('shares a total rate: one window at a time across hosts, each after the last start of the previous', () => {
    const s = schedule({ a: 100, b: 100 }, { totalRate: 4, rate: 0 });
    const first = takeGrant(s, 1000, 0)!;
    assert.equal(first.intervalMs, 250);
    assert.deepEqual(first.pacers, ['total']);
    assert.equal(takeGrant(s, 1000, 0), null, 'the total pacer is busy');
    settleGrant(s, first, outcome({ hostQueued: 96, requests: 4, firstStartMs: 0, lastStartMs: 750 }), 760);
    const second = takeGrant(s, 1000, 760)!;
    assert.notEqual(second.host, first.host, 'the other host gets its turn');
    assert.equal(second.startAtMs, 1000);
  });

  it('applies a rate group to its hosts only', () => {
    const s = schedule({ 'api1.example.com': 10, 'api2.example.com': 10, 'other.org': 10 }, { groups: [{ name: 'api', hosts: ['*.example.com'], rate: 3 }] });
    const grants = [takeGrant(s, 1000, 0), takeGrant(s, 1000, 0), takeGrant(s, 1000, 0)].filter((g) => g !== null);
    const grouped = grants.filter((g) => g!.pacers.includes('group:api'));
    assert.equal(grouped.length, 1, 'one window at a time in the group');
    assert.ok(grants.some((g) => g!.host === 'other.org' && g!.intervalMs === 0));
  });

  it('matches group patterns', () => {
    assert.ok(hostMatches('api.example.com', '*.example.com'));
    assert.ok(hostMatches('example.com:8080', '*.example.com'));
    assert.ok(hostMatches('127.0.0.2:4000', '127.0.0.2'));
    assert.ok(hostMatches('127.0.0.2:4000', '127.0.0.2:4000'));
    assert.ok(!hostMatches('127.0.0.2:4001', '127.0.0.2:4000'));
    assert.ok(!hostMatches('badexample.com', '*.example.com'));
  });

  it('paces adaptively: about latency / targetConcurrency between starts', () => {
    const s = schedule({ h: 100 }, { throttle: 'adaptive', targetConcurrency: 2 });
    settleGrant(s, takeGrant(s, 1000, 0)!, outcome({ hostQueued: 90, requests: 10, lastStartMs: 0, meanLatencyMs: 800 }), 0);
    assert.equal(takeGrant(s, 1000, 5000)!.intervalMs, 400);
  });

  it('does not wake for a host that is eligible already (regression: 1 ms timers while the budget was used up)', () => {
    const s = schedule({ h: 10 }, { concurrency: 4, batchSize: 5 });
    assert.equal(nextWakeMs(s, 5_000), null);
    assert.equal(nextWakeMs(schedule({ h: 0 }), 0), null);
    const paused = schedule({ h: 10 });
    paused.hosts.h.notBeforeMs = 9_000;
    assert.equal(nextWakeMs(paused, 0), 9_000 - grantLeadMs);
  });

  it('regression: set-rate --total 0 while a grant was out, then above 0, made the next start Infinity and wedged the crawl', () => {
    const s = schedule({ h: 100 }, { totalRate: 5, batchSize: 10 });
    const grant = takeGrant(s, 1000, 0)!;
    s.limits.totalRate = 0;
    settleGrant(s, grant, outcome({ leased: grant.limit, hostQueued: 90, requests: grant.limit, firstStartMs: 0, lastStartMs: 800 }), 900);
    s.limits.totalRate = 5;
    assert.ok(Number.isFinite(s.shared.total.notBeforeMs), `total pacer's next start: ${s.shared.total.notBeforeMs}`);
    const wake = nextWakeMs(s, 900);
    assert.ok(wake === null || Number.isFinite(wake));
    assert.ok(takeGrant(s, 1000, 5000), 'grants again');
  });

  it('pauses a host whose batches fail for good, doubling the pause with each failure in a row', () => {
    const s = schedule({ h: 10 });
    pauseAfterFailedBatch(s.hosts.h, 'TCRAWL_BATCH_FAILED', 0);
    assert.equal(s.hosts.h.pausedUntilMs, 1000);
    pauseAfterFailedBatch(s.hosts.h, 'TCRAWL_BATCH_FAILED', 1000);
    assert.equal(s.hosts.h.pausedUntilMs, 3000);
    assert.match(s.hosts.h.reason!, /batch failed: TCRAWL_BATCH_FAILED \(2 in a row\)/);
    assert.equal(takeGrant(s, 1000, 2000), null, 'not granted while paused');
    assert.ok(takeGrant(s, 1000, 3000), 'granted once the pause is over');
    for (let n = 0; n < 20; n++) pauseAfterFailedBatch(s.hosts.h, 'X', 0);
    assert.equal(s.hosts.h.pausedUntilMs, 5 * 60_000, 'capped at five minutes');
  });

  describe('windows (v3)', () => {
    it('hands out the paced hosts due within gatherMs as one batch, each with as many URLs as starts fit in the window', () => {
      const s = schedule({ a: 10, b: 10, later: 10 }, { rate: 2 });
      s.hosts.b.notBeforeMs = 2000;
      s.hosts.later.notBeforeMs = gatherMs + 1;
      const window = takeWindow(s, 10_000, 0)!;
      assert.equal(window.untilMs, windowMs);
      assert.deepEqual(
        window.grants.map((g) => [g.host, g.startAtMs, g.limit]),
        [
          ['a', 0, windowMs / 500 + 1],
          ['b', 2000, (windowMs - 2000) / 500 + 1],
        ],
        'a host not due within gatherMs waits for a later window',
      );
      assert.ok(window.grants[0].limit > 10, 'a paced host may take more than it has queued now: it leases what its pages find');
      assert.equal(takeWindow(s, 10_000, 0), null, 'a paced host is in one batch at a time');
    });

    it('splits the budget over the hosts with work, in flight or queued, so no host holds budget another needs (regression: half the hosts waited 6 s for budget the first window reserved and never used)', () => {
      const s = schedule(Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`h${i}`, 1])), { rate: 2 });
      const first = takeWindow(s, 40, 0)!;
      assert.deepEqual(
        first.grants.map((g) => g.limit),
        [10, 10, 10, 10],
        'a share each, not a whole window',
      );
      const t = schedule({ busy: 0, big: 30, small: 1 }, { rate: 2 });
      t.hosts.busy.batches = 1;
      assert.deepEqual(
        takeWindow(t, 30, 0)!.grants.map((g) => [g.host, g.limit]),
        [['big', 30]],
        'what a host has queued, if more than its share (10), while the budget lasts',
      );
    });

    it("splits the budget the batches in flight left over the hosts waiting for one (v4; regression: a second window's 100 hosts got half the first's share, as hosts in flight were counted twice)", () => {
      const hosts = Object.fromEntries(Array.from({ length: 2 * maxHostsPerBatch }, (_, i) => [`h${i}`, 1]));
      for (const shareOver of ['hostsWithWork', 'hostsWaiting'] as const) {
        const s = schedule(hosts, { rate: 2 });
        let budget = 2 * maxHostsPerBatch * 30;
        const first = takeWindow(s, budget, 0, shareOver)!;
        for (const grant of first.grants) budget -= grant.limit;
        const second = takeWindow(s, budget, 0, shareOver)!;
        assert.equal(first.grants[0].limit, 30, `${shareOver}: the first window's share`);
        assert.equal(second.grants[0].limit, shareOver === 'hostsWaiting' ? 30 : 15, `${shareOver}: the second window's share`);
      }
    });

    it('never puts paced and unpaced hosts in one batch, and at most maxHostsPerBatch hosts', () => {
      const s = schedule({ paced: 5, free: 5 }, { hostRates: { paced: 1 } });
      const kinds = [takeWindow(s, 1000, 0)!, takeWindow(s, 1000, 0)!].map((w) => w.grants.map((g) => g.host));
      assert.deepEqual(kinds.flat().sort(), ['free', 'paced']);
      assert.ok(kinds.every((hosts) => hosts.length === 1));
      const many = schedule(Object.fromEntries(Array.from({ length: maxHostsPerBatch + 5 }, (_, i) => [`h${i}`, 1])), { rate: 1 });
      assert.equal(takeWindow(many, 1_000_000, 0)!.grants.length, maxHostsPerBatch);
      assert.equal(takeWindow(many, 1_000_000, 0)!.grants.length, 5);
    });

    it('grants an unpaced host as before v3: what it has queued, up to batchSize, its concurrency split', () => {
      const s = schedule({ h: 1000 }, { concurrency: 8, batchSize: 50 });
      assert.deepEqual(
        takeWindow(s, 1000, 0)!.grants.map((g) => [g.limit, g.concurrency]),
        [[50, 2]],
      );
    });
  });
});
