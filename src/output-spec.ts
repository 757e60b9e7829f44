import { z } from 'zod';
import { text } from './spec-values';

/**
 * The spec's `outputs`: files a crawl's results are written to beside its
 * Postgres tables — a mirror, a tar archive, JSON lines, a file per item. Workers never write
 * them: they keep each response body once, by digest, in Postgres (table
 * `bodies`), which every worker of a fleet reaches; `tcrawl output` (and
 * `tcrawl crawl --wait` at the end) assembles the files from there, so the
 * output is one complete set whichever workers fetched what. See
 * src/results/outputs.ts.
 */

const mirrorOutputSchema = z
  .strictObject({
    type: z.literal('mirror').meta({ description: 'A mirror: every saved response body as a file; identical bodies are one file, hard-linked.' }),
    dir: text.min(1).meta({ description: 'Directory of the mirror: each saved body at `host[:port]/path` (see the README for the naming); relative to where `tcrawl output` runs.' }),
  })
  .meta({ description: 'A mirror of the saved response bodies.' });

const tarOutputSchema = z
  .strictObject({
    type: z.literal('tar').meta({ description: 'A tar archive of every saved response body, entries named as in a mirror; identical bodies are one entry and hard links.' }),
    path: text.min(1).meta({ description: 'The archive file; relative to where `tcrawl output` runs.' }),
    gzip: z.boolean().optional().meta({ description: 'Compress with gzip (unset: when `path` ends in `.gz` or `.tgz`).' }),
  })
  .meta({ description: 'A tar archive of the saved response bodies.' });

const jsonlOutputSchema = z
  .strictObject({
    type: z.literal('jsonl').meta({ description: 'JSON lines: one record per line.' }),
    path: text.min(1).meta({ description: 'The file; with `rotateBytes`, parts `name.00001.ext`, `name.00002.ext`, …; relative to where `tcrawl output` runs.' }),
    what: z.enum(['items', 'pages']).default('items').meta({ description: 'Which records: as `tcrawl export --what` writes them.' }),
    rotateBytes: z.number().int().positive().optional().meta({ description: 'Start a new part before one would grow past this many bytes (a record is never split).' }),
  })
  .meta({ description: 'JSON lines of items or pages.' });

const itemFilesOutputSchema = z
  .strictObject({
    type: z.literal('item-files').meta({ description: 'One JSON file per item: its fields.' }),
    dir: text.min(1).meta({ description: 'Directory of the files; relative to where `tcrawl output` runs.' }),
    name: text
      .min(1)
      .regex(/\{[^{}]+\}/, 'must name something that differs between items, e.g. "{id}.json"')
      .meta({ description: 'Each file\'s path below `dir`: `{field}` is the item\'s field (its `/` written `%2F`), `{position}` its place on its page, `{host}` its page\'s host; e.g. `{id}.json`, `{host}/{category}/{id}.json`.' }),
  })
  .meta({ description: 'One file per item.' });

export const outputSchema = z.discriminatedUnion('type', [mirrorOutputSchema, tarOutputSchema, jsonlOutputSchema, itemFilesOutputSchema]);

export const outputSpecKeys = {
  outputs: z.array(outputSchema).default([]).meta({
    description: 'Files to write the results to, besides Postgres: `tcrawl output <crawl-id>` (and `crawl --wait` when the crawl ends) writes them from the database.',
  }),
};

export type OutputSpec = z.output<typeof outputSchema>;
export type MirrorOutput = z.output<typeof mirrorOutputSchema>;
export type TarOutput = z.output<typeof tarOutputSchema>;
export type JsonlOutput = z.output<typeof jsonlOutputSchema>;
export type ItemFilesOutput = z.output<typeof itemFilesOutputSchema>;

/** Whether the crawl keeps response bodies (table `bodies`): some output is made of them. */
export function keepsBodies(spec: { outputs: OutputSpec[] }): boolean {
  return spec.outputs.some((output) => output.type === 'mirror' || output.type === 'tar');
}
