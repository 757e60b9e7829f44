import { DefaultLogger, Runtime, type LogLevel, type TelemetryOptions } from '@temporalio/worker';
import { metricBuckets } from '../../activities/crawl-metrics';
import { InvalidInputError, TcrawlError } from '../errors';
import { jsonLogLine, logFormat } from './log-format';

/** What a command asks of this process's Temporal runtime, from its flags. */
export interface RuntimeFlags {
  /** Serve Prometheus metrics on this TCP port, all interfaces (`tcrawl worker --metrics-port`). */
  metricsPort?: number;
}

/** `--metrics-port`: a TCP port a server can listen on, 1-65535. */
export function metricsPortArg(value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value.trim()) || port < 1 || port > 65535) throw new InvalidInputError(`--metrics-port "${value}" is not a TCP port (1-65535).`, 'TCRAWL_INVALID_METRICS_PORT');
  return port;
}

/**
 * Installs the SDK's runtime once, before the command runs (its options
 * cannot change later). With a metrics port, the runtime's Prometheus
 * exporter serves `/metrics` there: the SDK's own metrics (prefixed
 * `temporal_`) and tcrawl's (`tcrawl_`, created on the runtime's meter: see
 * activities/crawl-metrics.ts). A port another process holds is an error the
 * runtime reports at once, before the worker starts. With
 * `TCRAWL_LOG_FORMAT=json` every line on stderr is a JSON object: the SDK's,
 * its core's (forwarded to the same logger) and tcrawl's own (see `say`).
 */
export function installRuntime({ metricsPort }: RuntimeFlags): void {
  // The SDK's INFO lines (bundling, worker state) are noise in a terminal, and so are its core's per-call
  // retry warnings while Temporal is down (tcrawl says so once); TCRAWL_LOG_LEVEL=INFO or WARN shows them.
  const level = process.env.TCRAWL_LOG_LEVEL as LogLevel | undefined;
  const json = logFormat() === 'json';
  const filter = { core: level ?? 'ERROR', other: 'ERROR' } as const;
  const telemetryOptions: TelemetryOptions = { logging: json ? { filter, forward: {} } : { filter } };
  if (metricsPort !== undefined) {
    telemetryOptions.metrics = {
      prometheus: { bindAddress: `0.0.0.0:${metricsPort}`, countersTotalSuffix: true, useSecondsForDurations: true, histogramBucketOverrides: metricBuckets },
    };
  }
  try {
    Runtime.install({
      logger: json ? new DefaultLogger(level ?? 'WARN', (entry) => process.stderr.write(jsonLogLine(entry))) : new DefaultLogger(level ?? 'WARN'),
      telemetryOptions,
      // The SDK's own handlers swallow the first SIGINT/SIGTERM whenever no worker runs in this process
      // (`crawl --wait` beside a fleet, any command still starting up) and wait for batches without bound.
      // The commands that must wind down handle signals themselves (commands.ts: stoppable); the rest
      // keep Node's default, ending at once.
      shutdownSignals: [],
    });
  } catch (error) {
    if (metricsPort === undefined) throw error;
    throw new TcrawlError('TCRAWL_METRICS_PORT_UNAVAILABLE', `Cannot serve metrics on port ${metricsPort}: ${(error as Error).message}. Pick a free port for --metrics-port.`, { cause: error });
  }
}
