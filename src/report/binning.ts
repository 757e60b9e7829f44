/**
 * How a report groups values into bars and points: histogram bins with round
 * edges, and time steps for a rate over time. Pure: the SQL does the
 * counting with the bins chosen here (report-queries.ts).
 */

/** Equal-width bins: bin `i` holds values in `[lo + i·width, lo + (i+1)·width)`. */
export interface Bins {
  lo: number;
  width: number;
  count: number;
}

/** Most bars a histogram gets. */
export const MAX_BINS = 20;

/**
 * Round-edged bins covering `[min, max]`, at most `maxBins` of them: the width
 * is 1, 2, 2.5 or 5 times a power of ten (1, 2 or 5 for whole numbers, never
 * under 1), and the first edge a multiple of it.
 */
export function valueBins(min: number, max: number, integral: boolean, maxBins = MAX_BINS): Bins {
  if (!(max >= min)) throw new RangeError(`valueBins: max ${max} is below min ${min}`);
  const width = binWidth((max - min) / Math.max(1, maxBins - 1), integral);
  const lo = roundEdge(Math.floor(min / width) * width);
  // The count is one past the index max gets, computed as binIndex and the SQL compute it.
  return { lo, width, count: Math.min(maxBins, Math.floor((max - lo) / width) + 1) };
}

function binWidth(raw: number, integral: boolean): number {
  if (raw === 0) return 1;
  const power = 10 ** Math.floor(Math.log10(raw));
  const multiples = integral ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
  const width = roundEdge(multiples.find((m) => m * power >= raw * (1 - 1e-9))! * power);
  return integral ? Math.max(1, Math.round(width)) : width;
}

/** Edges as written in decimal: `0.1 * 3` is 0.3 here, not 0.30000000000000004. */
export function roundEdge(value: number): number {
  return Number(value.toPrecision(12));
}

/** Index of the bin `value` falls in, clamped to the bins (float error at the edges). Mirrors the SQL. */
export function binIndex(bins: Bins, value: number): number {
  return Math.min(bins.count - 1, Math.max(0, Math.floor((value - bins.lo) / bins.width)));
}

/** The edges of bin `index`. */
export function binEdges(bins: Bins, index: number): { lo: number; hi: number } {
  return { lo: roundEdge(bins.lo + index * bins.width), hi: roundEdge(bins.lo + (index + 1) * bins.width) };
}

/** Most points a rate-over-time chart gets. */
export const MAX_TIME_POINTS = 300;

const second = 1000;
const minute = 60 * second;
const hour = 60 * minute;
const day = 24 * hour;
const TIME_STEPS_MS = [1, 2, 5, 10, 15, 30].map((n) => n * second)
  .concat([1, 2, 5, 10, 15, 30].map((n) => n * minute))
  .concat([1, 2, 3, 6, 12].map((n) => n * hour))
  .concat(day);

/**
 * The time step for a span of `spanMs`: the shortest of 1, 2, 5, 10, 15, 30 s,
 * the same in minutes, 1, 2, 3, 6, 12 h or whole days that keeps the points
 * (one per step, the span's both ends included) at most `maxPoints`. So a
 * 4-minute crawl is charted per second and a 3-hour one per minute.
 */
export function timeStepMs(spanMs: number, maxPoints = MAX_TIME_POINTS): number {
  const fits = (step: number) => Math.floor(spanMs / step) + 1 <= maxPoints;
  return TIME_STEPS_MS.find(fits) ?? Math.ceil(spanMs / (maxPoints - 1) / day) * day;
}

/** One point of a rate over time: the step starting `offsetMs` after the first page. */
export interface RatePoint {
  offsetMs: number;
  /** Pages fetched in this step. */
  pages: number;
}

/**
 * Every step of the span in order, empty ones included (a stall shows as a
 * dip to 0, not as a line drawn across it), from the counts of the non-empty
 * steps (`bucket` = step index).
 */
export function rateSeries(spanMs: number, stepMs: number, counts: ReadonlyArray<{ bucket: number; pages: number }>): RatePoint[] {
  const points: RatePoint[] = Array.from({ length: Math.floor(spanMs / stepMs) + 1 }, (_, i) => ({ offsetMs: i * stepMs, pages: 0 }));
  for (const { bucket, pages } of counts) points[Math.min(points.length - 1, Math.max(0, bucket))]!.pages += pages;
  return points;
}

/** Time since the start as a clock reading: `0:05`, `1:02:03`, `2d 03:00`. */
export function formatElapsed(ms: number): string {
  const total = Math.round(ms / 1000);
  const [d, h, m, s] = [Math.floor(total / 86_400), Math.floor(total / 3600) % 24, Math.floor(total / 60) % 60, total % 60];
  const two = (n: number) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${two(h)}:${two(m)}`;
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${m}:${two(s)}`;
}

/** A step as words: `1 s`, `15 min`, `6 h`, `2 d`. */
export function formatStep(ms: number): string {
  if (ms % day === 0) return `${ms / day} d`;
  if (ms % hour === 0) return `${ms / hour} h`;
  if (ms % minute === 0) return `${ms / minute} min`;
  return `${ms / second} s`;
}
