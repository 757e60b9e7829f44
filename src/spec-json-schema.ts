import { z } from 'zod';
import { crawlSpecSchema } from './spec';

/**
 * The crawl spec as JSON Schema, generated from its zod schema (input side:
 * keys with a default are optional). It is the one description of the spec
 * that the CLI's flags, the README's tables and the published schema file are
 * read from, so they follow whatever keys the zod schema has.
 */

/** The parts of a JSON Schema node the generators read. */
export interface JsonSchemaNode {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, JsonSchemaNode>;
  required?: string[];
  additionalProperties?: boolean | JsonSchemaNode;
  items?: JsonSchemaNode;
  anyOf?: JsonSchemaNode[];
  oneOf?: JsonSchemaNode[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  /** Metadata of src/spec.ts: the flag's name. */
  flag?: string;
  /** Metadata of src/spec.ts: `false` = no flag, `'arguments'` = the positional arguments. */
  cli?: false | 'arguments';
}

/** Metadata keys that are for tcrawl's generators, not for editors: left out of the published schema. */
const generatorMetadata = ['flag', 'cli'] as const;

/** The spec's JSON Schema with tcrawl's own metadata (`flag`, `cli`) on its nodes. */
export function annotatedSpecSchema(schema: z.ZodType = crawlSpecSchema): JsonSchemaNode {
  return z.toJSONSchema(schema, { io: 'input' }) as JsonSchemaNode;
}

/** The published schema's file in the package (package.json exports it as `tcrawl/schema.json`). */
export const publishedSchemaFile = 'schema/crawl-spec.schema.json';

/**
 * The JSON Schema published for editors (`npm run schema` writes it to
 * {@link publishedSchemaFile}). It declares the `$schema` key a spec file may
 * carry to name it, which parseCrawlSpec ignores.
 */
export function publishedSpecSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(crawlSpecSchema, {
    io: 'input',
    override: ({ jsonSchema }) => {
      for (const key of generatorMetadata) delete (jsonSchema as Record<string, unknown>)[key];
    },
  }) as Record<string, unknown> & { properties: Record<string, unknown> };
  const { $schema, ...rest } = generated;
  return {
    $schema,
    title: 'tcrawl crawl spec',
    description: 'A crawl spec for `tcrawl crawl --spec <file>` (JSON, or YAML 1.2) and parseCrawlSpec.',
    ...rest,
    properties: {
      $schema: { type: 'string', description: 'The JSON Schema this file follows, for editors; ignored by tcrawl.' },
      ...rest.properties,
    },
  };
}

/** The published schema as its file holds it. */
export function publishedSpecSchemaText(): string {
  return `${JSON.stringify(publishedSpecSchema(), null, 2)}\n`;
}
