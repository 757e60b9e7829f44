import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError } from 'commander';
import { InvalidInputError } from '../errors';
import { parseCrawlSpec, type CrawlSpec, type CrawlSpecInput } from '../spec';

/** The `crawl` command's flags as commander hands them over. */
export interface CrawlFlags {
  spec?: string;
  maxPages?: number;
  maxDepth?: number;
  scope?: string;
  include?: string[];
  exclude?: string[];
  rate?: number;
  totalRate?: number;
  concurrency?: number;
  maxCrawlDelay?: number;
  throttle?: string;
  sitemaps?: boolean;
  robots?: boolean;
  allowPrivate?: boolean;
  userAgent?: string;
  maxBodyBytes?: number;
  batchSize?: number;
  item?: string;
  field?: string[];
  saveHtml?: boolean;
}

export function numberArg(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new InvalidArgumentError(`"${value}" is not a number.`);
  return parsed;
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** A repeatable integer flag (an HTTP status, …). */
export function collectNumbers(value: string, previous: number[] = []): number[] {
  const parsed = numberArg(value);
  if (!Number.isInteger(parsed)) throw new InvalidArgumentError(`"${value}" is not an integer.`);
  return [...previous, parsed];
}

/**
 * Builds the crawl spec from an optional `--spec` file overlaid with flags,
 * and validates it once (seeds come out canonical).
 */
export function crawlSpecFrom(seedArgs: string[], flags: CrawlFlags): CrawlSpec {
  const fromFile = flags.spec ? readSpecFile(flags.spec) : {};
  const overrides: Partial<CrawlSpecInput> = {
    maxPages: flags.maxPages,
    maxDepth: flags.maxDepth,
    scope: flags.scope as CrawlSpecInput['scope'],
    include: flags.include,
    exclude: flags.exclude,
    rate: flags.rate,
    totalRate: flags.totalRate,
    concurrency: flags.concurrency,
    maxCrawlDelaySecs: flags.maxCrawlDelay,
    throttle: flags.throttle as CrawlSpecInput['throttle'],
    sitemaps: flags.sitemaps,
    obeyRobots: flags.robots === false ? false : undefined,
    allowPrivate: flags.allowPrivate,
    userAgent: flags.userAgent,
    maxBodyBytes: flags.maxBodyBytes,
    batchSize: flags.batchSize,
    items: itemsFromFlags(flags),
    saveHtml: flags.saveHtml,
  };
  const merged: Record<string, unknown> = { ...fromFile };
  for (const [key, value] of Object.entries(overrides)) if (value !== undefined) merged[key] = value;
  if (seedArgs.length > 0) merged.seeds = seedArgs;
  return parseCrawlSpec(merged, flags.spec ? `crawl spec (${flags.spec} and flags)` : 'crawl options');
}

function readSpecFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new InvalidInputError(`Cannot read spec file ${file}: ${(error as Error).message}`, 'TCRAWL_INVALID_SPEC');
  }
  const format = /\.ya?ml$/i.test(file) ? 'YAML' : 'JSON';
  let parsed: unknown;
  try {
    // YAML 1.2's core schema: no `yes`/`no` booleans or sexagesimal numbers, so a value means what JSON would make of it.
    parsed = format === 'YAML' ? parseYaml(text, { prettyErrors: true, uniqueKeys: true }) : JSON.parse(text);
  } catch (error) {
    throw new InvalidInputError(`Spec file ${file} is not valid ${format}: ${(error as Error).message}`, 'TCRAWL_INVALID_SPEC');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidInputError(`Spec file ${file} must hold a ${format === 'YAML' ? 'mapping' : 'JSON object'} of spec keys`, 'TCRAWL_INVALID_SPEC');
  }
  return parsed as Record<string, unknown>;
}

function itemsFromFlags({ item, field = [] }: CrawlFlags): CrawlSpecInput['items'] {
  if (item === undefined) {
    if (field.length > 0) throw new InvalidInputError('--field needs --item <selector> to say what one item is', 'TCRAWL_INVALID_SPEC');
    return undefined;
  }
  const fields: Record<string, string> = {};
  for (const entry of field) {
    const eq = entry.indexOf('=');
    if (eq <= 0 || eq === entry.length - 1) {
      throw new InvalidInputError(`--field "${entry}" must look like name=selector (e.g. price=.price or link=a@href)`, 'TCRAWL_INVALID_SPEC');
    }
    fields[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return { selector: item, fields };
}
