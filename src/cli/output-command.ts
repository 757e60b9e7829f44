import type { Pool } from 'pg';
import { writeOutputs, type OutputReport } from '../results/outputs';
import { withDatabase } from './export-command';
import { say as log } from './log-format';

/** `tcrawl output <crawlId>`: writes the crawl's `outputs` from its database (see src/results/outputs.ts). */
export async function outputCommand(crawlId: string, flags: { json?: boolean }): Promise<number> {
  return withDatabase(async (pool) => {
    const reports = await writeOutputsReported(pool, crawlId);
    if (flags.json) process.stdout.write(`${JSON.stringify(reports)}\n`);
    return 0;
  });
}

/** Writes the outputs, one line on stderr each (nothing when the spec has none). */
export async function writeOutputsReported(pool: Pool, crawlId: string): Promise<OutputReport[]> {
  const reports = await writeOutputs(pool, crawlId);
  for (const report of reports) log(describeOutput(report));
  if (reports.length === 0) log(`Crawl ${crawlId} has no outputs in its spec: its results are in Postgres (tcrawl export).`);
  return reports;
}

export function describeOutput(report: OutputReport): string {
  const { output, path, written, linked, conflicts, bytes, parts } = report;
  const size = `${(bytes / 1e6).toFixed(1)} MB`;
  if (output.type === 'jsonl') {
    return `Wrote ${output.what} to ${path}: ${written} records, ${size}${parts ? ` in ${parts.length} part${parts.length === 1 ? '' : 's'}` : ''}`;
  }
  if (output.type === 'item-files') {
    return `Wrote item files ${path}: ${written} files${conflicts ? ` (${conflicts} under .tcrawl-conflicts/: name taken or a field missing)` : ''}, ${size}`;
  }
  const what = output.type === 'mirror' ? 'files' : 'entries';
  const extras = [linked ? `${linked} hard-linked to an identical body` : '', conflicts ? `${conflicts} under .tcrawl-conflicts/ (path taken)` : ''].filter(Boolean);
  return `Wrote ${output.type} ${path}: ${written} ${what}${extras.length ? ` (${extras.join(', ')})` : ''}, ${size} of bodies`;
}
