/**
 * Building Go programs tcrawl needs (the Temporal CLI, the Temporal server and
 * its SQL tool) once per machine into its cache: finding a Go toolchain,
 * `go install` into a private folder, atomic renames into place, and a lock
 * so that concurrent tcrawl processes share one build.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { DependencyError } from '../errors';
import { isProcessAlive, readPidFile } from './local-service';

/** Where Go's official tarball installs itself; often not on PATH in containers and CI images. */
const WELL_KNOWN_GO = '/usr/local/go/bin/go';
const PROGRESS_EVERY_MS = 15_000;
/** Longest we wait for another process's build before giving up on it. */
const FOREIGN_BUILD_TIMEOUT_MS = 30 * 60_000;

const execFileAsync = promisify(execFile);

/** A Go release, as in `go1.25`: the oldest that may build something. */
export interface GoVersion {
  major: number;
  minor: number;
}

/** One `go install` whose binaries tcrawl keeps in its cache. */
export interface GoInstall {
  /** What is built, for messages: `the Temporal CLI`. */
  what: string;
  /** The arguments after `go install`: flags, then `package@version`s. */
  args: string[];
  /** Environment for the build on top of this process's (`CGO_ENABLED`, `GOTOOLCHAIN`). */
  env?: NodeJS.ProcessEnv;
  /** The name of each binary `go install` writes, and the absolute path it is kept at. Built once every one exists. */
  outputs: Record<string, string>;
  /** Held while building, so two processes never build into the same place. */
  lockFile: string;
  /** The code of the {@link DependencyError} a failed build throws. */
  failureCode: string;
  /** What a user can do instead, added to every error. */
  installHint: string;
}

export function isExecutableFile(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) return false;
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.resolve(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

export type GoLookup = { path: string; version: string; problem?: undefined } | { path?: undefined; problem: string };

/** Finds a Go toolchain of at least `min`, on PATH or in /usr/local/go. */
export async function findGo(min: GoVersion): Promise<GoLookup> {
  const candidates = [findOnPath('go'), WELL_KNOWN_GO].filter((c): c is string => !!c && isExecutableFile(c));
  if (candidates.length === 0) return { problem: `no \`go\` on PATH or at ${WELL_KNOWN_GO} to build it with` };
  const tooOld: string[] = [];
  for (const go of new Set(candidates)) {
    const version = await goVersion(go);
    if (version && isGoAtLeast(version, min)) return { path: go, version };
    tooOld.push(`${go} is ${version ?? 'of unknown version'}`);
  }
  return { problem: `Go >= ${min.major}.${min.minor} is needed to build it, but ${tooOld.join('; ')}` };
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
export function isGoAtLeast(version: string, min: GoVersion): boolean {
  const m = /go(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > min.major || (major === min.major && minor >= min.minor);
}

function isBuilt(install: GoInstall): boolean {
  return Object.values(install.outputs).every(isExecutableFile);
}

/**
 * Runs `install` unless its outputs exist, under its lock: whoever loses a race
 * waits and then uses the winner's binaries. A lock whose owner died is taken over.
 */
export async function buildOnce(go: { path: string; version: string }, install: GoInstall, log: (line: string) => void): Promise<void> {
  const dirs = new Set(Object.values(install.outputs).map((file) => path.dirname(file)));
  for (const dir of [...dirs, path.dirname(install.lockFile)]) fs.mkdirSync(dir, { recursive: true });
  const deadline = Date.now() + FOREIGN_BUILD_TIMEOUT_MS;
  let announced = false;
  for (;;) {
    if (isBuilt(install)) return;
    if (tryLock(install.lockFile)) break;
    const owner = readPidFile(install.lockFile);
    if (owner !== undefined && !isProcessAlive(owner)) {
      log(`Removing a stale build lock for ${install.what} left by pid ${owner}.`);
      fs.rmSync(install.lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new DependencyError(install.failureCode, `Gave up waiting for another process (pid ${owner}) to build ${install.what}; remove ${install.lockFile} if it is stuck.`);
    }
    if (!announced) log(`Waiting for another tcrawl process (pid ${owner ?? '?'}) that is building ${install.what}…`);
    announced = true;
    await sleep(1_000);
  }
  try {
    // The winner of an earlier race may have finished between our check and the lock.
    if (!isBuilt(install)) await build(go, install, log);
  } finally {
    fs.rmSync(install.lockFile, { force: true });
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

/** `go install` into a private GOBIN, then atomic renames: a half-written binary is never at an output's path. */
async function build(go: { path: string; version: string }, install: GoInstall, log: (line: string) => void): Promise<void> {
  const firstOutput = Object.values(install.outputs)[0];
  const gobin = fs.mkdtempSync(path.join(path.dirname(firstOutput), '.build-'));
  // A pinned GOTOOLCHAIN is what compiles; the Go found only fetches and runs it.
  const toolchain = install.env?.GOTOOLCHAIN ? `${install.env.GOTOOLCHAIN} (run by ${go.version})` : go.version;
  log(`Building ${install.what} with ${toolchain} (${go.path} install ${install.args.join(' ')}); this takes minutes, once per machine…`);
  const started = Date.now();
  try {
    await runGoInstall(go.path, gobin, install, log);
    for (const [name, target] of Object.entries(install.outputs)) fs.renameSync(path.join(gobin, name), target);
    log(`Built ${install.what} in ${Math.round((Date.now() - started) / 1000)}s: ${Object.values(install.outputs).join(', ')}`);
  } finally {
    fs.rmSync(gobin, { recursive: true, force: true });
  }
}

function runGoInstall(go: string, gobin: string, install: GoInstall, log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const output: string[] = [];
    let downloads = 0;
    // Go may be off PATH (found in /usr/local/go); its own tools expect to find it there.
    const env = { ...process.env, ...install.env, GOBIN: gobin, PATH: `${path.dirname(go)}${path.delimiter}${process.env.PATH ?? ''}` };
    const child = spawn(go, ['install', ...install.args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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
      log(`Still building ${install.what}… ${secs}s${downloads ? ` (${downloads} modules downloaded)` : ''}`);
    }, PROGRESS_EVERY_MS);
    child.once('error', (err) => {
      clearInterval(ticker);
      reject(buildFailed(install, `could not run ${go}: ${err.message}`, output, err));
    });
    child.once('close', (code, signal) => {
      clearInterval(ticker);
      if (code === 0) resolve();
      else reject(buildFailed(install, `\`go install\` exited with ${signal ?? `code ${code}`}`, output));
    });
  });
}

function buildFailed(install: GoInstall, what: string, output: string[], cause?: unknown): DependencyError {
  const tail = output.slice(-25).join('\n');
  const hints = [
    `If module downloads failed, check network access and GOPROXY (now ${process.env.GOPROXY || 'unset: https://proxy.golang.org,direct'}).`,
    'If Go complained about go.mod or vendoring, retry with GOFLAGS=-mod=mod.',
    'If checksum verification failed (sum.golang.org unreachable), retry with GONOSUMDB=<failing module path prefix> or GOSUMDB=off.',
    install.installHint,
  ];
  return new DependencyError(
    install.failureCode,
    `Building ${install.what} failed: ${what}.\n--- last lines of go's output ---\n${tail || '(none)'}\n---\n${hints.join('\n')}`,
    { cause },
  );
}
