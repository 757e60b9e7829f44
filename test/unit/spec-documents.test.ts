import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { z } from 'zod';
import { crawlSpecSchema, parseCrawlSpec } from '../../src/spec';
import { annotatedSpecSchema, publishedSchemaFile, publishedSpecSchema, publishedSpecSchemaText } from '../../src/spec-json-schema';
import { specTables, specTablesEnd, specTablesStart, withSpecTables } from '../../src/spec-tables';
import { crawlSpecFrom } from '../../src/cli/crawl-options';

const root = path.resolve(__dirname, '../..');
const SEED = 'https://example.com/';

describe('what `npm run schema` generates is committed', () => {
  it(`${publishedSchemaFile} is what the schema generates`, () => {
    const committed = readFileSync(path.join(root, publishedSchemaFile), 'utf8');
    assert.ok(committed === publishedSpecSchemaText(), `${publishedSchemaFile} is out of date with src/spec.ts: run \`npm run schema\``);
  });

  it("README's tables of spec keys are what the schema generates", () => {
    const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
    assert.ok(readme.includes(specTablesStart) && readme.includes(specTablesEnd), 'README lacks the spec-keys markers');
    assert.ok(withSpecTables(readme, specTables()) === readme, "README's tables of spec keys are out of date with src/spec.ts: run `npm run schema`");
  });

  it('package.json publishes the schema file and exports it as tcrawl/schema.json', () => {
    const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { files: string[]; exports: Record<string, unknown>; scripts: Record<string, string> };
    assert.ok(manifest.files.includes(path.dirname(publishedSchemaFile)));
    assert.equal(manifest.exports['./schema.json'], `./${publishedSchemaFile}`);
    assert.match(manifest.scripts.schema, /scripts\/schema\.ts/);
  });
});

describe('the spec metadata', () => {
  it('every key, nested ones too, has a description', () => {
    const undocumented: string[] = [];
    const visit = (where: string, node: ReturnType<typeof annotatedSpecSchema>) => {
      for (const [key, child] of Object.entries(node.properties ?? {})) {
        if (!child.description) undocumented.push(`${where}${key}`);
        visit(`${where}${key}.`, child);
      }
      if (node.items) visit(where.replace(/\.$/, '[].'), node.items);
      for (const option of node.anyOf ?? []) visit(where, option);
    };
    visit('', annotatedSpecSchema());
    assert.deepEqual(undocumented, []);
  });

  it('a table row is generated for every key, with the default from .default()', () => {
    const tables = specTables();
    for (const key of Object.keys(crawlSpecSchema.shape)) assert.match(tables, new RegExp(`^\\| \`${key}\` \\|`, 'm'), key);
    assert.match(tables, /^\| `maxPages` \| integer, > 0 \| `1000` \| `--max-pages <integer>` \|/m);
    assert.match(tables, /^\| `banStatuses` \| \(integer, ≥ 100, ≤ 599\)\[\] \| `\[403,429\]` \| `--ban-status <integer>` \(repeatable\) \|/m);
    assert.match(tables, /^\*\*`items`\*\*/m);
    assert.match(tables, /^\| `selector` \| string or object \| — \| `--item <string>` \|/m);
    assert.match(tables, /^\*\*`rateGroups\[\]`\*\*/m);
  });

  it('nested objects get tables of their own, whatever the schema (arrays, records and unions of objects too)', () => {
    const tables = specTables(
      z.toJSONSchema(
        z.strictObject({
          rules: z.array(z.strictObject({ follow: z.array(z.strictObject({ css: z.string().meta({ description: 'where' }) })).meta({ description: 'sources' }) })).meta({ description: 'rules' }),
          headers: z.record(z.string(), z.union([z.string(), z.strictObject({ env: z.string().meta({ description: 'variable' }) })])).meta({ description: 'headers' }),
        }),
        { io: 'input' },
      ) as ReturnType<typeof annotatedSpecSchema>,
    );
    assert.match(tables, /^\| `headers` \| map of name → string or object \| required \| — \| headers \|$/m);
    for (const heading of ['rules[]', 'rules[].follow[]', 'headers.*']) assert.ok(tables.includes(`**\`${heading}\`**`), `${heading} in:\n${tables}`);
    assert.match(tables, /^\| `css` \| string \| required \| — \| where \|$/m);
    assert.match(tables, /^\| `env` \| string \| required \| — \| variable \|$/m);
  });

  it('withSpecTables refuses a README without the markers', () => {
    assert.throws(() => withSpecTables('# no markers\n', 'x'), /lacks the markers/);
  });
});

describe('the published JSON Schema', () => {
  // Strict: a keyword Ajv does not know (tcrawl's own `flag`, a typo) fails the compile.
  const compile = () => new Ajv2020({ strict: true, allErrors: true }).compile(publishedSpecSchema());

  it('compiles as a strict JSON Schema 2020-12, without tcrawl-only keywords', () => {
    assert.doesNotThrow(compile);
    assert.doesNotMatch(publishedSpecSchemaText(), /"(flag|cli)":/);
  });

  it('accepts a spec with only seeds (defaults are optional) and a $schema key', () => {
    const validate = compile();
    assert.ok(validate({ $schema: `./node_modules/tcrawl/${publishedSchemaFile}`, seeds: [SEED] }), JSON.stringify(validate.errors));
    assert.ok(validate({ seeds: [SEED], items: { selector: '.p', fields: { name: 'h2' } }, rateGroups: [{ name: 'api', hosts: ['a.example'], rate: 2 }] }), JSON.stringify(validate.errors));
  });

  it('refuses what parseCrawlSpec refuses by shape: unknown keys, wrong types, out-of-range numbers, bad choices', () => {
    const validate = compile();
    for (const spec of [{}, { seeds: [] }, { seeds: [SEED], maxPagez: 3 }, { seeds: [SEED], maxPages: '10' }, { seeds: [SEED], batchSize: 5000 }, { seeds: [SEED], scope: 'planet' }, { seeds: [SEED], items: { selector: 5 } }]) {
      assert.equal(validate(spec), false, JSON.stringify(spec));
      assert.throws(() => parseCrawlSpec(spec), JSON.stringify(spec));
    }
  });
});

describe('a $schema key', () => {
  const reference = `./node_modules/tcrawl/${publishedSchemaFile}`;

  it('is accepted and ignored by parseCrawlSpec', () => {
    const spec = parseCrawlSpec({ $schema: reference, seeds: [SEED], maxPages: 3 });
    assert.equal(spec.maxPages, 3);
    assert.ok(!('$schema' in spec));
    assert.deepEqual(spec, parseCrawlSpec({ seeds: [SEED], maxPages: 3 }));
  });

  it('is accepted in JSON and YAML spec files read by the CLI', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-spec-'));
    writeFileSync(path.join(dir, 'spec.json'), JSON.stringify({ $schema: reference, seeds: [SEED], maxDepth: 2 }));
    writeFileSync(path.join(dir, 'spec.yaml'), `# yaml-language-server: $schema=${reference}\n$schema: ${reference}\nseeds: [${SEED}]\nmaxDepth: 2\n`);
    for (const file of ['spec.json', 'spec.yaml']) {
      const spec = crawlSpecFrom([], { spec: path.join(dir, file) });
      assert.equal(spec.maxDepth, 2, file);
      assert.ok(!('$schema' in spec), file);
    }
  });

  it('is not a key anywhere else', () => {
    assert.throws(() => parseCrawlSpec({ seeds: [SEED], items: { $schema: reference, selector: '.p', fields: {} } }), /unknown key "\$schema" at items/);
  });
});
