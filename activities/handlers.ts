import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CheerioAPI } from 'cheerio';
import { TcrawlError } from '../src/errors';
import type { CrawlRequest } from '../src/rules/request';
import { handlerResultSchema, type HandlerResult } from '../src/rules/schema';

/**
 * User-written handlers: a rule names a JavaScript module exporting
 * `handle(response, context)`; the worker imports it (once per process) and
 * calls it for each response the rule matches. Whatever goes wrong in one —
 * it cannot be loaded, it throws, it returns something else, it hangs — is
 * that URL's failure `handler_error`, never the batch's.
 */

/** What a handler is given about the response. */
export interface HandlerResponse {
  url: string;
  finalUrl: string;
  status: number;
  contentType: string;
  /** The body as text. */
  text: string;
  /** JSON responses: the parsed body. */
  json: unknown;
  /** HTML and XML responses: the parsed document. */
  $: CheerioAPI | undefined;
}

export interface HandlerContext {
  crawlId: string;
  label: string | undefined;
  depth: number;
  request: Pick<CrawlRequest, 'method' | 'url' | 'body'>;
  /** The rule's name. */
  rule: string;
}

type Handle = (response: HandlerResponse, context: HandlerContext) => unknown;

export class HandlerError extends TcrawlError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TCRAWL_HANDLER_ERROR', message, options);
  }
}

/** Imported handlers by absolute path: each module is loaded once per worker process. */
const loaded = new Map<string, Promise<Handle>>();

/** Where a handler module is: an absolute path, or relative to TCRAWL_HANDLERS_DIR (default: the worker's working directory). */
export function handlerPath(handler: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.TCRAWL_HANDLERS_DIR ?? process.cwd(), handler);
}

function loadHandler(handler: string): Promise<Handle> {
  const file = handlerPath(handler);
  let handle = loaded.get(file);
  if (!handle) {
    handle = import(pathToFileURL(file).href).then(
      (module: { handle?: unknown; default?: { handle?: unknown } }) => {
        const exported = module.handle ?? module.default?.handle;
        if (typeof exported !== 'function') throw new HandlerError(`Handler module ${file} does not export a function \`handle(response, context)\``);
        return exported as Handle;
      },
      (error: unknown) => {
        throw new HandlerError(`Cannot load handler module ${file} (TCRAWL_HANDLERS_DIR=${process.env.TCRAWL_HANDLERS_DIR ?? 'unset'}): ${(error as Error).message}`, { cause: error });
      },
    );
    // A module that failed to load is tried again by the next URL: it may have been deployed since.
    handle.catch(() => loaded.delete(file));
    loaded.set(file, handle);
  }
  return handle;
}

/** Runs a rule's handler on one response, within `timeoutMs`; its result checked. */
export async function runHandler(handler: string, response: HandlerResponse, context: HandlerContext, timeoutMs: number): Promise<HandlerResult> {
  const handle = await loadHandler(handler);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HandlerError(`Handler ${handler} did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  let returned: unknown;
  try {
    returned = await Promise.race([Promise.resolve().then(() => handle(response, context)), timeout]);
  } catch (error) {
    if (error instanceof HandlerError) throw error;
    throw new HandlerError(`Handler ${handler} threw: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
  // Returning nothing is yielding nothing.
  const checked = handlerResultSchema.safeParse(returned ?? {});
  if (!checked.success) {
    const problem = checked.error.issues[0];
    throw new HandlerError(`Handler ${handler} returned something other than { items, requests }: ${problem?.path.join('.') || '(result)'}: ${problem?.message}`);
  }
  return checked.data;
}
