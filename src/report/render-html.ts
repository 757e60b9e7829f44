import { createHash } from 'node:crypto';
import { TcrawlError } from '../errors';
import { formatElapsed } from './binning';
import { formatCount, reportCharts, type ReportChart } from './report-charts';
import type { ReportData } from './report-data';

/**
 * A report as one self-contained HTML file: the charting library inlined,
 * the data as JSON, nothing fetched when it is opened.
 *
 * Every string from the crawl (its id, seeds, hosts, reasons, item values)
 * is hostile until escaped: text and attributes go through {@link escapeHtml},
 * and the data block through {@link jsonForScript}, which escapes `<`, `>`
 * and `&` so no value can close the `<script>` it sits in. Charts draw their
 * labels on a canvas, as text. On top of that, the page's Content Security
 * Policy runs only the two scripts written here (by their SHA-256) and
 * fetches nothing, so even a missed escape could neither run code nor
 * send anything anywhere.
 */
export function renderReportHtml(data: ReportData, chartLibrary: string): string {
  const charts = reportCharts(data);
  const boot = bootScript();
  const scripts = [inlineable(chartLibrary, 'the charting library'), boot];
  const csp = [
    "default-src 'none'",
    `script-src ${scripts.map((s) => `'sha256-${createHash('sha256').update(s).digest('base64')}'`).join(' ')}`,
    "style-src 'unsafe-inline'",
    'img-src data:',
  ].join('; ');
  const payload = { charts: charts.filter((c) => c.config !== null).map((c) => ({ id: c.id, config: c.config })) };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tcrawl report: ${escapeHtml(data.crawlId)}</title>
<style>${STYLE}</style>
</head>
<body>
${header(data)}
${totals(data)}
<main class="charts">
${charts.map(chartSection).join('\n')}
</main>
<footer>Made by tcrawl from the crawl's tables in Postgres (frontier, pages, items) at ${escapeHtml(data.generatedAt)}.</footer>
<script type="application/json" id="report-data">${jsonForScript(payload)}</script>
<script>${scripts[0]}</script>
<script>${boot}</script>
</body>
</html>
`;
}

/** Text or an attribute value, safe inside HTML: `& < > " '` escaped. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * JSON that can sit inside `<script type="application/json">`: `<`, `>`, `&`
 * (and U+2028/U+2029, for readers that eval) as `\uXXXX` escapes, which
 * JSON.parse turns back into the same characters.
 */
export function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Code inlined in a `<script>` ends at the first `</script`, and `<!--`
 * changes how the HTML parser reads it: a library containing either cannot
 * be inlined verbatim, and rewriting minified code is not safe.
 */
function inlineable(source: string, what: string): string {
  if (/<\/script|<!--/i.test(source)) throw new TcrawlError('TCRAWL_REPORT_LIBRARY', `Cannot inline ${what} into a report: its code contains "</script" or "<!--".`);
  return source;
}

/** Draws every chart of the data block; the library is loaded by then (scripts run in order). */
function bootScript(): string {
  return `(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  data.charts.forEach(function (chart) { new Chart(document.getElementById(chart.id), chart.config); });
})();`;
}

function header(data: ReportData): string {
  const more = data.seeds.total - data.seeds.first.length;
  const seeds = data.seeds.first.map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join('') + (more > 0 ? `<li>and ${more} more</li>` : '');
  const span = data.timeline === null ? 'no page saved yet' : `first saved ${escapeHtml(data.timeline.startAt)}, the last ${formatElapsed(data.timeline.spanMs)} later`;
  return `<header>
<h1>Crawl <code>${escapeHtml(data.crawlId)}</code></h1>
<dl>
<dt>Created</dt><dd>${escapeHtml(data.createdAt)}</dd>
<dt>Pages</dt><dd>${span}</dd>
<dt>Seeds</dt><dd><ul class="seeds">${seeds}</ul></dd>
</dl>
</header>`;
}

function totals(data: ReportData): string {
  const t = data.totals;
  const tiles: Array<[string, number, string]> = [
    ['Saved', t.saved, 'saved'],
    ['Failed', t.failed, 'failed'],
    ['Skipped', t.skipped, 'skipped'],
    ['Queued', t.queued, 'pending'],
    ['Leased', t.leased, 'pending'],
    ['Items', data.items, 'items'],
  ];
  const cells = tiles.map(([name, n, kind]) => `<tr class="tile ${kind}"><th scope="row">${name}</th><td>${formatCount(n)}</td></tr>`).join('\n');
  return `<section class="totals" aria-label="Totals">
<table data-table="totals">
${cells}
</table>
</section>`;
}

function chartSection(chart: ReportChart): string {
  const figure = chart.config === null ? `<p class="empty">${escapeHtml(chart.caption)}</p>` : `<div class="chart"><canvas id="${chart.id}" role="img" aria-label="${escapeHtml(chart.title)}"></canvas></div>\n<p class="caption">${escapeHtml(chart.caption)}</p>`;
  const table = chart.table.rows.length === 0 ? '' : `<details><summary>Numbers</summary>
<table data-table="${chart.id}">
<thead><tr>${chart.table.head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join('')}</tr></thead>
<tbody>
${chart.table.rows.map((row) => `<tr>${row.map((cell, i) => (i === 0 ? `<th scope="row">${escapeHtml(String(cell))}</th>` : `<td>${typeof cell === 'number' ? formatCount(cell) : escapeHtml(cell)}</td>`)).join('')}</tr>`).join('\n')}
</tbody>
</table>
</details>`;
  return `<section class="card" id="${chart.id}-section">
<h2>${escapeHtml(chart.title)}</h2>
${figure}
${table}
</section>`;
}

const STYLE = `
:root { color-scheme: light; --ink: #1d2430; --muted: #5b6573; --line: #e3e7ee; --card: #fff; --bg: #f4f6f9; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 32px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 8px; }
h1 code { font-size: 20px; }
h2 { font-size: 15px; margin: 0 0 10px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
header dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 0 0 16px; color: var(--muted); }
header dt { font-weight: 600; }
header dd { margin: 0; }
.seeds { list-style: none; margin: 0; padding: 0; }
.totals table { display: flex; flex-wrap: wrap; gap: 12px; margin: 0 0 20px; border-collapse: separate; }
.totals tbody { display: contents; }
.tile { display: flex; flex-direction: column-reverse; min-width: 130px; padding: 10px 16px; background: var(--card); border: 1px solid var(--line); border-left: 4px solid #4b7bd6; border-radius: 6px; }
.tile th { font-weight: 500; color: var(--muted); text-align: left; }
.tile td { font-size: 24px; font-weight: 650; }
.tile.saved { border-left-color: #2e9d57; } .tile.failed { border-left-color: #d64545; } .tile.skipped { border-left-color: #9aa4b1; } .tile.items { border-left-color: #8a5cd6; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px; min-width: 0; }
.chart { position: relative; height: 260px; }
.caption, .empty { color: var(--muted); margin: 8px 0 0; }
.empty { padding: 24px 0; }
details { margin-top: 8px; }
summary { cursor: pointer; color: var(--muted); }
details table { border-collapse: collapse; margin-top: 6px; font-variant-numeric: tabular-nums; }
details th, details td { padding: 2px 10px 2px 0; text-align: right; border-bottom: 1px solid var(--line); }
details th[scope=row], details thead th:first-child { text-align: left; word-break: break-all; }
footer { margin-top: 20px; color: var(--muted); font-size: 12px; }
`;
