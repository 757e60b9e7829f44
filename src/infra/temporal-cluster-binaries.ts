import * as path from 'node:path';
import type { RuntimeConfig } from '../config';
import { DependencyError } from '../errors';
import { buildOnce, findGo, isExecutableFile, type GoInstall } from './go-build';

/**
 * The Temporal server release tcrawl builds for a self-hosted cluster: the
 * newest the Go module proxy serves (1.32.2 on 2026-12-01).
 */
export const TEMPORAL_SERVER_VERSION = 'v1.32.2';
const MODULE = 'go.temporal.io/server';
/**
 * The Go toolchain of the build: the `go` line of the server's go.mod. Any Go
 * since 1.21 fetches it through the module proxy when GOTOOLCHAIN names it.
 * Pinned rather than `auto`, which picks the newest patch release
 * (`switching to go1.26.11` on 2026-12-01): each new one would download a
 * toolchain and compile everything again.
 */
export const GO_TOOLCHAIN = 'go1.26.10';
const MIN_GO = { major: 1, minor: 21 };

const INSTALL_HINT =
  `Install Go >= ${MIN_GO.major}.${MIN_GO.minor} with access to a Go module proxy so tcrawl can build ${MODULE}@${TEMPORAL_SERVER_VERSION}; ` +
  'or run a Temporal server of your own (Temporal\'s Docker images, deploy/temporal/config.yaml) and set TEMPORAL_ADDRESS=host:port.';

/** The two programs of a self-hosted Temporal server, built from one release. */
export interface TemporalClusterBinaries {
  /** `go.temporal.io/server` version, e.g. `v1.32.2`. */
  version: string;
  /** `temporal-server` (`cmd/server`): frontend, history, matching and worker services. */
  server: string;
  /** `temporal-sql-tool` (`cmd/tools/sql`): creates databases and applies the schemas embedded in it. */
  sqlTool: string;
}

/** Where a release's binaries are kept: one folder per version, outside the checkout. */
export function cachedClusterBinaries(config: RuntimeConfig, version = TEMPORAL_SERVER_VERSION): TemporalClusterBinaries {
  const dir = path.join(config.cacheDir, 'temporal-server', version);
  return { version, server: path.join(dir, 'temporal-server'), sqlTool: path.join(dir, 'temporal-sql-tool') };
}

/**
 * The server and SQL tool of {@link TEMPORAL_SERVER_VERSION}, built with Go
 * into `<cacheDir>/temporal-server/<version>/` when not there yet (about ten
 * minutes on 2 busy cores, once per machine; concurrent callers share one build).
 *
 * @throws DependencyError `TCRAWL_TEMPORAL_SERVER_MISSING` when there is no Go
 *   to build with, `TCRAWL_TEMPORAL_SERVER_BUILD_FAILED` when the build fails.
 */
export async function findTemporalClusterBinaries(config: RuntimeConfig, log: (line: string) => void): Promise<TemporalClusterBinaries> {
  const binaries = cachedClusterBinaries(config);
  if (isExecutableFile(binaries.server) && isExecutableFile(binaries.sqlTool)) return binaries;
  const go = await findGo(MIN_GO);
  if (!go.path) {
    throw new DependencyError('TCRAWL_TEMPORAL_SERVER_MISSING', `The Temporal server ${TEMPORAL_SERVER_VERSION} is not built (${go.problem}). ${INSTALL_HINT}`);
  }
  log(`The Temporal server ${TEMPORAL_SERVER_VERSION} is not built yet (nothing at ${path.dirname(binaries.server)}).`);
  await buildOnce(go, clusterInstall(config, binaries), log);
  return binaries;
}

function clusterInstall(config: RuntimeConfig, binaries: TemporalClusterBinaries): GoInstall {
  return {
    what: `the Temporal server ${binaries.version} and its SQL tool`,
    // As the server's Makefile builds its release binaries: static, without the optional gRPC modules.
    args: ['-tags', 'disable_grpc_modules', `${MODULE}/cmd/server@${binaries.version}`, `${MODULE}/cmd/tools/sql@${binaries.version}`],
    env: { CGO_ENABLED: '0', GOTOOLCHAIN: GO_TOOLCHAIN },
    outputs: { server: binaries.server, sql: binaries.sqlTool },
    lockFile: path.join(config.cacheDir, `temporal-server-${binaries.version}-build.lock`),
    failureCode: 'TCRAWL_TEMPORAL_SERVER_BUILD_FAILED',
    installHint: INSTALL_HINT,
  };
}
