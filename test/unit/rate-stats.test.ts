import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { maxStartsInWindow, meanRate, minGapMs } from '../helpers/rate-stats';

/** The definition, checked the slow way: every window that begins at a start. */
function bruteForceMax(starts: number[], windowMs: number): number {
  let best = 0;
  for (const t of starts) best = Math.max(best, starts.filter((s) => s >= t && s < t + windowMs).length);
  return best;
}

/** A deterministic pseudo-random sequence (LCG), so a failure reproduces. */
function randomStarts(seed: number, n: number, spreadMs: number): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return 1_700_000_000_000 + ((x >>> 8) % spreadMs) + (x % 7) / 8;
  });
}

describe('maxStartsInWindow', () => {
  it('is 0 for no starts and 1 for one', () => {
    assert.equal(maxStartsInWindow([]), 0);
    assert.equal(maxStartsInWindow([42]), 1);
  });

  it('uses a half-open window: starts exactly windowMs apart are never together', () => {
    // Six starts 200 ms apart span exactly 1000 ms: a limit of 5/s is kept.
    assert.equal(maxStartsInWindow([0, 200, 400, 600, 800, 1000]), 5);
    assert.equal(maxStartsInWindow([0, 200, 400, 600, 800, 999.9]), 6);
    assert.equal(maxStartsInWindow([0, 1000, 2000, 3000]), 1);
  });

  it('finds the densest window anywhere, not only on whole-second boundaries', () => {
    // Five in [600, 1600): the calendar seconds [0, 1000) and [1000, 2000) see two and three.
    assert.equal(maxStartsInWindow([600, 800, 1000, 1200, 1400]), 5);
    assert.equal(maxStartsInWindow([0, 900, 1000, 1099, 2500], 200), 3);
  });

  it('counts simultaneous starts separately', () => {
    assert.equal(maxStartsInWindow([5, 5, 5, 5000]), 3);
  });

  it('honours the window length', () => {
    const paced = Array.from({ length: 50 }, (_, i) => i * 100);
    assert.equal(maxStartsInWindow(paced, 1000), 10);
    assert.equal(maxStartsInWindow(paced, 250), 3);
    assert.equal(maxStartsInWindow(paced, 100), 1);
  });

  it('accepts unsorted input without changing it', () => {
    const starts = [1500, 0, 1200, 100, 1100];
    assert.equal(maxStartsInWindow(starts), 3);
    assert.deepEqual(starts, [1500, 0, 1200, 100, 1100]);
  });

  it('agrees with the definition on random sequences', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const starts = randomStarts(seed, 1 + (seed % 60), 5000);
      for (const windowMs of [1, 250, 1000, 3000]) {
        assert.equal(maxStartsInWindow(starts, windowMs), bruteForceMax(starts, windowMs), `seed ${seed}, window ${windowMs}`);
      }
    }
  });

  it('is linear: a million sorted starts take well under a second', () => {
    const starts = Array.from({ length: 1_000_000 }, (_, i) => i * 3);
    const began = performance.now();
    assert.equal(maxStartsInWindow(starts), 334);
    assert.ok(performance.now() - began < 1000);
  });

  it('rejects a window that is not positive', () => {
    assert.throws(() => maxStartsInWindow([1, 2], 0), RangeError);
    assert.throws(() => maxStartsInWindow([1, 2], Number.NaN), RangeError);
  });
});

describe('meanRate', () => {
  it('gives exactly r for starts paced 1/r apart, whatever their number', () => {
    assert.equal(meanRate([0, 200, 400, 600, 800, 1000]), 5);
    assert.equal(meanRate(Array.from({ length: 101 }, (_, i) => 10_000 + i * 250)), 4);
  });

  it('is 0 with fewer than two starts', () => {
    assert.equal(meanRate([]), 0);
    assert.equal(meanRate([7]), 0);
  });

  it('counts only the starts within [fromMs, toMs], both ends included', () => {
    const starts = [0, 100, 200, 300, 1300, 2300, 3300];
    assert.equal(meanRate(starts, 300), 1);
    assert.equal(meanRate(starts, 0, 300), 10);
    assert.equal(meanRate(starts, 250, 2300), 1);
    assert.equal(meanRate(starts, 5000), 0);
  });

  it('sorts unsorted input', () => {
    assert.equal(meanRate([1000, 0, 500]), 2);
  });
});

describe('minGapMs', () => {
  it('is the shortest gap between neighbours in time', () => {
    assert.equal(minGapMs([0, 500, 1200, 1250, 3000]), 50);
    assert.equal(minGapMs([3000, 0, 1250, 500, 1200]), 50);
    assert.equal(minGapMs([10, 10]), 0);
  });

  it('is Infinity with fewer than two starts', () => {
    assert.equal(minGapMs([]), Infinity);
    assert.equal(minGapMs([1]), Infinity);
  });
});
