import type { ConnectionLike } from '@temporalio/client';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { searchAttributeTypes } from '../../workflows/search-attributes';

/** tcrawl's search attributes the namespace lacks (an empty list: all there). */
export async function missingSearchAttributes(connection: Pick<ConnectionLike, 'operatorService'>, namespace: string): Promise<string[]> {
  const { customAttributes } = await connection.operatorService.listSearchAttributes({ namespace });
  return Object.keys(searchAttributeTypes).filter((name) => !(name in (customAttributes ?? {})));
}

/**
 * Registers tcrawl's search attributes in `namespace` (those it lacks), so
 * crawls started afterwards show their progress in the Web UI's list.
 * Returns the names added. Refused by a server whose SQL visibility has no
 * room left for one of the types: Temporal's message says which.
 */
export async function registerSearchAttributes(connection: Pick<ConnectionLike, 'operatorService'>, namespace: string): Promise<string[]> {
  const missing = await missingSearchAttributes(connection, namespace);
  if (missing.length === 0) return [];
  const searchAttributes = Object.fromEntries(missing.map((name) => [name, encodeSearchAttributeIndexedValueType(searchAttributeTypes[name])!]));
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } catch (error) {
    // Another process (a fleet's workers starting at once) registered them meanwhile: that is success.
    if ((await missingSearchAttributes(connection, namespace)).length === 0) return [];
    throw error;
  }
  return missing;
}
