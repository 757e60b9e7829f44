import { TcrawlError } from './errors';
import { annotatedSpecSchema, type JsonSchemaNode } from './spec-json-schema';

/**
 * The `crawl` command's flags, derived from the spec's schema (DESIGN.md: every
 * flag is a key of the spec). A top-level key whose value is a number, an
 * integer, a boolean, a string, one of an enum or a list of those gets a flag
 * named after it (`maxPages` -> `--max-pages`); a key's `flag` metadata renames
 * it, and is how a key of a nested object (`items.selector` -> `--item`) or a
 * record (`items.fields` -> `--field name=value`) gets one. The rest is
 * spec-file only.
 */

export type FlagValueType = 'number' | 'integer' | 'string' | 'boolean' | 'choice';

export interface SpecFlag {
  /** The flag without its dashes: `max-pages`, `no-robots`. */
  name: string;
  /** The spec key it sets: `['maxPages']`, `['items', 'selector']`. */
  path: string[];
  type: FlagValueType;
  /** `single`: one value; `list`: repeatable, the values in order; `map`: repeatable `name=value`. */
  shape: 'single' | 'list' | 'map';
  /** For `choice`. */
  choices?: string[];
  /** For `boolean`: the value the flag sets (false for a `no-` flag). */
  sets?: boolean;
  description: string;
  /** The schema's default, when it has one. */
  default?: unknown;
  /** The key must be given when its parent object is (a key of a nested object). */
  required: boolean;
}

/** The schema's metadata asks for a flag that cannot be (a bug in src/spec.ts, caught by the unit tests). */
function metadataError(message: string): TcrawlError {
  return new TcrawlError('TCRAWL_SPEC_METADATA', message);
}

/** `maxPages` -> `max-pages`. */
export function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (upper) => `-${upper.toLowerCase()}`);
}

/** The flags of the `crawl` command, in the schema's key order. */
export function specFlags(spec: JsonSchemaNode = annotatedSpecSchema()): SpecFlag[] {
  const flags: SpecFlag[] = [];
  for (const [key, node] of Object.entries(spec.properties ?? {})) {
    const required = spec.required?.includes(key) ?? false;
    if (node.cli === false || node.cli === 'arguments') continue;
    const flag = flagOf([key], node, node.flag ?? kebabCase(key), required);
    if (flag) flags.push(flag);
    else if (node.flag !== undefined) throw metadataError(`spec key ${key} has flag "${node.flag}" but is not flag-shaped (a value, or a list of values)`);
    else flags.push(...nestedFlags([key], node));
  }
  assertUnique(flags);
  return flags;
}

/** Top-level keys that no flag sets. */
export function specFileOnlyKeys(spec: JsonSchemaNode = annotatedSpecSchema()): string[] {
  const flagged = new Set(specFlags(spec).map((flag) => flag.path[0]));
  return Object.entries(spec.properties ?? {})
    .filter(([key, node]) => node.cli !== 'arguments' && !flagged.has(key))
    .map(([key]) => key);
}

/** Keys of a nested object that carry a `flag`; the object itself has none. */
function nestedFlags(path: string[], node: JsonSchemaNode): SpecFlag[] {
  const object = objectOf(node);
  if (!object) return [];
  const flags: SpecFlag[] = [];
  for (const [key, child] of Object.entries(object.properties ?? {})) {
    if (child.flag === undefined) continue;
    const flag = flagOf([...path, key], child, child.flag, object.required?.includes(key) ?? false) ?? mapFlagOf([...path, key], child, child.flag);
    if (!flag) throw metadataError(`spec key ${[...path, key].join('.')} has flag "${child.flag}" but is not flag-shaped`);
    flags.push(flag);
  }
  return flags;
}

function flagOf(path: string[], node: JsonSchemaNode, name: string, required: boolean): SpecFlag | undefined {
  const base = { name, path, description: node.description ?? '', default: node.default, required };
  const single = valueTypeOf(node);
  if (single?.type === 'boolean') return { ...base, ...booleanFlag(path, node, name), ...single, shape: 'single' };
  if (single) return { ...base, ...single, shape: 'single' };
  const element = node.type === 'array' && node.items ? valueTypeOf(node.items) : undefined;
  if (element && element.type !== 'boolean') return { ...base, ...element, shape: 'list' };
  return undefined;
}

/** A boolean's flag turns on what is off by default, or (`--no-x`) off what is on. */
function booleanFlag(path: string[], node: JsonSchemaNode, name: string): { name: string; sets: boolean } {
  const sets = node.default !== true;
  if (node.flag === undefined) return { name: sets ? name : `no-${name}`, sets };
  if (sets === node.flag.startsWith('no-')) {
    throw metadataError(`spec key ${path.join('.')}: a boolean that defaults to ${String(!sets)} needs a flag ${sets ? 'not ' : ''}starting with "no-", not "${node.flag}"`);
  }
  return { name: node.flag, sets };
}

/** A record of values, as a repeatable `name=value` flag. */
function mapFlagOf(path: string[], node: JsonSchemaNode, name: string): SpecFlag | undefined {
  const values = typeof node.additionalProperties === 'object' ? valueTypeOf(node.additionalProperties) : undefined;
  if (!values || values.type === 'boolean' || node.properties) return undefined;
  return { name, path, description: node.description ?? '', default: node.default, required: false, ...values, shape: 'map' };
}

/** What a flag's value is, when the node is a plain value (or a union that takes a string: the flag gives one). */
function valueTypeOf(node: JsonSchemaNode): { type: FlagValueType; choices?: string[] } | undefined {
  if (node.enum?.every((value) => typeof value === 'string')) return { type: 'choice', choices: node.enum as string[] };
  if (node.type === 'integer' || node.type === 'number' || node.type === 'boolean' || node.type === 'string') return { type: node.type };
  const options = node.anyOf ?? node.oneOf;
  if (options?.some((option) => option.type === 'string' && option.enum === undefined)) return { type: 'string' };
  return undefined;
}

/** The object schema a key holds, when it holds one (possibly optional). */
function objectOf(node: JsonSchemaNode): JsonSchemaNode | undefined {
  return node.type === 'object' && node.properties ? node : undefined;
}

function assertUnique(flags: SpecFlag[]): void {
  const seen = new Map<string, string>();
  for (const flag of flags) {
    const other = seen.get(flag.name);
    if (other) throw metadataError(`spec keys ${other} and ${flag.path.join('.')} both want the flag --${flag.name}`);
    seen.set(flag.name, flag.path.join('.'));
  }
}
