/**
 * One measured export, run by bench/export.ts in a process of its own so
 * that nothing else (the insert of the rows) shows in its memory: runs
 * `tcrawl export` in-process (the command's own code, --out included),
 * samples RSS and heap every 100 ms, and prints one JSON line on stdout.
 *
 *   node --import tsx bench/export-run.ts <crawlId> <what> <format> <out>
 */
import { exportCommand } from '../src/cli/export-command';
import type { ExportFormat, ExportKind } from '../src/results/export';

export interface ExportRunResult {
  seconds: number;
  /** process.memoryUsage() when the export was about to start (modules loaded), MB. */
  baselineRssMb: number;
  peakRssMb: number;
  baselineHeapMb: number;
  peakHeapMb: number;
  samples: number;
}

const mb = (bytes: number) => bytes / (1024 * 1024);

async function main(): Promise<void> {
  const [crawlId, what, format, out] = process.argv.slice(2) as [string, ExportKind, ExportFormat, string];
  const baseline = process.memoryUsage();
  let peakRss = baseline.rss;
  let peakHeap = baseline.heapUsed;
  let samples = 0;
  const sampler = setInterval(() => {
    const { rss, heapUsed } = process.memoryUsage();
    peakRss = Math.max(peakRss, rss);
    peakHeap = Math.max(peakHeap, heapUsed);
    samples++;
  }, 100);
  const started = performance.now();
  await exportCommand(crawlId, { what, format, out });
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const result: ExportRunResult = {
    seconds,
    baselineRssMb: mb(baseline.rss),
    peakRssMb: mb(Math.max(peakRss, process.memoryUsage().rss)),
    baselineHeapMb: mb(baseline.heapUsed),
    peakHeapMb: mb(peakHeap),
    samples,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`export-run: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
