/**
 * Runs `work` over `items` with at most `concurrency` at once. The first
 * failure aborts `stop`, so the siblings stop too (a retry must never run
 * beside a half-dead attempt: two gates on one host), and is thrown once all
 * have settled.
 */
export async function inParallel<T>(items: T[], concurrency: number, stop: AbortController, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const runner = async () => {
    while (next < items.length && !stop.signal.aborted) {
      try {
        await work(items[next++]);
      } catch (error) {
        failure ??= { error };
        stop.abort(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, runner));
  if (failure) throw failure.error;
  if (stop.signal.aborted) throw stop.signal.reason;
}
