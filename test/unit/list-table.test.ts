import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatCrawlList } from '../../src/cli/list-table';
import { formatDuration } from '../../src/cli/duration';
import { visibilityQuery, type CrawlListRow } from '../../src/operate/list';

const started = new Date(Date.UTC(2026, 11, 1, 8, 0, 0));

function row(overrides: Partial<CrawlListRow>): CrawlListRow {
  return {
    crawlId: 'c',
    workflowId: 'crawl-c',
    runId: 'r',
    status: 'Completed',
    phase: null,
    saved: null,
    queued: null,
    failed: null,
    seedHost: null,
    taskQueue: 'tcrawl',
    startedAt: started,
    closedAt: new Date(started.getTime() + 65_000),
    durationMs: 65_000,
    runs: 1,
    ...overrides,
  };
}

describe('tcrawl list: the table', () => {
  it('aligns columns, right-aligns counts, and leaves blank what an execution without search attributes lacks', () => {
    const rows = [
      row({ crawlId: 'shop-1', status: 'Running', phase: 'crawling', saved: 1234, queued: 56, failed: 7, seedHost: 'shop.example.com', closedAt: null, durationMs: null, runs: 3 }),
      row({ crawlId: 'old', status: 'Terminated' }),
    ];
    const nowMs = started.getTime() + 3_723_000;
    assert.equal(
      formatCrawlList(rows, nowMs),
      [
        'crawl id  status      phase     saved  queued  failed  runs  started (UTC)        duration  seed host',
        'shop-1    Running     crawling   1234      56       7     3  2026-12-01 08:00:00    1h 02m  shop.example.com',
        'old       Terminated                                      1  2026-12-01 08:00:00    1m 05s',
        '',
      ].join('\n'),
    );
  });

  it('gives a running crawl its duration so far, a closed one the time it ran', () => {
    const nowMs = started.getTime() + 42_000;
    const [, running] = formatCrawlList([row({ status: 'Running', closedAt: null, durationMs: null })], nowMs).split('\n');
    assert.match(running, / 42s$/);
    const [, closed] = formatCrawlList([row({})], nowMs).split('\n');
    assert.match(closed, / 1m 05s$/);
  });
});

describe('durations', () => {
  const cases: Array<[number, string]> = [
    [0, '0 ms'],
    [850, '850 ms'],
    [1_000, '1s'],
    [59_400, '59s'],
    [59_600, '1m 00s'],
    [245_000, '4m 05s'],
    [3_600_000, '1h 00m'],
    [11_220_000, '3h 07m'],
    [187_200_000, '2d 04h'],
  ];
  for (const [ms, text] of cases) it(`${ms} ms is ${text}`, () => assert.equal(formatDuration(ms), text));
});

describe('tcrawl list: the visibility query', () => {
  it('lists crawl workflows, leaving out runs that continued as new', () => {
    assert.equal(visibilityQuery({}), 'WorkflowType = "crawlWorkflow" AND ExecutionStatus != "ContinuedAsNew"');
  });

  it('filters by status: --failed takes Failed, Terminated and TimedOut', () => {
    assert.equal(visibilityQuery({ status: 'running' }), 'WorkflowType = "crawlWorkflow" AND ExecutionStatus = "Running"');
    assert.equal(visibilityQuery({ status: 'finished' }), 'WorkflowType = "crawlWorkflow" AND ExecutionStatus = "Completed"');
    assert.equal(visibilityQuery({ status: 'failed' }), 'WorkflowType = "crawlWorkflow" AND ExecutionStatus IN ("Failed", "Terminated", "TimedOut")');
  });

  it("ANDs the user's query in parentheses, so its ORs stay inside", () => {
    assert.equal(
      visibilityQuery({ status: 'running', query: 'TcrawlPhase = "paused" OR TcrawlSaved > 10' }),
      'WorkflowType = "crawlWorkflow" AND ExecutionStatus = "Running" AND (TcrawlPhase = "paused" OR TcrawlSaved > 10)',
    );
  });

  it('lets continued-as-new runs through when the query is about statuses', () => {
    assert.equal(visibilityQuery({ query: 'ExecutionStatus = "ContinuedAsNew"' }), 'WorkflowType = "crawlWorkflow" AND (ExecutionStatus = "ContinuedAsNew")');
  });
});
