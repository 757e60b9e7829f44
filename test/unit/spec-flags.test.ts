import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { z } from 'zod';
import { crawlSpecSchema, type CrawlSpec } from '../../src/spec';
import { kebabCase, specFileOnlyKeys, specFlags } from '../../src/spec-flags';
import { addSpecOptions, crawlSpecFrom } from '../../src/cli/crawl-options';
import type { JsonSchemaNode } from '../../src/spec-json-schema';
import { InvalidInputError, TcrawlError } from '../../src/errors';

const SEED = 'https://example.com/';

/** Parses `args` as the `crawl` command's spec flags would be, then builds the spec from them. */
function parse(args: string[]): CrawlSpec {
  const command = addSpecOptions(new Command('crawl').exitOverride().configureOutput({ writeErr: () => {} }).option('--spec <file>').argument('[seeds...]'));
  command.parse(args, { from: 'user' });
  return crawlSpecFrom(command.processedArgs[0] as string[], command.opts());
}

function commanderRefusal(args: string[]): string {
  try {
    parse(args);
  } catch (error) {
    assert.ok(error instanceof CommanderError, String(error));
    return error.message;
  }
  assert.fail(`accepted ${args.join(' ')}`);
}

function jsonSchemaOf(schema: z.ZodType): JsonSchemaNode {
  return z.toJSONSchema(schema, { io: 'input' }) as JsonSchemaNode;
}

/** Where a spec key (a path into the schema) is, or undefined. */
function schemaAt(keys: string[]): z.ZodType | undefined {
  let schema: z.ZodType | undefined = crawlSpecSchema;
  for (const key of keys) {
    while (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault) schema = schema.unwrap() as z.ZodType;
    schema = schema instanceof z.ZodObject ? (schema.shape as Record<string, z.ZodType>)[key] : undefined;
  }
  return schema;
}

describe('the crawl flags generated from the spec schema', () => {
  it('every flag sets a key of the spec, and no two share a name', () => {
    const flags = specFlags();
    for (const flag of flags) assert.ok(schemaAt(flag.path), `--${flag.name} sets ${flag.path.join('.')}, which is not a key of the spec`);
    assert.equal(new Set(flags.map((flag) => flag.name)).size, flags.length);
  });

  it('the flags tcrawl had before they were generated keep their names and keys', () => {
    const byName = new Map(specFlags().map((flag) => [flag.name, flag.path.join('.')]));
    const before: Record<string, string> = {
      'max-pages': 'maxPages', 'max-depth': 'maxDepth', scope: 'scope', include: 'include', exclude: 'exclude', rate: 'rate',
      'total-rate': 'totalRate', concurrency: 'concurrency', throttle: 'throttle', 'max-crawl-delay': 'maxCrawlDelaySecs',
      sitemaps: 'sitemaps', 'no-robots': 'obeyRobots', 'allow-private': 'allowPrivate', 'user-agent': 'userAgent',
      'max-body-bytes': 'maxBodyBytes', 'batch-size': 'batchSize', item: 'items.selector', field: 'items.fields', 'save-html': 'saveHtml',
    };
    for (const [name, key] of Object.entries(before)) assert.equal(byName.get(name), key, `--${name}`);
  });

  it('keys that are not flag-shaped are spec-file only; seeds are the arguments', () => {
    assert.deepEqual(specFileOnlyKeys(), ['rateGroups', 'headers', 'rules', 'outputs']);
    assert.ok(!specFlags().some((flag) => flag.path[0] === 'seeds'));
  });

  it('names come from the keys; types, defaults and descriptions from the schema, for any schema', () => {
    const flags = specFlags(
      jsonSchemaOf(
        z.strictObject({
          pageLimit: z.number().int().default(7).meta({ description: 'pages' }),
          speed: z.number().meta({ description: 'speed' }),
          fast: z.boolean().default(false).meta({ description: 'fast' }),
          careful: z.boolean().default(true).meta({ description: 'careful' }),
          mode: z.enum(['a', 'b']).default('a').meta({ description: 'mode' }),
          tags: z.array(z.string()).default([]).meta({ description: 'tags' }),
          hidden: z.string().optional().meta({ description: 'hidden', cli: false }),
          nested: z.object({ x: z.string().meta({ description: 'x' }) }).optional().meta({ description: 'nested' }),
          map: z.record(z.string(), z.string()).default({}).meta({ description: 'map' }),
        }),
      ),
    );
    assert.deepEqual(
      flags.map(({ name, path: keys, type, shape, choices, sets, default: value }) => ({ name, key: keys.join('.'), type, shape, choices, sets, value })),
      [
        { name: 'page-limit', key: 'pageLimit', type: 'integer', shape: 'single', choices: undefined, sets: undefined, value: 7 },
        { name: 'speed', key: 'speed', type: 'number', shape: 'single', choices: undefined, sets: undefined, value: undefined },
        { name: 'fast', key: 'fast', type: 'boolean', shape: 'single', choices: undefined, sets: true, value: false },
        { name: 'no-careful', key: 'careful', type: 'boolean', shape: 'single', choices: undefined, sets: false, value: true },
        { name: 'mode', key: 'mode', type: 'choice', shape: 'single', choices: ['a', 'b'], sets: undefined, value: 'a' },
        { name: 'tags', key: 'tags', type: 'string', shape: 'list', choices: undefined, sets: undefined, value: [] },
      ],
    );
    assert.equal(flags[0].description, 'pages');
    assert.equal(kebabCase('maxCrawlDelaySecs'), 'max-crawl-delay-secs');
  });

  it('metadata that asks for an impossible flag is refused', () => {
    const refusals: Array<[z.ZodType, RegExp]> = [
      [z.object({ groups: z.array(z.object({ a: z.string() })).meta({ description: 'g', flag: 'group' }) }), /groups has flag "group" but is not flag-shaped/],
      [z.object({ robots: z.boolean().default(true).meta({ description: 'r', flag: 'robots' }) }), /defaults to true needs a flag starting with "no-"/],
      [z.object({ quiet: z.boolean().default(false).meta({ description: 'q', flag: 'no-quiet' }) }), /defaults to false needs a flag not starting with "no-"/],
      [z.object({ a: z.number().meta({ description: 'a', flag: 'x' }), b: z.number().meta({ description: 'b', flag: 'x' }) }), /spec keys a and b both want the flag --x/],
    ];
    for (const [schema, message] of refusals) {
      assert.throws(() => specFlags(jsonSchemaOf(schema)), (error: unknown) => error instanceof TcrawlError && error.code === 'TCRAWL_SPEC_METADATA' && message.test(error.message));
    }
  });
});

describe('parsing the generated flags', () => {
  it('numbers, integers, strings, choices, booleans and repeatable flags reach their keys', () => {
    const spec = parse([
      SEED, '--max-pages', '7', '--rate', '0.5', '--scope', 'domain', '--user-agent', 'bot/1', '--include', 'a', '--include', 'b',
      '--ban-status', '503', '--ban-status', '429', '--max-crawl-delay', '9', '--no-robots', '--sitemaps', '--allow-private',
      '--connect-timeout-ms', '500', '--item', '.p', '--field', 'name=h2', '--field', 'link=a@href', '--save-html',
    ]);
    assert.equal(spec.maxPages, 7);
    assert.equal(spec.rate, 0.5);
    assert.equal(spec.scope, 'domain');
    assert.equal(spec.userAgent, 'bot/1');
    assert.deepEqual(spec.include, ['a', 'b']);
    assert.deepEqual(spec.banStatuses, [503, 429]);
    assert.equal(spec.maxCrawlDelaySecs, 9);
    assert.equal(spec.obeyRobots, false);
    assert.equal(spec.sitemaps, true);
    assert.equal(spec.allowPrivate, true);
    assert.equal(spec.connectTimeoutMs, 500);
    assert.deepEqual(spec.items, { selector: '.p', fields: { name: 'h2', link: 'a@href' } });
    assert.equal(spec.saveHtml, true);
  });

  it('flags not given leave the defaults, and a file\'s values, alone', () => {
    const defaults = parse([SEED]);
    assert.equal(defaults.obeyRobots, true);
    assert.equal(defaults.maxPages, 1000);
    assert.equal(defaults.items, undefined);
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tcrawl-spec-')), 'spec.json');
    writeFileSync(file, JSON.stringify({ seeds: [SEED], obeyRobots: false, sitemaps: true, maxPages: 3, items: { selector: '.a', fields: { x: 'b' } } }));
    const fromFile = parse(['--spec', file]);
    assert.equal(fromFile.obeyRobots, false);
    assert.equal(fromFile.sitemaps, true);
    assert.equal(fromFile.maxPages, 3);
    assert.deepEqual(fromFile.items, { selector: '.a', fields: { x: 'b' } });
    // The flags of a nested object give it whole; fields not given are none.
    assert.deepEqual(parse(['--spec', file, '--item', '.c']).items, { selector: '.c', fields: {} });
    assert.equal(parse(['--spec', file, '--max-pages', '4']).maxPages, 4);
  });

  it('bad values are refused naming the flag', () => {
    assert.match(commanderRefusal([SEED, '--max-redirects', 'many']), /option '--max-redirects <integer>' argument 'many' is invalid\. "many" is not a number\./);
    assert.match(commanderRefusal([SEED, '--throttle', 'slow']), /option '--throttle <value>' argument 'slow' is invalid\. Allowed choices are fixed, adaptive\./);
    assert.match(commanderRefusal([SEED, '--ban-status', '4o3']), /option '--ban-status <integer>' argument '4o3' is invalid\. "4o3" is not a number\./);
    assert.match(commanderRefusal([SEED, '--item', '.p', '--field', 'title']), /option '--field <name=value>' argument 'title' is invalid\. "title" must look like name=value\./);
    assert.match(commanderRefusal([SEED, '--robots']), /unknown option '--robots'/);
  });

  it('ranges and integers are the schema\'s: refused naming the key, as in a spec file', () => {
    for (const [args, message] of [[['--max-pages', '2.5'], /maxPages: Invalid input: expected int/], [['--ban-status', '700'], /banStatuses\.0: Too big/], [['--connect-timeout-ms', '0'], /connectTimeoutMs: Too small/]] as const) {
      assert.throws(() => parse([SEED, ...args]), (error: unknown) => error instanceof InvalidInputError && error.code === 'TCRAWL_INVALID_SPEC' && message.test(error.message), args.join(' '));
    }
  });
});
