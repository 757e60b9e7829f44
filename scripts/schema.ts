/**
 * `npm run schema`: writes what is generated from the spec's zod schema
 * (src/spec.ts) — the JSON Schema for editors and the README's tables of spec
 * keys. test/unit/spec-documents.test.ts fails when either is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { publishedSchemaFile, publishedSpecSchemaText } from '../src/spec-json-schema';
import { specTables, withSpecTables } from '../src/spec-tables';

const root = path.resolve(__dirname, '..');
const readme = path.join(root, 'README.md');

writeFileSync(path.join(root, publishedSchemaFile), publishedSpecSchemaText());
writeFileSync(readme, withSpecTables(readFileSync(readme, 'utf8'), specTables()));
process.stderr.write(`Wrote ${publishedSchemaFile} and the spec tables of README.md.\n`);
