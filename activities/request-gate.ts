/**
 * Paces the request starts of one batch (all to one host): the first no
 * earlier than the granted start, every next one at least one interval after
 * the previous one *actually* started. Starts pass the gate one at a time, so
 * concurrency can never bunch them, and a late timer only delays the rest.
 */
export class RequestGate {
  private turn: Promise<void> = Promise.resolve();
  private nextAtMs: number;
  requests = 0;
  firstStartMs: number | null = null;
  lastStartMs: number | null = null;

  constructor(
    startAtMs: number,
    private intervalMs: number,
    private readonly sleep: (ms: number) => Promise<void>,
  ) {
    this.nextAtMs = startAtMs;
  }

  /** Widens the spacing (a Crawl-delay learnt mid-batch); never narrows it. */
  slowTo(intervalMs: number): void {
    if (intervalMs <= this.intervalMs) return;
    this.intervalMs = intervalMs;
    if (this.lastStartMs !== null) this.nextAtMs = Math.max(this.nextAtMs, this.lastStartMs + intervalMs);
  }

  /** Resolves when the caller may send its request, and counts it as started. */
  pass(): Promise<void> {
    const mine = this.turn.then(async () => {
      const waitMs = this.nextAtMs - Date.now();
      if (waitMs > 0) await this.sleep(waitMs);
      const now = Date.now();
      this.requests++;
      this.firstStartMs ??= now;
      this.lastStartMs = now;
      this.nextAtMs = now + this.intervalMs;
    });
    this.turn = mine.catch(() => undefined);
    return mine;
  }
}
