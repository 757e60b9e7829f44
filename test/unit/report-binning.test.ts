import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { binEdges, binIndex, formatElapsed, formatStep, rateSeries, timeStepMs, valueBins } from '../../src/report/binning';

describe('report histogram bins', () => {
  it('round widths and edges: 1-2-5 for whole numbers, 2.5 allowed for decimals', () => {
    assert.deepEqual(valueBins(1, 1234, true), { lo: 0, width: 100, count: 13 });
    assert.deepEqual(valueBins(0, 19, true), { lo: 0, width: 1, count: 20 });
    assert.deepEqual(valueBins(0, 20, true), { lo: 0, width: 2, count: 11 });
    assert.deepEqual(valueBins(1.2, 78.3, false), { lo: 0, width: 5, count: 16 });
    assert.deepEqual(valueBins(0.1, 0.55, false), { lo: 0.1, width: 0.025, count: 19 });
    assert.deepEqual(valueBins(-35, 12, true), { lo: -35, width: 5, count: 10 });
  });

  it('a single value gets one bin of width 1; whole numbers never get a width below 1', () => {
    assert.deepEqual(valueBins(42, 42, true), { lo: 42, width: 1, count: 1 });
    assert.deepEqual(valueBins(9.4, 9.4, false), { lo: 9, width: 1, count: 1 });
    assert.deepEqual(valueBins(3, 5, true), { lo: 3, width: 1, count: 3 });
  });

  it('edges print as written in decimal', () => {
    const bins = valueBins(0, 0.9, false, 10);
    assert.deepEqual(binEdges(bins, 3), { lo: 0.3, hi: 0.4 });
  });

  it('every value in [min, max] falls in one of at most maxBins bins, whose edges contain it', () => {
    // Numbers as parseLeadingNumber reads them: at most 15 digits each side of the point.
    const finite = fc.tuple(fc.integer({ min: -1e9, max: 1e9 }), fc.integer({ min: 0, max: 15 })).map(([n, decimals]) => n / 10 ** decimals);
    fc.assert(
      fc.property(fc.array(finite, { minLength: 1, maxLength: 30 }), fc.boolean(), fc.integer({ min: 2, max: 60 }), (raw, integral, maxBins) => {
        const values = integral ? raw.map(Math.round) : raw;
        const [min, max] = [Math.min(...values), Math.max(...values)];
        const bins = valueBins(min, max, integral, maxBins);
        assert.ok(bins.count >= 1 && bins.count <= maxBins, `count ${bins.count} of at most ${maxBins}`);
        assert.ok(bins.lo <= min, `lo ${bins.lo} <= min ${min}`);
        assert.ok(binEdges(bins, bins.count - 1).hi > max * (1 - 1e-12) - 1e-9, 'the last bin reaches max');
        if (integral) assert.ok(Number.isInteger(bins.width) && bins.width >= 1);
        for (const v of values) {
          const index = binIndex(bins, v);
          assert.ok(index >= 0 && index < bins.count);
        }
      }),
    );
  });
});

describe('report time steps', () => {
  it('seconds for short crawls, minutes for long ones, at most 300 points', () => {
    assert.equal(timeStepMs(0), 1000);
    assert.equal(timeStepMs(58_000), 1000);
    assert.equal(timeStepMs(299_000), 1000, '300 points');
    assert.equal(timeStepMs(300_000), 2000, '301 points would be one too many');
    assert.equal(timeStepMs(3 * 3_600_000), 60_000);
    assert.equal(timeStepMs(40 * 3_600_000), 10 * 60_000);
    assert.equal(timeStepMs(30 * 86_400_000), 3 * 3_600_000);
    assert.equal(timeStepMs(400 * 86_400_000), 2 * 86_400_000);
    fc.assert(fc.property(fc.integer({ min: 0, max: 3e12 }), (span) => assert.ok(Math.floor(span / timeStepMs(span)) + 1 <= 300)));
  });

  it('the series has every step, empty ones as 0, the span\'s end included', () => {
    assert.deepEqual(rateSeries(4500, 1000, [{ bucket: 0, pages: 3 }, { bucket: 3, pages: 1 }, { bucket: 4, pages: 2 }]), [
      { offsetMs: 0, pages: 3 },
      { offsetMs: 1000, pages: 0 },
      { offsetMs: 2000, pages: 0 },
      { offsetMs: 3000, pages: 1 },
      { offsetMs: 4000, pages: 2 },
    ]);
  });

  it('labels elapsed time as a clock, and steps in words', () => {
    assert.deepEqual([0, 5000, 62_000, 3_723_000, 2 * 86_400_000 + 3 * 3_600_000].map(formatElapsed), ['0:00', '0:05', '1:02', '1:02:03', '2d 03:00']);
    assert.deepEqual([1000, 15_000, 60_000, 10 * 60_000, 6 * 3_600_000, 2 * 86_400_000].map(formatStep), ['1 s', '15 s', '1 min', '10 min', '6 h', '2 d']);
  });
});
