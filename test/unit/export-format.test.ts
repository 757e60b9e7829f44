import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { csvCell, csvRows, itemCsvHeader, jsonLines, type ExportKind, type ExportRecord } from '../../src/results/export-format';

async function text(records: ExportRecord[], ...stages: NodeJS.ReadWriteStream[]): Promise<string> {
  let out = '';
  await pipeline(Readable.from(records), ...(stages as [NodeJS.ReadWriteStream]), async (source: AsyncIterable<Buffer | string>) => {
    for await (const chunk of source) out += chunk.toString();
  });
  return out;
}

const csv = (what: ExportKind, records: ExportRecord[], options?: Parameters<typeof csvRows>[1]) => text(records, ...csvRows(what, options));

describe('export formats', () => {
  it('item CSV columns: url, position, then each field; a field named like a fixed column is prefixed with data.', () => {
    assert.deepEqual(itemCsvHeader(['href', 'name', 'price']), ['url', 'position', 'href', 'name', 'price']);
    assert.deepEqual(itemCsvHeader(['position', 'url']), ['url', 'position', 'data.position', 'data.url']);
    // A field already called data.url keeps its name; the field url moves one prefix further.
    assert.deepEqual(itemCsvHeader(['data.url', 'name', 'url']), ['url', 'position', 'data.url', 'name', 'data.data.url']);
    assert.deepEqual(itemCsvHeader(['url', 'data.url']), ['url', 'position', 'data.data.url', 'data.url']);
    assert.deepEqual(itemCsvHeader([]), ['url', 'position']);
  });

  it('CSV cells: empty for null, ISO 8601 for dates, JSON for objects and arrays', () => {
    assert.equal(csvCell(null), '');
    assert.equal(csvCell(undefined), '');
    assert.equal(csvCell(''), '');
    assert.equal(csvCell(0), '0');
    assert.equal(csvCell(false), 'false');
    assert.equal(csvCell(new Date(Date.UTC(2026, 11, 1, 8, 5, 3, 7))), '2026-12-01T08:05:03.007Z');
    assert.equal(csvCell({ a: [1, 'x'] }), '{"a":[1,"x"]}');
    assert.equal(csvCell(['a', null]), '["a",null]');
  });

  it('CSV per RFC 4180: header row, CRLF, fields with a comma, quote, CR or LF quoted with quotes doubled', async () => {
    const fetchedAt = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    const out = await csv('links', [
      { found_on: 'http://x/a,b', url: 'http://x/"q"' },
      { found_on: 'line\nbreak', url: 'carriage\rreturn' },
      { found_on: 'plain ünïcødé 日本語 🤖', url: ' spaces kept ' },
    ]);
    assert.equal(
      out,
      'found_on,url\r\n' +
        '"http://x/a,b","http://x/""q"""\r\n' +
        '"line\nbreak","carriage\rreturn"\r\n' +
        'plain ünïcødé 日本語 🤖, spaces kept \r\n',
    );
    const page = { url: 'http://x/', final_url: 'http://x/', status: 200, content_type: 'text/html', title: null, depth: 0, bytes: 10, links: 2, fetched_at: fetchedAt, html: '<p a="1">' };
    assert.equal(await csv('pages', [page]), 'url,final_url,status,content_type,title,depth,bytes,links,fetched_at\r\nhttp://x/,http://x/,200,text/html,,0,10,2,2026-01-02T03:04:05.000Z\r\n');
    assert.match(await csv('pages', [page], { html: true }), /,fetched_at,html\r\n.*,2026-01-02T03:04:05\.000Z,"<p a=""1"">"\r\n$/);
  });

  it('CSV items: one column per field, empty where an item lacks it, nested values as JSON', async () => {
    const out = await csv(
      'items',
      [
        { url: 'http://x/p', position: 0, data: { name: 'Anvil', price: '$10' } },
        { url: 'http://x/p', position: 1, data: { name: 'Birdseed', tags: ['a', 'b'] } },
      ],
      { itemFields: ['name', 'price', 'tags'] },
    );
    assert.equal(out, 'url,position,name,price,tags\r\nhttp://x/p,0,Anvil,$10,\r\nhttp://x/p,1,Birdseed,,"[""a"",""b""]"\r\n');
  });

  it('CSV of no rows is the header alone', async () => {
    assert.equal(await csv('failed', []), 'url,status,reason,detail,attempts,depth,found_on,updated_at\r\n');
  });

  it('JSON lines: one object per line; a newline or U+2028 inside a value stays escaped or inside its string', async () => {
    const out = await text([{ found_on: 'a\nb', url: 'c\u2028d' }, { found_on: 'e', url: 'f' }], jsonLines());
    const lines = out.split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[2], '');
    assert.deepEqual(lines.slice(0, 2).map((line) => JSON.parse(line)), [{ found_on: 'a\nb', url: 'c\u2028d' }, { found_on: 'e', url: 'f' }]);
  });
});
