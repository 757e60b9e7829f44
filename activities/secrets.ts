import { TcrawlError } from '../src/errors';
import type { Secret } from '../src/rules/schema';

/**
 * Secrets are named in the spec and read here, from the worker's environment,
 * as each request is made: their values exist only in this process's memory
 * and on the wire — never in a spec, an activity input or result, a history
 * or a table.
 */

/** A secret the spec names that this worker's environment does not set: the URL fails `secret_missing`. */
export class MissingSecretError extends TcrawlError {
  constructor(readonly variable: string) {
    super('TCRAWL_SECRET_MISSING', `Environment variable ${variable} is not set on this worker (the spec names it as a secret); set it on every worker and retry the failed URLs`);
  }
}

export interface ResolvedValues {
  values: Record<string, string>;
  /** The secret values among them, to scrub from any message that is stored. */
  secrets: string[];
}

/** Plain values as they are, secrets read from the environment (prefix included). */
export function resolveValues(values: Record<string, string | Secret>, env: NodeJS.ProcessEnv = process.env): ResolvedValues {
  const resolved: ResolvedValues = { values: {}, secrets: [] };
  for (const [name, value] of Object.entries(values)) {
    if (typeof value === 'string') {
      resolved.values[name] = value;
      continue;
    }
    const secret = env[value.env];
    if (secret === undefined || secret === '') throw new MissingSecretError(value.env);
    resolved.values[name] = `${value.prefix ?? ''}${secret}`;
    resolved.secrets.push(secret);
  }
  return resolved;
}

/** `text` with every secret value in it replaced by `[secret]`. */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  let scrubbed = text;
  for (const secret of secrets) if (secret.length > 0) scrubbed = scrubbed.replaceAll(secret, '[secret]');
  return scrubbed;
}
