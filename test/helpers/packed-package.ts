/**
 * tcrawl as a user gets it: this checkout (its dist/ as test/run.ts built it)
 * packed with `npm pack` and installed from the tarball into a temporary
 * project of its own, outside the checkout, so nothing resolves to this
 * checkout's sources or node_modules.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const repo = path.resolve(__dirname, '../..');

export interface CommandResult {
  /** null when a signal (or the timeout) ended the command. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Added to the test's environment (minus the variables npm sets for the test script). */
  env?: NodeJS.ProcessEnv;
  /** @default 120_000 */
  timeoutMs?: number;
}

export interface PackedProject {
  /** The temporary project: its package.json depends on the tarball, installed in node_modules/. */
  dir: string;
  /** The `npm pack` tarball. */
  tarball: string;
  /** Runs `command …args` in the project directory to completion; never rejects on a non-zero exit. */
  run(command: string, args: string[], options?: RunOptions): Promise<CommandResult>;
  /** Starts `command …args` in the project directory (stdout and stderr piped), for a process that runs until stopped. */
  start(command: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** Removes the project and the tarball. */
  remove(): void;
}

export interface PackedProjectOptions {
  /** More packages the project installs beside tcrawl (`name@version`), e.g. a user's `@types/node`. */
  alsoInstall?: string[];
}

/** The version of a package this checkout has installed, to install that same one (from npm's cache) elsewhere. */
export function installedVersion(name: string): string {
  return (JSON.parse(fs.readFileSync(path.join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
}

export async function installPackedPackage(options: PackedProjectOptions = {}): Promise<PackedProject> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tcrawl-packed-'));
  const remove = (): void => fs.rmSync(root, { recursive: true, force: true });
  try {
    const tarball = await pack(path.join(root, 'tarball'));
    const dir = path.join(root, 'project');
    fs.mkdirSync(dir);
    await mustRun('npm', ['init', '-y'], dir);
    // --prefer-offline: the same versions as this checkout's come from npm's cache, not the registry.
    await mustRun('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball, ...(options.alsoInstall ?? [])], dir);
    return {
      dir,
      tarball,
      run: (command, args, opts) => runIn(dir, command, args, opts),
      start: (command, args, env = {}) => spawn(command, args, { cwd: dir, env: { ...userEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] }),
      remove,
    };
  } catch (err) {
    remove();
    throw err;
  }
}

/**
 * `npm pack` of this checkout into `destination`; the path of the tarball. Without its `prepare`
 * script: that is `npm run build`, which test/run.ts has just run — dist/ is built from these sources.
 */
async function pack(destination: string): Promise<string> {
  fs.mkdirSync(destination, { recursive: true });
  await mustRun('npm', ['pack', '--ignore-scripts', '--pack-destination', destination], repo);
  const [tarball, ...more] = fs.readdirSync(destination).filter((f) => f.endsWith('.tgz'));
  if (!tarball || more.length > 0) throw new Error(`npm pack left ${more.length + (tarball ? 1 : 0)} tarballs in ${destination}, expected one`);
  return path.join(destination, tarball);
}

/**
 * The test's environment without what npm sets for the script that runs the
 * tests (`npm test`): an npm run in the project would take this checkout for
 * its project (`npm_config_local_prefix`), and a user's shell has none of it.
 */
function userEnv(): NodeJS.ProcessEnv {
  const scriptOnly = /^(npm_package_|npm_lifecycle_|npm_command$|npm_config_local_prefix$|npm_config_call$|init_cwd$)/i;
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !scriptOnly.test(name)));
}

function runIn(dir: string, command: string, args: string[], { env = {}, timeoutMs = 120_000 }: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: dir, env: { ...userEnv(), ...env }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const failure = error as (Error & { code?: number | string; signal?: NodeJS.Signals }) | null;
      if (failure && typeof failure.code !== 'number' && !failure.signal) {
        // The command could not start at all (ENOENT …): say so as its stderr.
        resolve({ code: null, signal: null, stdout, stderr: `${stderr}${failure.message}` });
        return;
      }
      resolve({ code: failure ? ((failure.code as number | undefined) ?? null) : 0, signal: failure?.signal ?? null, stdout, stderr });
    });
  });
}

async function mustRun(command: string, args: string[], dir: string): Promise<void> {
  const result = await runIn(dir, command, args, { timeoutMs: 300_000 });
  if (result.code !== 0) {
    throw new Error(`\`${command} ${args.join(' ')}\` in ${dir} failed (${result.signal ?? `exit code ${result.code}`}):\n${result.stderr.slice(-4000)}`);
  }
}
