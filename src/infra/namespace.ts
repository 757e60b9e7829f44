import { setTimeout as sleep } from 'node:timers/promises';
import { isGrpcServiceError, type ConnectionLike } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time';

/** How long a namespace tcrawl registers keeps closed workflows' histories (the Temporal CLI's default too). */
export const NAMESPACE_RETENTION = '3 days';

const NOT_FOUND = 5;
const ALREADY_EXISTS = 6;
/** The server's namespace cache refreshes every 10 s by default. */
const KNOWN_TIMEOUT_MS = 30_000;

/**
 * Registers `namespace` unless the server has it: a fresh self-hosted server
 * has none (the dev server makes `default` itself; Temporal Cloud's are made
 * in its console, and refuse this call). Returns whether it registered it,
 * once the server answers calls that name it.
 */
export async function registerNamespace(connection: Pick<ConnectionLike, 'workflowService' | 'operatorService'>, namespace: string): Promise<boolean> {
  try {
    await connection.workflowService.describeNamespace({ namespace });
    return false;
  } catch (error) {
    if (!isGrpcServiceError(error) || error.code !== NOT_FOUND) throw error;
  }
  try {
    await connection.workflowService.registerNamespace({ namespace, workflowExecutionRetentionPeriod: msToTs(NAMESPACE_RETENTION) });
  } catch (error) {
    // Another process (a fleet's workers running setup at once) registered it meanwhile.
    if (isGrpcServiceError(error) && error.code === ALREADY_EXISTS) return false;
    throw error;
  }
  await untilKnown(connection, namespace);
  return true;
}

/**
 * Describing a namespace reads the database, but most calls look it up in a
 * cache that learns of a new one only when it refreshes: until then they
 * fail NOT_FOUND (seen with `tcrawl setup` right after registering).
 */
async function untilKnown(connection: Pick<ConnectionLike, 'operatorService'>, namespace: string): Promise<void> {
  const deadline = Date.now() + KNOWN_TIMEOUT_MS;
  for (;;) {
    try {
      await connection.operatorService.listSearchAttributes({ namespace });
      return;
    } catch (error) {
      if (!isGrpcServiceError(error) || error.code !== NOT_FOUND || Date.now() > deadline) throw error;
    }
    await sleep(250);
  }
}
