import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import { Command, CommanderError, Option } from 'commander';
import { TcrawlError, InvalidInputError } from '../errors';
import { collect, numberArg } from './crawl-options';
import { crawlCommand, devCommand, downCommand, setRateCommand, statusCommand, workerCommand } from './commands';
import { deleteCommand, instantArg } from './delete-command';
import { exportCommand } from './export-command';
import { exportFormats, exportKinds } from '../results/export';

/** Exit codes: 0 success, 1 failure, 2 bad input; a signal that stops `crawl --wait` gives 128 + its number (commands.ts). */
const exitCode = { ok: 0, failure: 1, badInput: 2 } as const;

function buildProgram(run: (action: Promise<number>) => void): Command {
  const program = new Command('tcrawl')
    .description('A web crawler where every crawl is a durable Temporal workflow.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('crawl')
    .description('Start a crawl from one or more seed URLs')
    .argument('[seeds...]', 'absolute http(s) URLs (or "seeds" in --spec)')
    .option('--spec <file>', 'JSON crawl spec; flags override its values')
    .option('--id <crawlId>', 'crawl id (default: <host>-<timestamp>-<random>)')
    .option('--max-pages <n>', 'stop after this many URLs are finished (default 1000)', numberArg)
    .option('--max-depth <n>', 'links further than this from a seed are not followed (default 5)', numberArg)
    .addOption(new Option('--scope <scope>', 'which links to follow (default host)').choices(['host', 'domain', 'any']))
    .option('--include <regex>', 'follow only URLs matching (repeatable)', collect)
    .option('--exclude <regex>', 'never follow URLs matching (repeatable)', collect)
    .option('--rate <r>', 'request starts per second per host, 0 = no limit (default 1)', numberArg)
    .option('--total-rate <r>', 'request starts per second across all hosts of the crawl, 0 = no limit (default 0)', numberArg)
    .option('--concurrency <n>', 'requests in flight per host (default 2)', numberArg)
    .addOption(new Option('--throttle <mode>', 'fixed rates, or adaptive to response latency (default fixed)').choices(['fixed', 'adaptive']))
    .option('--max-crawl-delay <secs>', 'skip hosts whose robots.txt Crawl-delay is longer (default 60)', numberArg)
    .option('--sitemaps', 'also seed from robots.txt Sitemap: lines and /sitemap.xml')
    .option('--no-robots', 'ignore robots.txt')
    .option('--allow-private', 'allow loopback, private and link-local addresses')
    .option('--user-agent <ua>', 'User-Agent header (default tcrawl/0.1 (+https://github.com/tcrawl/tcrawl))')
    .option('--max-body-bytes <n>', 'larger responses are recorded as failed too_large (default 10485760)', numberArg)
    .option('--batch-size <n>', 'URLs per fetch activity (default 100)', numberArg)
    .option('--item <selector>', 'CSS selector of one item to extract')
    .option('--field <name=selector>', 'item field: "css" for text, "css@attr" for an attribute (repeatable)', collect)
    .option('--save-html', 'store each page\'s HTML in pages.html')
    .option('--wait', 'wait for the crawl to finish and print a summary')
    .option('--json', 'machine output as one JSON object on stdout')
    .action((seeds: string[], flags) => run(crawlCommand(seeds, flags)));

  program
    .command('worker')
    .description('Run a worker that joins the fleet on TEMPORAL_ADDRESS')
    .option('--concurrency <n>', 'batches this worker runs at once (default 8)', numberArg)
    .action((flags) => run(workerCommand(flags)));

  program
    .command('dev')
    .description('Run the local Temporal server, Postgres (if needed) and a worker in the foreground')
    .option('--concurrency <n>', 'batches the worker runs at once (default 8)', numberArg)
    .action((flags) => run(devCommand(flags)));

  program
    .command('status')
    .description('Show a crawl\'s progress')
    .argument('<crawlId>')
    .option('--json', 'as one JSON object on stdout')
    .action((crawlId: string, flags) => run(statusCommand(crawlId, flags)));

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
    .command('export')
    .description("Write a crawl's pages, items, failed URLs or discovered links as JSON lines or CSV")
    .argument('<crawlId>')
    .addOption(new Option('--what <kind>', 'which rows').choices(exportKinds).default('pages'))
    .addOption(new Option('--format <format>', 'JSON lines, or CSV (RFC 4180) with a header row').choices(exportFormats).default('jsonl'))
    .option('--out <file>', 'write to this file (atomically: complete or not at all) instead of stdout')
    .option('--html', "with --what pages: include each page's stored HTML")
    .action((crawlId: string, flags) => run(exportCommand(crawlId, flags)));

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
  // The SDK's INFO lines (bundling, worker state) are noise in a terminal, and so are its core's per-call
  // retry warnings while Temporal is down (tcrawl says so once); TCRAWL_LOG_LEVEL=INFO or WARN shows them.
  const level = process.env.TCRAWL_LOG_LEVEL as LogLevel | undefined;
  Runtime.install({
    logger: new DefaultLogger(level ?? 'WARN'),
    telemetryOptions: { logging: { filter: { core: level ?? 'ERROR', other: 'ERROR' } } },
    // The SDK's own handlers swallow the first SIGINT/SIGTERM whenever no worker runs in this process
    // (`crawl --wait` beside a fleet, any command still starting up) and wait for batches without bound.
    // The commands that must wind down handle signals themselves (commands.ts: stoppable); the rest
    // keep Node's default, ending at once.
    shutdownSignals: [],
  });
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
    process.stderr.write(`tcrawl: ${error.message}\n`);
    return exitCode.badInput;
  }
  if (error instanceof TcrawlError) {
    process.stderr.write(`tcrawl: ${error.message} [${error.code}]\n`);
    return exitCode.failure;
  }
  process.stderr.write(`tcrawl: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return exitCode.failure;
}
