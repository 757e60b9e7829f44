import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { RuntimeConfig } from '../config';
import { DependencyError } from '../errors';
import { isProcessAlive, readPidFile } from './local-service';

/** The CLI release tcrawl builds when none is installed; it bundles Temporal Server 1.29. */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';
/** Go older than this cannot build {@link TEMPORAL_CLI_MODULE}. */
const MIN_GO = { major: 1, minor: 25 };
/** Where Go's official tarball installs itself; often not on PATH in containers and CI images. */
const WELL_KNOWN_GO = '/usr/local/go/bin/go';
const PROGRESS_EVERY_MS = 15_000;
/** Longest we wait for another process's build before giving up on it. */
const FOREIGN_BUILD_TIMEOUT_MS = 30 * 60_000;

const execFileAsync = promisify(execFile);

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
  const go = await findGo();
  if (!go.path) {
    throw new DependencyError('TCRAWL_TEMPORAL_CLI_MISSING', `The Temporal CLI was not found (${go.problem}). ${INSTALL_HINT}`);
  }
  return buildWithLock(config, go.path, go.version, log);
}

/** Where a built CLI lives: outside the checkout, so every clone on the machine reuses it. */
export function cachedCliPath(config: RuntimeConfig): string {
  return path.join(config.cacheDir, 'bin', 'temporal');
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

function isExecutableFile(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) return false;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.resolve(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

type GoLookup = { path: string; version: string; problem?: undefined } | { path?: undefined; problem: string };

/** Finds a Go toolchain new enough to build the CLI, on PATH or in /usr/local/go. */
async function findGo(): Promise<GoLookup> {
  const candidates = [findOnPath('go'), WELL_KNOWN_GO].filter((c): c is string => !!c && isExecutableFile(c));
  if (candidates.length === 0) return { problem: `no \`go\` on PATH or at ${WELL_KNOWN_GO} to build it with` };
  const tooOld: string[] = [];
  for (const go of new Set(candidates)) {
    const version = await goVersion(go);
    if (version && isGoNewEnough(version)) return { path: go, version };
    tooOld.push(`${go} is ${version ?? 'of unknown version'}`);
  }
  return { problem: `Go >= ${MIN_GO.major}.${MIN_GO.minor} is needed to build it, but ${tooOld.join('; ')}` };
}

async function goVersion(go: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync(go, ['env', 'GOVERSION'], { timeout: 30_000 });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Accepts `go1.26.8`, `go1.25rc1`, `devel go1.26-abcdef`. */
export function isGoNewEnough(version: string): boolean {
  const m = /go(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > MIN_GO.major || (major === MIN_GO.major && minor >= MIN_GO.minor);
}

/**
 * Builds under a lock so two tcrawl processes never run `go install` into the
 * same place; whoever loses the race waits and then uses the winner's binary.
 * A lock whose owner died is taken over.
 */
async function buildWithLock(config: RuntimeConfig, go: string, goVer: string, log: (line: string) => void): Promise<string> {
  const target = cachedCliPath(config);
  const lockFile = path.join(config.cacheDir, 'temporal-build.lock');
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const deadline = Date.now() + FOREIGN_BUILD_TIMEOUT_MS;
  let announced = false;
  for (;;) {
    if (isExecutableFile(target)) return target;
    if (tryLock(lockFile)) break;
    const owner = readPidFile(lockFile);
    if (owner !== undefined && !isProcessAlive(owner)) {
      log(`Removing a stale Temporal CLI build lock left by pid ${owner}.`);
      fs.rmSync(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new DependencyError('TCRAWL_TEMPORAL_CLI_BUILD_FAILED', `Gave up waiting for another process (pid ${owner}) to build the Temporal CLI; remove ${lockFile} if it is stuck.`);
    }
    if (!announced) log(`Waiting for another tcrawl process (pid ${owner ?? '?'}) that is building the Temporal CLI…`);
    announced = true;
    await sleep(1_000);
  }
  try {
    // The winner of an earlier race may have finished between our check and the lock.
    if (isExecutableFile(target)) return target;
    await buildCli(go, goVer, target, log);
    return target;
  } finally {
    fs.rmSync(lockFile, { force: true });
  }
}

function tryLock(lockFile: string): boolean {
  try {
    fs.writeFileSync(lockFile, `${process.pid}\n`, { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

/** `go install` into a private GOBIN, then an atomic rename: a half-written binary is never at `target`. */
async function buildCli(go: string, goVer: string, target: string, log: (line: string) => void): Promise<void> {
  const gobin = fs.mkdtempSync(path.join(path.dirname(target), '.build-'));
  log(`The Temporal CLI is not installed (no TEMPORAL_CLI, no \`temporal\` on PATH, nothing at ${target}).`);
  log(`Building it with ${goVer} (${go} install ${TEMPORAL_CLI_MODULE}); this takes a few minutes once per machine…`);
  const started = Date.now();
  try {
    await runGoInstall(go, gobin, log);
    fs.renameSync(path.join(gobin, 'temporal'), target);
    log(`Built the Temporal CLI in ${Math.round((Date.now() - started) / 1000)}s: ${target}`);
  } finally {
    fs.rmSync(gobin, { recursive: true, force: true });
  }
}

function runGoInstall(go: string, gobin: string, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const output: string[] = [];
    let downloads = 0;
    // Go may be off PATH (found in /usr/local/go); its own tools expect to find it there.
    const env = { ...process.env, GOBIN: gobin, PATH: `${path.dirname(go)}${path.delimiter}${process.env.PATH ?? ''}` };
    const child = spawn(go, ['install', TEMPORAL_CLI_MODULE], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        if (line.startsWith('go: downloading')) downloads++;
        output.push(line);
        if (output.length > 200) output.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const ticker = setInterval(() => {
      const secs = Math.round((Date.now() - started) / 1000);
      log(`Still building the Temporal CLI… ${secs}s${downloads ? ` (${downloads} modules downloaded)` : ''}`);
    }, PROGRESS_EVERY_MS);
    child.once('error', (err) => {
      clearInterval(ticker);
      reject(buildFailed(`could not run ${go}: ${err.message}`, output, err));
    });
    child.once('close', (code, signal) => {
      clearInterval(ticker);
      if (code === 0) resolve();
      else reject(buildFailed(`\`go install\` exited with ${signal ?? `code ${code}`}`, output));
    });
  });
}

function buildFailed(what: string, output: string[], cause?: unknown): DependencyError {
  const tail = output.slice(-25).join('\n');
  const hints = [
    `If module downloads failed, check network access and GOPROXY (now ${process.env.GOPROXY || 'unset: https://proxy.golang.org,direct'}).`,
    'If Go complained about go.mod or vendoring, retry with GOFLAGS=-mod=mod.',
    'If checksum verification failed (sum.golang.org unreachable), retry with GONOSUMDB=<failing module path prefix> or GOSUMDB=off.',
    INSTALL_HINT,
  ];
  return new DependencyError(
    'TCRAWL_TEMPORAL_CLI_BUILD_FAILED',
    `Building the Temporal CLI failed: ${what}.\n--- last lines of go's output ---\n${tail || '(none)'}\n---\n${hints.join('\n')}`,
    { cause },
  );
}
