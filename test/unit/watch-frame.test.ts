import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  addSample,
  formatBar,
  formatEta,
  ratePerSec,
  remainingWork,
  renderEnd,
  renderFrame,
  renderLine,
  type ProgressSample,
  type WatchView,
} from '../../src/cli/watch-frame';
import type { CrawlProgress, HostStatus } from '../../src/crawl-types';

const t0 = Date.UTC(2026, 11, 1, 8, 0, 0);

function progress(overrides: Partial<CrawlProgress> = {}): CrawlProgress {
  return {
    crawlId: 'c',
    phase: 'crawling',
    saved: 90,
    failed: 5,
    skipped: 5,
    retried: 0,
    byStatus: {},
    byReason: {},
    queued: 300,
    inFlightBatches: 2,
    inFlightUrls: 20,
    hosts: 1,
    hostStates: [],
    limits: { rate: 1, hostRates: {}, totalRate: 0, groups: [] },
    startedAtMs: t0,
    elapsedMs: 60_000,
    ...overrides,
  };
}

function host(name: string): HostStatus {
  return { host: name, queued: 10, inFlight: 1, ratePerSec: 1, backoffFactor: 1, crawlDelayMs: 0, pausedUntilMs: null, reason: null };
}

function view(overrides: Partial<WatchView> = {}): WatchView {
  return {
    crawlId: 'c',
    progress: progress(),
    samples: [
      { atMs: t0 + 50_000, finished: 80 },
      { atMs: t0 + 60_000, finished: 100 },
    ],
    budget: { maxPages: 200 },
    notice: undefined,
    nowMs: t0 + 60_000,
    ...overrides,
  };
}

describe('status --watch: the rate', () => {
  it('is the URLs finished per second between the oldest and newest samples', () => {
    assert.equal(ratePerSec(view().samples), 2);
  });

  it('is unknown from one sample, or from samples at the same instant', () => {
    assert.equal(ratePerSec([{ atMs: t0, finished: 5 }]), undefined);
    assert.equal(ratePerSec([{ atMs: t0, finished: 5 }, { atMs: t0, finished: 9 }]), undefined);
  });

  it('looks back over the last 10 s, keeping at least the sample before the newest', () => {
    let samples: ProgressSample[] = [];
    for (let s = 0; s <= 20; s++) samples = addSample(samples, { atMs: t0 + s * 1000, finished: s * 3 });
    assert.deepEqual(samples.map((x) => x.atMs - t0), [10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20].map((s) => s * 1000));
    assert.equal(ratePerSec(samples), 3);
    const afterPause = addSample(samples, { atMs: t0 + 60_000, finished: 70 });
    assert.deepEqual(afterPause.map((x) => x.atMs - t0), [20_000, 60_000], 'a gap in polling still gives a rate');
  });

  it('starts over when the counts go down (a new run counting afresh)', () => {
    const samples = addSample([{ atMs: t0, finished: 50 }], { atMs: t0 + 1000, finished: 3 });
    assert.deepEqual(samples, [{ atMs: t0 + 1000, finished: 3 }]);
  });
});

describe('status --watch: what is left and the ETA', () => {
  it('is bounded by max pages when the queue holds more than the budget: the crawl stops there', () => {
    assert.deepEqual(remainingWork(progress(), 200), { urls: 100, total: 200, boundBy: 'max-pages' });
  });

  it('is bounded by max pages when the budget is just what is queued: whatever else is found will not be fetched', () => {
    assert.deepEqual(remainingWork(progress(), 420), { urls: 320, total: 420, boundBy: 'max-pages' });
  });

  it('is the queued and in-flight URLs when they are fewer: a lower bound, as fetched pages may link to more', () => {
    assert.deepEqual(remainingWork(progress({ queued: 30, inFlightUrls: 10 }), 1000), { urls: 40, total: 140, boundBy: 'queue' });
  });

  it('is nothing once the budget is spent, whatever is still queued', () => {
    assert.deepEqual(remainingWork(progress(), 90), { urls: 0, total: 100, boundBy: 'max-pages' });
  });

  it('labels the ETA with what it rests on', () => {
    assert.equal(formatEta({ urls: 100, total: 200, boundBy: 'max-pages' }, 2), 'ETA 50s (to max pages)');
    assert.equal(formatEta({ urls: 300, total: 400, boundBy: 'queue' }, 2), 'ETA ≥ 2m 30s (queued + in flight; more may be found)');
    assert.equal(formatEta({ urls: 3, total: 200, boundBy: 'max-pages' }, 4), 'ETA < 1s (to max pages)');
    assert.equal(formatEta({ urls: 100, total: 200, boundBy: 'max-pages' }, undefined), 'ETA: measuring the rate');
    assert.equal(formatEta({ urls: 100, total: 200, boundBy: 'max-pages' }, 0), 'ETA unknown: nothing finished in the last 10s');
    assert.equal(formatEta({ urls: 0, total: 200, boundBy: 'max-pages' }, 3), 'finishing');
    assert.equal(formatEta({ urls: 0, total: 0, boundBy: 'queue' }, undefined), 'nothing queued or in flight');
  });
});

describe('status --watch: the bar', () => {
  it('is exactly `width` cells at any fraction, in eighths of a cell', () => {
    for (let i = 0; i <= 100; i++) assert.equal([...formatBar(i / 100, 17)].length, 17, `at ${i} %`);
    assert.equal(formatBar(0, 4), '░░░░');
    assert.equal(formatBar(0.5, 4), '██░░');
    assert.equal(formatBar(0.53125, 4), '██▏░');
    assert.equal(formatBar(1, 4), '████');
    assert.equal(formatBar(1.7, 4), '████', 'clamped');
  });
});

describe('status --watch: the TTY frame', () => {
  it('shows the bar, the count against max pages, the rate, the ETA and the counters', () => {
    const lines = renderFrame(view(), 100, 30).split('\n');
    assert.equal(lines[0], 'crawl c · crawling · 1m 00s');
    assert.match(lines[1], /^█{20}░{20} 100\/200 · 2\.0 pages\/s · ETA 50s \(to max pages\)$/);
    assert.equal(lines[2], 'saved 90 · failed 5 · skipped 5 · queued 300 · in flight 20 · hosts 1');
  });

  it('shows an empty bar while nothing is known (seeding)', () => {
    const seeding = progress({ phase: 'seeding', saved: 0, failed: 0, skipped: 0, queued: 0, inFlightUrls: 0 });
    const lines = renderFrame(view({ progress: seeding, samples: [{ atMs: t0, finished: 0 }] }), 80, 24).split('\n');
    assert.match(lines[1], /^░+ 0\/0\+ · nothing queued or in flight$/);
  });

  it('marks a total that may grow with a +', () => {
    const lines = renderFrame(view({ budget: { maxPages: 10_000 } }), 120, 30).split('\n');
    assert.match(lines[1], / 100\/420\+ · 2\.0 pages\/s · ETA ≥ 2m 40s \(queued \+ in flight; more may be found\)$/);
  });

  it('has no bar and no ETA when max pages cannot be read, and says why', () => {
    const lines = renderFrame(view({ budget: { unknownBecause: 'DATABASE_URL unset' } }), 120, 30).split('\n');
    assert.equal(lines[1], '100 finished · 2.0 pages/s · no ETA: max pages unknown (DATABASE_URL unset)');
  });

  it('fits every line in the terminal width, shrinking the bar first and then cutting lines', () => {
    const hosts = Array.from({ length: 12 }, (_, i) => host(`host-${i}.with-a-rather-long-name.example.com`));
    const p = progress({ hostStates: hosts, hosts: 12 });
    for (const columns of [40, 60, 80, 120, 200]) {
      const frame = renderFrame(view({ progress: p }), columns, 40);
      for (const line of frame.split('\n')) assert.ok([...line].length <= columns, `${[...line].length} > ${columns}: ${line}`);
    }
    const bar = (columns: number) => renderFrame(view(), columns, 30).split('\n')[1].match(/^[█▏▎▍▌▋▊▉░]+/)![0].length;
    assert.equal(bar(200), 40, 'at most 40 cells');
    assert.equal(bar(70), 70 - ' 100/200 · 2.0 pages/s · ETA 50s (to max pages)'.length - 1);
    assert.equal(bar(30), 10, 'at least 10 cells');
  });

  it('lists as many hosts as the terminal height leaves room for, at most 10', () => {
    const hosts = Array.from({ length: 12 }, (_, i) => host(`h${i}`));
    const p = progress({ hostStates: hosts, hosts: 12 });
    const hostLines = (rows: number) => renderFrame(view({ progress: p }), 120, rows).split('\n').filter((line) => /^h\d+ /.test(line)).length;
    assert.equal(hostLines(40), 10);
    assert.equal(hostLines(12), 12 - 3 - 3);
    assert.equal(hostLines(6), 0);
  });

  it('keeps the last progress under a notice, saying how old it is', () => {
    const frame = renderFrame(view({ notice: { kind: 'temporal-unreachable', text: 'Temporal unreachable (14 UNAVAILABLE), retrying…' }, nowMs: t0 + 75_000 }), 120, 30);
    assert.match(frame, /saved 90 ·/);
    assert.match(frame, /^Temporal unreachable \(14 UNAVAILABLE\), retrying… \(the progress shown is 15s old\)$/m);
  });

  it('before any progress, shows the notice alone', () => {
    assert.equal(renderFrame(view({ progress: undefined, samples: [], notice: { kind: 'no-worker', text: 'No worker answered' } }), 80, 24), 'crawl c\nNo worker answered');
  });
});

describe('status --watch: plain lines', () => {
  it('are one line with the counters, rate and ETA, and no ANSI escapes', () => {
    const line = renderLine(view());
    assert.equal(line, '1m 00s · crawling · 100/200 · saved 90 · failed 5 · skipped 5 · queued 300 · in flight 20 · hosts 1 · 2.0 pages/s · ETA 50s (to max pages)');
    assert.doesNotMatch(line, /\x1b|\n/);
  });
});

describe('status --watch: the end', () => {
  it('summarises a completed crawl from its result', () => {
    const result = progress({ saved: 180, failed: 10, skipped: 10, queued: 0, inFlightUrls: 0, elapsedMs: 100_000 });
    assert.equal(
      renderEnd({ crawlId: 'c', runId: 'r', taskQueue: 'tcrawl', status: 'COMPLETED', progress: result, retrying: [] }, progress()),
      'Crawl c completed in 1m 40s (2.0 pages/s)\n  saved 180 · failed 10 · skipped 10 · queued 0 · in flight 0 · hosts 1\n',
    );
  });

  it('says the queue was left when max pages ended a crawl', () => {
    assert.match(renderEnd({ crawlId: 'c', runId: 'r', taskQueue: 'tcrawl', status: 'COMPLETED', progress: progress({ queued: 7 }), retrying: [] }, undefined), /left in queue 7 \(max pages reached\)/);
  });

  it('gives the last progress seen of a crawl that did not complete', () => {
    assert.equal(
      renderEnd({ crawlId: 'c', runId: 'r', taskQueue: 'tcrawl', status: 'TIMED_OUT', progress: null, retrying: [] }, progress()),
      'Crawl c timed out; last progress seen:\n  saved 90 · failed 5 · skipped 5 · queued 300 · in flight 20 · hosts 1\n',
    );
    assert.equal(renderEnd({ crawlId: 'c', runId: 'r', taskQueue: 'tcrawl', status: 'TERMINATED', progress: null, retrying: [] }, undefined), 'Crawl c terminated.\n');
  });
});
