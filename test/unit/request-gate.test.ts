import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { RequestGate } from '../../activities/request-gate';
import { localNowMs } from '../../activities/database-clock';

const intervalMs = 50;
const withMargin = intervalMs * 1.03;

function gate(): RequestGate {
  return new RequestGate(localNowMs(), intervalMs, (ms, signal) => sleep(ms, undefined, { signal }));
}

describe('request gate', () => {
  it('lets the next request pass only once the one before it is on the wire (regression: a busy worker sent a request 100–450 ms after its turn, and the next one on time reached the site too soon after it)', async () => {
    const g = gate();
    const sent = await g.pass();
    let second = false;
    const next = g.pass().then((told) => {
      second = true;
      return told;
    });
    await sleep(3 * intervalMs);
    assert.equal(second, false, 'waits while the first request is not on the wire');
    const wireMs = localNowMs();
    sent(wireMs);
    (await next)(null);
    assert.ok(second);
    assert.ok(g.lastStartMs! - wireMs >= withMargin - 1, `the second started ${(g.lastStartMs! - wireMs).toFixed(1)} ms after the first was on the wire`);
  });

  it('counts from the pass when the request was never sent, and only the first report counts', async () => {
    const g = gate();
    const first = await g.pass();
    const passedMs = g.lastStartMs!;
    first(null);
    first(localNowMs() + 10_000);
    (await g.pass())(null);
    const gap = g.lastStartMs! - passedMs;
    assert.ok(gap >= withMargin - 1 && gap < 5 * intervalMs, `gap ${gap.toFixed(1)} ms`);
  });

  it('rejects a wait that its signal aborts, counting nothing', async () => {
    const g = gate();
    (await g.pass())(null);
    const halt = new AbortController();
    const waiting = g.pass(halt.signal);
    halt.abort(new Error('halted'));
    await assert.rejects(waiting);
    assert.equal(g.requests, 1);
    (await g.pass())(null);
    assert.equal(g.requests, 2, 'the gate goes on after an aborted wait');
  });
});
