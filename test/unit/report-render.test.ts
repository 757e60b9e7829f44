import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { load } from 'cheerio';
import fc from 'fast-check';
import { escapeHtml, jsonForScript, renderReportHtml } from '../../src/report/render-html';
import type { ReportData } from '../../src/report/report-data';

const hostile = `</script><img src=x onerror=alert(1)><!--<script>'"&amp;\u2028`;

function reportData(overrides: Partial<ReportData> = {}): ReportData {
  return {
    crawlId: `id${hostile}`,
    createdAt: '2026-12-01T00:00:00.000Z',
    generatedAt: '2026-12-01T01:00:00.000Z',
    seeds: { first: [`http://example.com/${hostile}`], total: 3 },
    totals: { saved: 1234, failed: 5, skipped: 2, queued: 0, leased: 0 },
    items: 2,
    statusCodes: [{ status: '200', count: 1234 }, { status: '404', count: 5 }, { status: 'none', count: 2 }],
    depths: [{ lo: 0, hi: 1, saved: 1, failed: 0, skipped: 0, pending: 0 }, { lo: 1, hi: 2, saved: 1233, failed: 5, skipped: 2, pending: 0 }],
    timeline: { startAt: '2026-12-01T00:00:01.000Z', spanMs: 2500, stepMs: 1000, points: [{ offsetMs: 0, pages: 600 }, { offsetMs: 1000, pages: 0 }, { offsetMs: 2000, pages: 634 }] },
    failuresByReason: { top: [{ key: `reason${hostile}`, count: 4 }], rest: { groups: 1, count: 1 } },
    failuresByHost: { top: [{ key: `host${hostile}`, count: 5 }], rest: null },
    itemField: { field: `field${hostile}`, chosenBy: 'auto', values: 2, numeric: 2, example: { value: `7 ${hostile}`, number: 7 }, bins: [{ lo: 7, hi: 8, count: 1 }, { lo: 8, hi: 9, count: 1 }], integral: true },
    ...overrides,
  };
}

const library = 'window.Chart = function Chart() {};';

describe('report HTML', () => {
  it('hostile strings stay text: no element, script or comment comes out of them', () => {
    const html = renderReportHtml(reportData(), library);
    const $ = load(html);
    assert.equal($('img').length, 0);
    assert.equal($('script').length, 3, 'the data block, the library, the boot script');
    assert.equal($('h1 code').text(), `id${hostile}`);
    assert.equal($('title').text(), `tcrawl report: id${hostile}`);
    assert.equal($('.seeds code').first().text(), `http://example.com/${hostile}`);
    assert.ok(!html.includes('<img') && !html.includes('<!--'), 'no raw tag or comment opener anywhere');
  });

  it('the data block parses back to the very strings, as chart labels', () => {
    const $ = load(renderReportHtml(reportData(), library));
    const data = JSON.parse($('#report-data').text()) as { charts: Array<{ id: string; config: { data: { labels: string[] } } }> };
    const labels = Object.fromEntries(data.charts.map((c) => [c.id, c.config.data.labels]));
    assert.deepEqual(labels['chart-reasons'], [`reason${hostile}`, '(1 other reasons)']);
    assert.deepEqual(labels['chart-hosts'], [`host${hostile}`]);
    assert.deepEqual(labels['chart-rate'], ['0:00', '0:01', '0:02']);
  });

  it('the Content Security Policy runs exactly the two inline scripts, by hash, and fetches nothing', () => {
    const $ = load(renderReportHtml(reportData(), library));
    const csp = $('meta[http-equiv="Content-Security-Policy"]').attr('content')!;
    const code = $('script:not([type])').toArray().map((el) => $(el).text());
    assert.equal(code[0], library);
    const hashes = code.map((c) => `'sha256-${createHash('sha256').update(c).digest('base64')}'`);
    assert.match(csp, /^default-src 'none'; /);
    assert.equal(/script-src ([^;]*)/.exec(csp)![1], hashes.join(' '));
  });

  it('each chart has a table of its numbers, readable without JavaScript', () => {
    const $ = load(renderReportHtml(reportData(), library));
    const rows = (id: string) => $(`table[data-table="${id}"] tbody tr`).toArray().map((tr) => $(tr).children().toArray().map((c) => $(c).text()));
    assert.deepEqual(rows('chart-status'), [['200', '1,234'], ['404', '5'], ['none', '2']]);
    assert.deepEqual(rows('chart-rate'), [['0:00', '600', '600'], ['0:01', '0', '0'], ['0:02', '634', '634']]);
    assert.deepEqual(rows('chart-reasons'), [[`reason${hostile}`, '4'], ['(1 other reasons)', '1']]);
    assert.deepEqual(rows('chart-field'), [['7', '8', '1'], ['8', '9', '1']]);
    assert.deepEqual($('table[data-table="totals"] tr').toArray().map((tr) => $(tr).text()), ['Saved1,234', 'Failed5', 'Skipped2', 'Queued0', 'Leased0', 'Items2']);
  });

  it('a chart without data is a sentence, not an empty canvas', () => {
    const html = renderReportHtml(reportData({ failuresByReason: { top: [], rest: null }, failuresByHost: { top: [], rest: null }, timeline: null, itemField: { field: null, note: 'The crawl extracted no items.' } }), library);
    const $ = load(html);
    assert.deepEqual($('canvas').toArray().map((c) => $(c).attr('id')), ['chart-status', 'chart-depth']);
    assert.equal($('#chart-reasons-section .empty').text(), 'No URL failed.');
    assert.equal($('#chart-field-section .empty').text(), 'The crawl extracted no items.');
  });

  it('refuses to inline a library that would end its <script> early', () => {
    assert.throws(() => renderReportHtml(reportData(), 'var s = "</script>";'), { code: 'TCRAWL_REPORT_LIBRARY' });
    assert.throws(() => renderReportHtml(reportData(), 'var s = "<!--";'), { code: 'TCRAWL_REPORT_LIBRARY' });
  });
});

describe('report escaping', () => {
  it('escapeHtml leaves no character that could open a tag or end an attribute', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('<', '>', '&', '"', "'", 'a', '/', ' ', '=', '#', ';') }), (text) => {
        const escaped = escapeHtml(text);
        assert.ok(!/[<>"']/.test(escaped));
        assert.equal(load(`<p title="${escaped}">${escaped}</p>`)('p').attr('title'), text);
      }),
    );
  });

  it('jsonForScript has no < > & and parses back to the same value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string(), (value, text) => {
        for (const v of [value, { text: `${text}</script>${hostile}` }]) {
          const json = jsonForScript(v);
          assert.ok(!/[<>&\u2028\u2029]/.test(json));
          assert.deepEqual(JSON.parse(json), JSON.parse(JSON.stringify(v)));
        }
      }),
    );
  });
});
