/**
 * The previous release (workflow version 5), run as its users ran it:
 * extracted from git into a temporary folder, sharing this checkout's
 * node_modules, and built (its `tcrawl` runs its compiled dist/).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The release before workflow version 6: workflows/ there is version 5 (test/fixtures/histories/versions.json). */
export const previousRelease = 'b5d9649';

/** Its workflow version. */
export const previousReleaseVersion = 5;

const repo = path.resolve(__dirname, '../..');

export interface PreviousRelease {
  dir: string;
  /** `tcrawl worker` of that release, on `env`'s task queue; its stderr is kept for failure messages (shown live with TCRAWL_TEST_VERBOSE=1). */
  spawnWorker(env: NodeJS.ProcessEnv): ChildProcess;
  /** Runs `tcrawl …args` of that release to completion; rejects with its stderr if it exits non-zero. */
  run(args: string[], env: NodeJS.ProcessEnv): Promise<string>;
  stderrOf(proc: ChildProcess): string;
  remove(): void;
}

export function extractPreviousRelease(): PreviousRelease {
  try {
    execFileSync('git', ['-C', repo, 'cat-file', '-e', `${previousRelease}^{commit}`], { stdio: 'pipe' });
  } catch {
    throw new Error(
      `Commit ${previousRelease} (the previous release, workflow version ${previousReleaseVersion}) is not in the history of ${repo}. ` +
        'This test runs that release next to this one: clone with full history (or `git fetch --unshallow`).',
    );
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), `tcrawl-${previousRelease}-`));
  execFileSync('sh', ['-c', 'git -C "$REPO" archive "$REV" | tar -x -C "$DIR"'], { env: { ...process.env, REPO: repo, REV: previousRelease, DIR: dir } });
  symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  // Its own build: since version 5 that is the compiled code and the prebuilt workflow bundle its worker loads.
  execFileSync('npm', ['run', 'build'], { cwd: dir, stdio: 'pipe' });
  const bin = path.join(dir, 'bin/tcrawl.js');
  const stderr = new WeakMap<ChildProcess, string>();
  return {
    dir,
    spawnWorker(env) {
      const child = spawn(process.execPath, [bin, 'worker', '--concurrency', '4'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
      stderr.set(child, '');
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr.set(child, (stderr.get(child)! + chunk.toString()).slice(-8000));
        if (process.env.TCRAWL_TEST_VERBOSE) process.stderr.write(`[${previousRelease} worker ${child.pid}] ${chunk}`);
      });
      return child;
    },
    run(args, env) {
      return new Promise((resolve, reject) => {
        execFile(process.execPath, [bin, ...args], { cwd: dir, env, timeout: 60_000 }, (error, out, err) =>
          error ? reject(new Error(`tcrawl ${args[0]} of ${previousRelease} failed: ${err}`)) : resolve(out),
        );
      });
    },
    stderrOf: (proc) => stderr.get(proc) ?? '',
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** SIGTERM, as a deploy stops a worker (a graceful shutdown), and waits until it has exited. */
export async function stopGracefully(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  await exited;
}

/** Temporal's default worker identity of a process. */
export function identityOf(proc: ChildProcess): string {
  return `${proc.pid}@${os.hostname()}`;
}
