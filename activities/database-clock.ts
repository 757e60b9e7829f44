/**
 * Where an instant of the database's clock falls on this process's clock,
 * learnt the way NTP does from the queries that read the database's now: a
 * query asked at `asked` and answered at `answered` (local) read a now that
 * happened in between, so the offset is the midpoint's ± half the round
 * trip. The sample with the shortest round trip wins; a sample that
 * contradicts it (either clock stepped) replaces it, and so does any sample
 * once it is `renewAfterMs` old, so drift cannot build up.
 *
 * Local time is monotonic (performance.now()), so a step of this machine's
 * wall clock changes nothing.
 */
export class DatabaseClock {
  private best: { offsetMs: number; errorMs: number; atMs: number } | null = null;

  constructor(private readonly renewAfterMs = 10_000) {}

  /** A query asked and answered at these local instants read the database's now as `databaseNowMs`. */
  observe(askedMs: number, answeredMs: number, databaseNowMs: number): void {
    const sample = { offsetMs: databaseNowMs - (askedMs + answeredMs) / 2, errorMs: (answeredMs - askedMs) / 2, atMs: answeredMs };
    const best = this.best;
    const contradicts = best !== null && Math.abs(sample.offsetMs - best.offsetMs) > sample.errorMs + best.errorMs;
    if (best === null || contradicts || sample.errorMs <= best.errorMs || answeredMs - best.atMs > this.renewAfterMs) this.best = sample;
  }

  /** The latest database instant `localMs` can be (never earlier than it is); null before any observation. */
  toDatabaseMs(localMs: number): number | null {
    return this.best === null ? null : localMs + this.best.offsetMs + this.best.errorMs;
  }

  /** The latest local instant `databaseMs` can be (never earlier than it is); Infinity before any observation. */
  toLocalMs(databaseMs: number): number {
    return this.best === null ? Infinity : databaseMs - this.best.offsetMs + this.best.errorMs;
  }
}

/** This process's monotonic clock, as epoch ms with sub-millisecond precision. */
export function localNowMs(): number {
  return performance.timeOrigin + performance.now();
}
