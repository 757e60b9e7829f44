import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { grantLeadMs, newHost, nextWakeMs, settleGrant, takeGrant, type HostState } from '../../workflows/host-schedule';

const settled = { hostNextDueAtMs: null, pauseHostUntilMs: null, lastStartMs: null };

describe('host schedule', () => {
  it('gives a rate-limited host back-to-back windows that never overlap', () => {
    const hosts: Record<string, HostState> = { h: newHost(100) };
    const pace = { rate: 2, concurrency: 2, batchSize: 10 };
    const first = takeGrant(hosts, pace, 1000, 0)!;
    assert.deepEqual(first, { host: 'h', limit: 10, concurrency: 2, startAtMs: 0, intervalMs: 500 });
    assert.equal(takeGrant(hosts, pace, 1000, 0), null, 'one batch at a time per rate-limited host');
    settleGrant(hosts.h, first, { ...settled, leased: 10, hostQueued: 90, lastStartMs: 4500 });
    const second = takeGrant(hosts, pace, 1000, 4200)!;
    assert.equal(second.startAtMs, 5000, 'the next window starts where the last ended');
  });

  it('caps a rate-limited batch to about ten seconds of requests', () => {
    const grant = takeGrant({ h: newHost(1000) }, { rate: 1, concurrency: 1, batchSize: 100 }, 1000, 0)!;
    assert.equal(grant.limit, 10);
  });

  it('returns unused start times when a batch leased fewer URLs than granted', () => {
    const hosts = { h: newHost(10) };
    const grant = takeGrant(hosts, { rate: 1, concurrency: 1, batchSize: 10 }, 1000, 0)!;
    settleGrant(hosts.h, grant, { ...settled, leased: 3, hostQueued: 0, lastStartMs: 2000 });
    assert.equal(hosts.h.notBeforeMs, 3000);
  });

  it('never starts sooner than one interval after a retried batch actually started its last request', () => {
    const hosts = { h: newHost(10) };
    const grant = takeGrant(hosts, { rate: 1, concurrency: 1, batchSize: 2 }, 1000, 0)!;
    settleGrant(hosts.h, grant, { ...settled, leased: 2, hostQueued: 8, lastStartMs: 15_000 });
    assert.equal(hosts.h.notBeforeMs, 16_000);
  });

  it('splits an unlimited host across several batches up to its concurrency', () => {
    const hosts = { h: newHost(1000) };
    const pace = { rate: 0, concurrency: 8, batchSize: 50 };
    const grants = [takeGrant(hosts, pace, 1000, 0), takeGrant(hosts, pace, 1000, 0), takeGrant(hosts, pace, 1000, 0), takeGrant(hosts, pace, 1000, 0)];
    assert.deepEqual(grants.map((g) => g?.concurrency), [2, 2, 2, 2]);
    assert.equal(takeGrant(hosts, pace, 1000, 0), null);
    assert.equal(hosts.h.slots, 8);
  });

  it('honours the budget and the Retry-After pause', () => {
    const hosts = { h: newHost(50) };
    const pace = { rate: 0, concurrency: 1, batchSize: 50 };
    const grant = takeGrant(hosts, pace, 7, 0)!;
    assert.equal(grant.limit, 7);
    settleGrant(hosts.h, grant, { ...settled, leased: 7, hostQueued: 43, pauseHostUntilMs: 60_000 });
    assert.equal(takeGrant(hosts, pace, 100, 30_000), null);
    assert.equal(nextWakeMs(hosts, pace, 30_000), 60_000 - grantLeadMs);
    assert.ok(takeGrant(hosts, pace, 100, 60_000));
  });

  it('prefers the least busy host so one big host does not starve the rest', () => {
    const hosts = { big: newHost(1000), small: newHost(5) };
    const pace = { rate: 0, concurrency: 4, batchSize: 10 };
    const picked = [takeGrant(hosts, pace, 1000, 0)!.host, takeGrant(hosts, pace, 1000, 0)!.host];
    assert.deepEqual(picked.sort(), ['big', 'small']);
  });

  it('has nothing to wake for when no host has queued work', () => {
    assert.equal(nextWakeMs({ h: newHost(0) }, { rate: 1, concurrency: 1, batchSize: 1 }, 0), null);
  });

  it('does not wake for a host that is eligible already (regression: 1 ms timers while the budget was used up)', () => {
    const hosts = { h: newHost(10) };
    assert.equal(nextWakeMs(hosts, { rate: 0, concurrency: 4, batchSize: 5 }, 5_000), null);
  });
});
