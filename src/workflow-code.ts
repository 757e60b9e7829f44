/**
 * Which workflow code a worker runs. Compiled (dist/, as the CLI and the
 * package run), it loads the bundle `npm run build` made
 * (scripts/bundle-workflows.js), so a worker starts without webpack; from the
 * TypeScript sources (tsx, as the tests import them), it bundles the sources
 * at start, as the SDK does by default.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bundleWorkflowCode, type WorkerOptions } from '@temporalio/worker';
import { TcrawlError } from './errors';

/**
 * The crawl workflow code, as it is bundled (at build time, or by a worker
 * from the sources) and as `tcrawl replay` replays histories against it: one
 * path, so a replay checks what the workers run.
 */
export const crawlWorkflowsPath = require.resolve('../workflows');

/** Running as compiled JavaScript (dist/src/), not as TypeScript sources under tsx. */
const compiled = path.extname(__filename) === '.js';
/** dist/ when compiled. */
const distDir = path.resolve(__dirname, '..');
/** The checkout or installed package holding dist/. */
const packageDir = path.resolve(distDir, '..');

/** The prebuilt bundle of {@link crawlWorkflowsPath}, written by `npm run build`. */
export const workflowBundlePath = path.join(distDir, 'workflow-bundle.js');
/** What the bundle was built from, written beside it: see {@link WorkflowBundleStamp}. */
const stampPath = path.join(distDir, 'workflow-bundle.json');

/**
 * The bundle's inputs, by content rather than by time: npm extracts a
 * package, and `cp -R` or an image layer copies dist/, with file times that
 * say nothing about which file was built first.
 */
interface WorkflowBundleStamp {
  /** SHA-256 of the compiled workflow code (every .js file under dist/workflows/, with its path). */
  workflowsSha256: string;
  /** The @temporalio/workflow bundled in (a worker's SDK must run the workflow library it was built with). */
  temporalWorkflowVersion: string;
}

function currentStamp(): WorkflowBundleStamp {
  const dir = path.dirname(crawlWorkflowsPath);
  const hash = createHash('sha256');
  const files = fs.readdirSync(dir, { recursive: true }).map(String).filter((file) => file.endsWith('.js')).sort();
  for (const file of files) hash.update(`${file}\0`).update(fs.readFileSync(path.join(dir, file))).update('\0');
  const temporalWorkflowVersion = (JSON.parse(fs.readFileSync(require.resolve('@temporalio/workflow/package.json'), 'utf8')) as { version: string }).version;
  return { workflowsSha256: hash.digest('hex'), temporalWorkflowVersion };
}

const silent = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** `npm run build`'s last step: bundles the compiled workflow code into {@link workflowBundlePath}, with its stamp. */
export async function writeWorkflowBundle(): Promise<{ path: string; bytes: number }> {
  if (!compiled) throw new TcrawlError('TCRAWL_NOT_BUILT', 'the workflow bundle is made from the compiled code: run `npm run build`.');
  const stamp = currentStamp();
  // The SDK logs webpack's whole module list at INFO; a failed bundle still throws with webpack's errors.
  const { code } = await bundleWorkflowCode({ workflowsPath: crawlWorkflowsPath, logger: silent });
  fs.writeFileSync(workflowBundlePath, code);
  fs.writeFileSync(stampPath, `${JSON.stringify(stamp, null, 2)}\n`);
  return { path: workflowBundlePath, bytes: Buffer.byteLength(code) };
}

function refuse(problem: string, code: string): never {
  throw new TcrawlError(code, `${problem}: run \`npm run build\` in ${packageDir}.`);
}

/** In a checkout, a workflows/ source file changed after the bundle was built, if any (a package has no sources). */
function sourceNewerThan(builtAtMs: number): string | undefined {
  const sources = path.join(packageDir, 'workflows');
  if (!fs.existsSync(sources)) return undefined;
  const changed = fs
    .readdirSync(sources, { recursive: true })
    .map(String)
    .find((file) => file.endsWith('.ts') && fs.statSync(path.join(sources, file)).mtimeMs > builtAtMs);
  return changed && path.join('workflows', changed);
}

/**
 * The prebuilt bundle, refused when it is missing or not that of this code
 * (`TCRAWL_NOT_BUILT`, `TCRAWL_STALE_BUILD`, as bin/tcrawl.js refuses dist/).
 * Not bundled again instead: that would run the compiled code, which is just
 * as old as the sources were at the last build, and quietly bring back the
 * seconds of webpack at every start.
 */
function prebuiltBundle(): string {
  let stamp: WorkflowBundleStamp;
  let builtAtMs: number;
  try {
    stamp = JSON.parse(fs.readFileSync(stampPath, 'utf8')) as WorkflowBundleStamp;
    builtAtMs = Math.min(fs.statSync(stampPath).mtimeMs, fs.statSync(workflowBundlePath).mtimeMs);
  } catch {
    return refuse(`the workflow bundle is missing (${workflowBundlePath} and its stamp are made by \`npm run build\`)`, 'TCRAWL_NOT_BUILT');
  }
  const changed = sourceNewerThan(builtAtMs);
  if (changed) refuse(`${changed} changed since the workflow bundle was built`, 'TCRAWL_STALE_BUILD');
  const current = currentStamp();
  if (current.workflowsSha256 !== stamp.workflowsSha256) refuse(`the workflow bundle ${workflowBundlePath} is not that of the compiled code in ${path.dirname(crawlWorkflowsPath)}`, 'TCRAWL_STALE_BUILD');
  if (current.temporalWorkflowVersion !== stamp.temporalWorkflowVersion) {
    refuse(`the workflow bundle holds @temporalio/workflow ${stamp.temporalWorkflowVersion}, and ${current.temporalWorkflowVersion} is installed`, 'TCRAWL_STALE_BUILD');
  }
  return workflowBundlePath;
}

/**
 * The workflow code options of a crawl worker. Interceptor modules (tests'
 * workflow variants) are bundled with the code, so a worker given some
 * bundles at start, compiled or not.
 */
export function workflowCodeOptions(workflowInterceptorModules?: string[]): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'interceptors'> {
  if (!compiled || workflowInterceptorModules) return { workflowsPath: crawlWorkflowsPath, interceptors: { workflowModules: workflowInterceptorModules } };
  return { workflowBundle: { codePath: prebuiltBundle() } };
}
