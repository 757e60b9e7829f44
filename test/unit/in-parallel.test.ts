import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { inParallel } from '../../src/in-parallel';

describe('inParallel', () => {
  it('runs at most `concurrency` at once and every item once', async () => {
    let running = 0;
    let most = 0;
    const done: number[] = [];
    await inParallel([1, 2, 3, 4, 5, 6, 7], 3, new AbortController(), async (n) => {
      most = Math.max(most, ++running);
      await sleep(5);
      done.push(n);
      running--;
    });
    assert.equal(most, 3);
    assert.deepEqual(done.sort(), [1, 2, 3, 4, 5, 6, 7]);
  });

  it('regression: a failing batch attempt kept its sibling fetches running — the first failure stops them, and is thrown after they settle', async () => {
    const stop = new AbortController();
    const started: number[] = [];
    let siblingsSettled = 0;
    const failure = new Error('save failed');
    const run = inParallel([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 3, stop, async (n) => {
      started.push(n);
      if (n === 1) throw failure;
      try {
        // A fetch in flight: it listens to the signal, as fetchPage and the gate's sleeps do.
        await sleep(10_000, undefined, { signal: stop.signal });
      } finally {
        siblingsSettled++;
      }
    });
    await assert.rejects(run, (error) => error === failure);
    assert.ok(stop.signal.aborted, 'the siblings were told to stop');
    assert.deepEqual(started.sort(), [0, 1, 2], 'no item started after the failure');
    assert.equal(siblingsSettled, 2, 'the siblings had settled when the failure was thrown');
  });

  it('throws the cancellation reason when stopped from outside', async () => {
    const stop = new AbortController();
    const reason = new Error('cancelled');
    const run = inParallel([1, 2, 3], 1, stop, async () => {
      stop.abort(reason);
    });
    await assert.rejects(run, (error) => error === reason);
  });
});
