/**
 * Pure measures over request start times (ms since the epoch, as recorded by
 * a test site), for asserting politeness from the site's side: what a host
 * actually saw, whatever the crawler believes it did.
 */

/** The starts in ascending order; sorts a copy only when they are not already sorted. */
function ascending(starts: readonly number[]): readonly number[] {
  for (let i = 1; i < starts.length; i++) {
    if (starts[i] < starts[i - 1]) return [...starts].sort((a, b) => a - b);
  }
  return starts;
}

/**
 * The most starts in any half-open window [t, t + windowMs), over all t.
 * Exact: a window holding the most starts can always be slid right until its
 * first start sits on its left edge, so only windows beginning at a start
 * need checking, and two pointers find them all. O(n) for sorted input
 * (recorded arrival times are), O(n log n) otherwise.
 */
export function maxStartsInWindow(starts: readonly number[], windowMs = 1000): number {
  if (!(windowMs > 0)) throw new RangeError(`windowMs must be positive, got ${windowMs}`);
  const t = ascending(starts);
  let best = 0;
  let end = 0;
  for (let begin = 0; begin < t.length; begin++) {
    if (end < begin) end = begin;
    while (end < t.length && t[end] < t[begin] + windowMs) end++;
    best = Math.max(best, end - begin);
  }
  return best;
}

/**
 * Mean start rate, per second, of the starts within [fromMs, toMs] (both
 * optional, inclusive): the number of gaps between consecutive starts divided
 * by the time from the first to the last of them. A sequence paced exactly
 * 1/r apart gives exactly r, however long it is; idle time before the first
 * or after the last start does not count. 0 with fewer than two starts.
 */
export function meanRate(starts: readonly number[], fromMs = -Infinity, toMs = Infinity): number {
  const t = ascending(starts).filter((at) => at >= fromMs && at <= toMs);
  if (t.length < 2) return 0;
  const spanMs = t[t.length - 1] - t[0];
  return spanMs > 0 ? ((t.length - 1) * 1000) / spanMs : Infinity;
}

/** The shortest gap between two consecutive starts, in ms; Infinity with fewer than two starts. */
export function minGapMs(starts: readonly number[]): number {
  const t = ascending(starts);
  let min = Infinity;
  for (let i = 1; i < t.length; i++) min = Math.min(min, t[i] - t[i - 1]);
  return min;
}
