import type { ChartConfiguration } from 'chart.js' with { 'resolution-mode': 'import' };
import { formatElapsed, formatStep } from './binning';
import type { ItemFieldHistogram, Ranked, ReportData } from './report-data';

/**
 * The charts of a report, each with the table of its numbers (the page's
 * text for readers without JavaScript, and what tests read), as plain data:
 * Chart.js configurations that are pure JSON, so they travel to the page
 * inside its JSON data block and need no code of their own.
 */
export interface ReportChart {
  /** DOM id of its canvas (`chart-status`, …). */
  id: string;
  title: string;
  /** A sentence under the chart: what is counted. */
  caption: string;
  /** Null when there is nothing to chart: `caption` says why. */
  config: ChartConfiguration | null;
  table: { head: string[]; rows: Array<Array<string | number>> };
}

const colors = {
  saved: '#2e9d57',
  skipped: '#9aa4b1',
  failed: '#d64545',
  pending: '#4b7bd6',
  bar: '#4b7bd6',
  line: '#2e6fd6',
} as const;

/** Status bars coloured by class, as a reader scans them: 2xx green, 3xx grey, 4xx orange, 5xx red, none dark. */
function statusColor(status: string): string {
  const first = status[0];
  return first === '2' ? colors.saved : first === '3' ? colors.skipped : first === '4' ? '#e08a2b' : first === '5' ? colors.failed : '#4a4f57';
}

export function reportCharts(data: ReportData): ReportChart[] {
  return [statusChart(data), depthChart(data), rateChart(data), rankedChart('reasons', 'Failures by reason', data.failuresByReason, 'Reason'), rankedChart('hosts', 'Failures by host', data.failuresByHost, 'Host'), itemFieldChart(data.itemField)];
}

function statusChart(data: ReportData): ReportChart {
  const rows = data.statusCodes;
  return {
    id: 'chart-status',
    title: 'Status codes',
    caption: rows.length === 0 ? 'No URL has finished yet.' : 'Finished URLs (saved, failed or skipped) by the HTTP status of their last response; none: no response (a network error, robots.txt, the crawl\'s own checks).',
    config: rows.length === 0 ? null : bar(rows.map((r) => r.status), [{ label: 'URLs', data: rows.map((r) => r.count), backgroundColor: rows.map((r) => statusColor(r.status)) }]),
    table: { head: ['Status', 'URLs'], rows: rows.map((r) => [r.status, r.count]) },
  };
}

function depthChart(data: ReportData): ReportChart {
  const bars = data.depths;
  const label = (b: (typeof bars)[number]) => (b.hi - b.lo === 1 ? String(b.lo) : `${b.lo}–${b.hi - 1}`);
  const states = ['saved', 'skipped', 'failed', 'pending'] as const;
  const datasets = states.map((state) => ({ label: state, data: bars.map((b) => b[state]), backgroundColor: colors[state] }));
  return {
    id: 'chart-depth',
    title: 'Depth',
    caption: bars.length === 0 ? 'The frontier is empty.' : 'Every URL the crawl has seen, by link depth from the seeds (0), and where it stands; pending: queued or leased.',
    config: bars.length === 0 ? null : { ...bar(bars.map(label), datasets), options: { ...barOptions(), plugins: { legend: { display: true } }, scales: { x: { stacked: true }, y: { ...countAxis, stacked: true } } } },
    table: { head: ['Depth', ...states.map(capitalised), 'All'], rows: bars.map((b) => [label(b), ...states.map((s) => b[s]), states.reduce((sum, s) => sum + b[s], 0)]) },
  };
}

function rateChart(data: ReportData): ReportChart {
  const timeline = data.timeline;
  if (timeline === null) {
    return { id: 'chart-rate', title: 'Pages per second', caption: 'No page has been saved yet.', config: null, table: { head: ['Since first page', 'Pages', 'Pages/s'], rows: [] } };
  }
  const perSecond = (pages: number) => (pages * 1000) / timeline.stepMs;
  const points = timeline.points;
  return {
    id: 'chart-rate',
    title: 'Pages per second',
    caption: `Pages saved per second, averaged over each ${formatStep(timeline.stepMs)} from the first page (${timeline.startAt}) to the last, ${formatElapsed(timeline.spanMs)} later.`,
    config: {
      type: 'line',
      data: { labels: points.map((p) => formatElapsed(p.offsetMs)), datasets: [{ label: 'pages/s', data: points.map((p) => perSecond(p.pages)), borderColor: colors.line, backgroundColor: 'rgba(46,111,214,0.15)', fill: true, pointRadius: points.length > 60 ? 0 : 2, tension: 0.2 }] },
      options: { ...barOptions(), scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true } } },
    },
    table: { head: ['Since first page', 'Pages', 'Pages/s'], rows: points.map((p) => [formatElapsed(p.offsetMs), p.pages, roundTo(perSecond(p.pages), 2)]) },
  };
}

function rankedChart(what: 'reasons' | 'hosts', title: string, ranked: Ranked, keyHead: string): ReportChart {
  const rows: Array<[string, number]> = ranked.top.map((g) => [g.key, g.count]);
  if (ranked.rest !== null) rows.push([`(${formatCount(ranked.rest.groups)} other ${what})`, ranked.rest.count]);
  return {
    id: `chart-${what}`,
    title,
    caption: rows.length === 0 ? 'No URL failed.' : `Failed URLs by ${what === 'reasons' ? 'failure reason' : 'host'}, the most first${ranked.rest === null ? '' : `; the ${formatCount(ranked.rest.groups)} ${what} beyond the top ${ranked.top.length} are summed in the last (grey) bar`}.`,
    config: rows.length === 0 ? null : {
      ...bar(rows.map((r) => r[0]), [{ label: 'failed URLs', data: rows.map((r) => r[1]), backgroundColor: rows.map((_, i) => (i < ranked.top.length ? colors.failed : colors.skipped)), maxBarThickness: 28 }]),
      options: { ...barOptions(), indexAxis: 'y', scales: { x: countAxis } },
    },
    table: { head: [keyHead, 'Failed URLs'], rows },
  };
}

function itemFieldChart(chart: ReportData['itemField']): ReportChart {
  if (chart.field === null) return { id: 'chart-field', title: 'Item field', caption: chart.note, config: null, table: { head: ['From', 'To (excl.)', 'Items'], rows: [] } };
  const label = (b: ItemFieldHistogram['bins'][number]) => (!chart.integral ? `${b.lo}–${b.hi}` : b.hi - b.lo === 1 ? String(b.lo) : `${b.lo}–${b.hi - 1}`);
  const example = chart.example === null ? '' : ` For example "${chart.example.value}" reads as ${chart.example.number}.`;
  const chosen = chart.chosenBy === 'auto' ? ' (the most numeric field; choose another with --field)' : '';
  const caption = chart.numeric === 0
    ? `No value of item field "${chart.field}" starts with a number (${formatCount(chart.values)} values).`
    : `Items by the number their field "${chart.field}" starts with${chosen}: ${formatCount(chart.numeric)} of ${formatCount(chart.values)} values are numeric.${example}`;
  return {
    id: 'chart-field',
    title: `Item field "${chart.field}"`,
    caption,
    config: chart.bins.length === 0 ? null : { ...bar(chart.bins.map(label), [{ label: 'items', data: chart.bins.map((b) => b.count), backgroundColor: colors.bar, barPercentage: 1, categoryPercentage: 0.95 }]) },
    table: { head: ['From', 'To (excl.)', 'Items'], rows: chart.bins.map((b) => [b.lo, b.hi, b.count]) },
  };
}

function bar(labels: string[], datasets: Array<Record<string, unknown> & { label: string; data: number[] }>): ChartConfiguration {
  return { type: 'bar', data: { labels, datasets: datasets.map((d) => ({ maxBarThickness: 64, ...d })) }, options: { ...barOptions(), scales: { y: countAxis } } } as ChartConfiguration;
}

/** An axis of counts: from 0, whole-number ticks only. */
const countAxis = { beginAtZero: true, ticks: { precision: 0 } };

/** A static page: no animation (it would only delay the screenshot), sized by its box, legend only where there are several series. */
function barOptions(): NonNullable<ChartConfiguration['options']> {
  return { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { display: false } } };
}

/** Counts as a reader expects them: 12,345. */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: 6 });
}

function capitalised(word: string): string {
  return word[0]!.toUpperCase() + word.slice(1);
}

function roundTo(value: number, digits: number): number {
  return Number(value.toFixed(digits));
}
