import { Command, CommanderError, Option } from 'commander';
import { TcrawlError, InvalidInputError } from '../errors';
import { addSpecOptions, collect, collectNumbers, numberArg } from './crawl-options';
import { cancelCommand, pauseCommand, resumeCommand, retryFailedCommand, setupCommand } from './steering-commands';
import { crawlCommand, devCommand, downCommand, setRateCommand, statusCommand, workerCommand } from './commands';
import { replayCommand } from './replay-command';
import { reportCommand } from './report-command';
import { listCommand } from './list-command';
import { deleteCommand, instantArg } from './delete-command';
import { exportCommand } from './export-command';
import { outputCommand } from './output-command';
import { exportFormats, exportKinds } from '../results/export';
import { defaultMaxConcurrentBatches } from '../worker';
import { installRuntime, metricsPortArg } from './runtime';

/** Exit codes: 0 success, 1 failure, 2 bad input; a signal that stops `crawl --wait` gives 128 + its number (commands.ts). */
const exitCode = { ok: 0, failure: 1, badInput: 2 } as const;

function buildProgram(run: (action: Promise<number>) => void): Command {
  const program = new Command('tcrawl')
    .description('A web crawler where every crawl is a durable Temporal workflow.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    // Once the flags are known and before any command runs: the runtime's options are fixed at install.
    .hook('preAction', (_program, command) => installRuntime(command.opts()));

  const crawl = program
    .command('crawl')
    .description('Start a crawl from one or more seed URLs')
    .argument('[seeds...]', 'absolute http(s) URLs (or "seeds" in --spec)')
    .option('--spec <file>', 'crawl spec, JSON or YAML (.yaml/.yml); flags override its values')
    .option('--id <crawlId>', 'crawl id (default: <host>-<timestamp>-<random>)')
    .option('--wait', 'wait for the crawl to finish and print a summary')
    .option('--json', 'machine output as one JSON object on stdout');
  addSpecOptions(crawl).action((seeds: string[], flags) => run(crawlCommand(seeds, flags)));

  program
    .command('worker')
    .description('Run a worker that joins the fleet on TEMPORAL_ADDRESS')
    .option('--concurrency <n>', `batches this worker runs at once (default ${defaultMaxConcurrentBatches})`, numberArg)
    .option('--metrics-port <port>', 'serve Prometheus metrics (the SDK\'s and tcrawl\'s) on http://<host>:<port>/metrics', metricsPortArg)
    .action((flags) => run(workerCommand(flags)));

  program
    .command('dev')
    .description('Run the local Temporal server, Postgres (if needed) and a worker in the foreground')
    .option('--concurrency <n>', `batches the worker runs at once (default ${defaultMaxConcurrentBatches})`, numberArg)
    .option('--metrics-port <port>', 'serve Prometheus metrics (the SDK\'s and tcrawl\'s) on http://<host>:<port>/metrics', metricsPortArg)
    .action((flags) => run(devCommand(flags)));

  program
    .command('status')
    .description('Show a crawl\'s progress')
    .argument('<crawlId>')
    .option('--json', 'as one JSON object on stdout')
    .addOption(new Option('--watch', 'follow it live until it ends: a progress bar on a terminal, a line per poll otherwise').conflicts('json'))
    .addOption(new Option('--interval <secs>', 'seconds between polls with --watch (default 1 on a terminal, 5 otherwise)').argParser(numberArg).implies({ watch: true }).conflicts('json'))
    .action((crawlId: string, flags) => run(statusCommand(crawlId, flags)));

  program
    .command('list')
    .description('List the crawls the Temporal server knows, one row per crawl (its latest run)')
    .addOption(new Option('--running', 'only running crawls').conflicts(['finished', 'failed']))
    .addOption(new Option('--finished', 'only crawls that completed').conflicts(['running', 'failed']))
    .addOption(new Option('--failed', 'only crawls that failed, were terminated or timed out').conflicts(['running', 'finished']))
    .option('--limit <n>', 'crawls listed at most, 1-1000 (default 50)', numberArg)
    .option('--query <query>', 'a Temporal visibility query ANDed with the rest, e.g. \'TcrawlPhase = "paused"\'')
    .option('--json', 'as one JSON array on stdout')
    .addHelpText(
      'after',
      '\nRunning crawls first, newest first; then the rest, most recently closed first. Cancelled crawls are in neither\n' +
        '--finished nor --failed. Phase, saved, queued, failed and seed host are blank for crawls whose workflow predates\n' +
        'search attributes. Query attributes: TcrawlCrawlId, TcrawlPhase, TcrawlSeedHost (Keyword), TcrawlSaved, TcrawlQueued,\n' +
        'TcrawlFailed (Int), and Temporal\'s own (ExecutionStatus, StartTime, CloseTime, ...).',
    )
    .action((flags) => run(listCommand(flags)));

  program
    .command('set-rate')
    .description('Change a rate of a running crawl (takes effect within a second)')
    .argument('<crawlId>')
    .argument('<rate>', 'request starts per second; 0 = no limit', numberArg)
    .option('--host <host>', 'one host (host[:port], as tcrawl status shows it)')
    .option('--group <name>', 'one rate group of the spec')
    .option('--total', "the crawl's total rate")
    .option('--json', 'print the new limits as JSON')
    .addHelpText('after', '\nWithout --host, --group or --total: the default per-host rate.')
    .action((crawlId: string, rate: number, flags) => run(setRateCommand(crawlId, rate, flags)));

  program
    .command('pause')
    .description('Pause a running crawl: no new batches, those in flight finish')
    .argument('<crawlId>')
    .option('--json', 'print the progress as JSON')
    .action((crawlId: string, flags) => run(pauseCommand(crawlId, flags)));

  program
    .command('resume')
    .description('Resume a paused crawl, or go on with a cancelled one as a new run')
    .argument('<crawlId>')
    .option('--json', 'machine output')
    .action((crawlId: string, flags) => run(resumeCommand(crawlId, flags)));

  program
    .command('cancel')
    .description('Cancel a running crawl: batches in flight stop, their URLs go back to the queue; resumable later')
    .argument('<crawlId>')
    .option('--json', 'print the final summary as JSON')
    .action((crawlId: string, flags) => run(cancelCommand(crawlId, flags)));

  program
    .command('retry-failed')
    .description('Re-queue the failed URLs of a crawl and crawl them (in the running crawl, or a new run of it)')
    .argument('<crawlId>')
    .option('--reason <reason>', 'only URLs that failed for this reason (repeatable), e.g. timeout, http_503', collect)
    .option('--status <code>', 'only URLs that failed with this HTTP status (repeatable)', collectNumbers)
    .option('--json', 'machine output')
    .action((crawlId: string, flags) => run(retryFailedCommand(crawlId, flags)));

  program
    .command('setup')
    .description("Register the namespace (if the Temporal server has none) and tcrawl's search attributes (the local dev server has both already)")
    .action(() => run(setupCommand()));

  program
    .command('replay')
    .description("Replay every execution of a crawl's workflow against this release's workflow code")
    .argument('<crawlId>')
    .option('--out <dir>', 'save each history as <runId>.json (temporal workflow show --output json) and index.json')
    .option('--json', 'as one JSON object on stdout')
    .addHelpText('after', '\nExit 0 when every execution replays, 1 when one diverges (the event and the SDK\'s message are printed).')
    .action((crawlId: string, flags) => run(replayCommand(crawlId, flags)));

  program
    .command('report')
    .description('Write a crawl\'s report: one self-contained HTML page of charts, from its rows in Postgres')
    .argument('<crawlId>')
    .option('--out <file>', 'where to write it (default report-<crawlId>.html)')
    .option('--field <name>', 'item field to chart as a histogram (default: the most numeric one)')
    .option('--top <n>', 'failure reasons and hosts shown; the rest are summed (default 10)', numberArg)
    .action((crawlId: string, flags) => run(reportCommand(crawlId, flags)));

  program
    .command('export')
    .description("Write a crawl's pages, items, failed URLs or discovered links as JSON lines or CSV")
    .argument('<crawlId>')
    .addOption(new Option('--what <kind>', 'which rows').choices(exportKinds).default('pages'))
    .addOption(new Option('--format <format>', 'JSON lines, or CSV (RFC 4180) with a header row').choices(exportFormats).default('jsonl'))
    .option('--out <file>', 'write to this file (atomically: complete or not at all) instead of stdout')
    .option('--html', "with --what pages: include each page's stored HTML")
    .action((crawlId: string, flags) => run(exportCommand(crawlId, flags)));

  program
    .command('output')
    .description("Write a crawl's outputs (its spec's mirror, tar and jsonl files) from the database; again at any time")
    .argument('<crawlId>')
    .option('--json', 'also print the reports as one JSON array on stdout')
    .action((crawlId: string, flags) => run(outputCommand(crawlId, flags)));

  program
    .command('delete')
    .description("Delete a crawl's rows and workflow executions, or (retention) every crawl finished before a date")
    .argument('[crawlId]')
    .option('--force', 'cancel the crawl first if it is running (terminated if no worker processes the cancellation within 30 s)')
    .option('--finished-before <date>', 'every crawl whose latest execution closed before this ISO date or date-time, and every crawl with no workflow left created before it', instantArg)
    .option('--dry-run', 'list what would be deleted; delete nothing')
    .option('--json', 'as one JSON object on stdout')
    .action((crawlId: string | undefined, flags) => run(deleteCommand(crawlId, flags)));

  program
    .command('down')
    .description('Stop the local Temporal server and embedded Postgres that crawl/worker left running')
    .action(() => run(downCommand()));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  let pending: Promise<number> | undefined;
  const program = buildProgram((action) => {
    pending = action;
  });
  try {
    program.parse(argv);
    process.exitCode = pending ? await pending : exitCode.ok;
  } catch (error) {
    process.exitCode = report(error);
  }
}

function report(error: unknown): number {
  if (error instanceof CommanderError) {
    // Help and version are not errors; commander already printed the message.
    return error.exitCode === 0 ? exitCode.ok : exitCode.badInput;
  }
  if (error instanceof InvalidInputError) {
    process.stderr.write(`tcrawl: ${error.message} [${error.code}]\n`);
    return exitCode.badInput;
  }
  if (error instanceof TcrawlError) {
    process.stderr.write(`tcrawl: ${error.message} [${error.code}]\n`);
    return exitCode.failure;
  }
  process.stderr.write(`tcrawl: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return exitCode.failure;
}
