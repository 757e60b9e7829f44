import * as path from 'node:path';
import type { RuntimeConfig } from '../config';
import { DependencyError } from '../errors';
import { buildOnce, findGo, findOnPath, isExecutableFile, type GoInstall } from './go-build';

/** The CLI release tcrawl builds when none is installed; it bundles Temporal Server 1.29. */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
/** Go older than this cannot build {@link TEMPORAL_CLI_MODULE}. */
const MIN_GO = { major: 1, minor: 25 };

const INSTALL_HINT =
  'Install the Temporal CLI (https://docs.temporal.io/cli#install, e.g. `brew install temporal` or ' +
  '`curl -sSf https://temporal.download/cli.sh | sh`) and put `temporal` on PATH or set TEMPORAL_CLI=/path/to/temporal; ' +
  `or install Go >= ${MIN_GO.major}.${MIN_GO.minor} so tcrawl can build it; ` +
  'or set TEMPORAL_ADDRESS=host:port to use a Temporal server that is already running.';

/**
 * Finds the `temporal` binary, building it with Go when there is none.
 *
 * Looks, in order, at: `TEMPORAL_CLI` (must be an executable file), `temporal`
 * on PATH, `<cacheDir>/bin/temporal` from an earlier build; else runs
 * `go install` of {@link TEMPORAL_CLI_MODULE} into `<cacheDir>/bin` (minutes,
 * once per machine). Concurrent callers share one build through a lock file.
 *
 * @returns the absolute path of the binary
 * @throws DependencyError `TCRAWL_TEMPORAL_CLI_INVALID` when `TEMPORAL_CLI` is
 *   not executable, `TCRAWL_TEMPORAL_CLI_MISSING` when there is nothing to run
 *   and no Go to build with, `TCRAWL_TEMPORAL_CLI_BUILD_FAILED` when the build fails.
 */
export async function findTemporalCli(config: RuntimeConfig, log: (line: string) => void): Promise<string> {
  const fromEnv = process.env.TEMPORAL_CLI;
  if (fromEnv) return checkExplicitCli(fromEnv);
  const onPath = findOnPath('temporal');
  if (onPath) return onPath;
  const cached = cachedCliPath(config);
  if (isExecutableFile(cached)) return cached;
  const go = await findGo(MIN_GO);
  if (!go.path) {
    throw new DependencyError('TCRAWL_TEMPORAL_CLI_MISSING', `The Temporal CLI was not found (${go.problem}). ${INSTALL_HINT}`);
  }
  log(`The Temporal CLI is not installed (no TEMPORAL_CLI, no \`temporal\` on PATH, nothing at ${cached}).`);
  await buildOnce(go, cliInstall(config), log);
  return cached;
}

/** Where a built CLI lives: outside the checkout, so every clone on the machine reuses it. */
export function cachedCliPath(config: RuntimeConfig): string {
  return path.join(config.cacheDir, 'bin', 'temporal');
}

function cliInstall(config: RuntimeConfig): GoInstall {
  return {
    what: 'the Temporal CLI',
    args: [TEMPORAL_CLI_MODULE],
    outputs: { temporal: cachedCliPath(config) },
    lockFile: path.join(config.cacheDir, 'temporal-build.lock'),
    failureCode: 'TCRAWL_TEMPORAL_CLI_BUILD_FAILED',
    installHint: INSTALL_HINT,
  };
}

function checkExplicitCli(file: string): string {
  const resolved = path.resolve(file);
  if (!isExecutableFile(resolved)) {
    throw new DependencyError(
      'TCRAWL_TEMPORAL_CLI_INVALID',
      `TEMPORAL_CLI=${file} is not an executable file. Point it at the \`temporal\` binary, or unset it to let tcrawl find or build one.`,
    );
  }
  return resolved;
}
