import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { InvalidInputError } from '../errors';
import { parseCrawlSpec, type CrawlSpec } from '../spec';
import { specFileOnlyKeys, specFlags, type SpecFlag } from '../spec-flags';

/** The flags `crawl` hands over, by commander's attribute names: its own (`spec`), and those of the spec's keys. */
export interface CrawlFlags {
  spec?: string;
  [attribute: string]: unknown;
}

const specOptionsHeading = 'Spec options (each sets a key of the spec; flags override the --spec file):';

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
  const merged: Record<string, unknown> = { ...(flags.spec ? readSpecFile(flags.spec) : {}), ...specInputFrom(flags) };
  if (seedArgs.length > 0) merged.seeds = seedArgs;
  return parseCrawlSpec(merged, flags.spec ? `crawl spec (${flags.spec} and flags)` : 'crawl options');
}

/** The spec's flags, derived once from its schema. */
const crawlSpecFlags = specFlags();

/** Adds a flag for each flag-shaped spec key to `command` (the spec's defaults are shown, not set: a file's values must show through). */
export function addSpecOptions(command: Command): Command {
  for (const flag of crawlSpecFlags) command.addOption(optionFor(flag));
  const fileOnly = specFileOnlyKeys();
  if (fileOnly.length > 0) command.addHelpText('after', `\nSpec-file only (set them with --spec): ${fileOnly.join(', ')}.`);
  return command;
}

function optionFor(flag: SpecFlag): Option {
  const placeholder = flag.shape === 'map' ? ' <name=value>' : flag.type === 'boolean' ? '' : ` <${flag.type === 'choice' ? 'value' : flag.type}>`;
  const option = new Option(`--${flag.name}${placeholder}`, helpText(flag)).helpGroup(specOptionsHeading);
  if (flag.type === 'boolean') return option;
  // choices() first, for the help's list of them; the parser below replaces its own, which cannot repeat.
  if (flag.choices) option.choices(flag.choices);
  const parse = valueParser(flag);
  if (flag.shape === 'single') return option.argParser(parse);
  if (flag.shape === 'list') return option.argParser((value: string, previous: unknown[] = []) => [...previous, parse(value)]);
  return option.argParser((entry: string, previous: Record<string, unknown> = {}) => {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`"${entry}" must look like name=value.`);
    return { ...previous, [entry.slice(0, eq)]: parse(entry.slice(eq + 1)) };
  });
}

function valueParser(flag: SpecFlag): (value: string) => unknown {
  // Integers are parsed as numbers: the schema refuses a fraction naming the key, as it does in a spec file.
  if (flag.type === 'number' || flag.type === 'integer') return numberArg;
  const { choices } = flag;
  if (choices) {
    return (value) => {
      if (!choices.includes(value)) throw new InvalidArgumentError(`Allowed choices are ${choices.join(', ')}.`);
      return value;
    };
  }
  return (value) => value;
}

function helpText(flag: SpecFlag): string {
  const key = flag.path.join('.');
  const notes = [flag.type === 'boolean' ? `${key}: ${String(flag.sets)}` : key];
  if (flag.shape !== 'single') notes.push('repeatable');
  const shownDefault = Array.isArray(flag.default) ? flag.default.join(', ') : flag.default;
  if (shownDefault !== undefined && shownDefault !== '') notes.push(`default: ${String(shownDefault)}`);
  return `${flag.description} (${notes.join('; ')})`;
}

/** commander's name for a flag's value: `--max-pages` -> `maxPages`, `--no-robots` -> `robots`. */
function attributeOf(flag: SpecFlag): string {
  return new Option(`--${flag.name}`).attributeName();
}

/**
 * The spec keys the flags give. The flags of a nested object (`--item`,
 * `--field`) give the whole object, replacing the file's, with the keys they
 * can repeat empty when not given.
 */
function specInputFrom(flags: CrawlFlags): Record<string, unknown> {
  const input: Record<string, unknown> = {};
  const nested = new Map<string, Array<{ flag: SpecFlag; value: unknown }>>();
  for (const flag of crawlSpecFlags) {
    const raw = flags[attributeOf(flag)];
    // A boolean flag counts only when given: commander sets a `--no-x` flag's value true by default.
    const value = flag.type === 'boolean' && raw !== flag.sets ? undefined : raw;
    if (flag.path.length === 1) {
      if (value !== undefined) input[flag.path[0]] = value;
    } else {
      nested.set(flag.path[0], [...(nested.get(flag.path[0]) ?? []), { flag, value }]);
    }
  }
  for (const [key, members] of nested) {
    const given = members.filter(({ value }) => value !== undefined);
    if (given.length === 0) continue;
    input[key] = Object.fromEntries(members.map(({ flag, value }) => [flag.path[1], value ?? emptyOf(flag)]).filter(([, value]) => value !== undefined));
  }
  return input;
}

function emptyOf(flag: SpecFlag): unknown {
  return flag.shape === 'list' ? [] : flag.shape === 'map' ? {} : undefined;
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
