import { execFile } from 'node:child_process';
import * as path from 'node:path';

/** The `tcrawl` executable of this checkout. */
export const tcrawlBin = path.resolve(__dirname, '../../bin/tcrawl.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `tcrawl args…` to its end with `env` added to this process's environment. */
export function tcrawl(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [tcrawlBin, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}
