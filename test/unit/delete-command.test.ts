import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { describeDeletion, instantArg } from '../../src/cli/delete-command';
import { InvalidInputError } from '../../src/errors';

describe('tcrawl delete: --finished-before dates and the summary line', () => {
  const accepted: Array<[string, string]> = [
    ['2025-01-31', '2025-01-31T00:00:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
    ['2025-01-31T12:00Z', '2025-01-31T12:00:00.000Z'],
    ['2025-01-31T12:00:30Z', '2025-01-31T12:00:30.000Z'],
    ['2025-01-31T12:00:30.250Z', '2025-01-31T12:00:30.250Z'],
    ['2025-01-31T12:00:00+02:00', '2025-01-31T10:00:00.000Z'],
    ['2025-01-01T01:00:00-05:30', '2025-01-01T06:30:00.000Z'],
  ];
  for (const [given, instant] of accepted) {
    it(`reads ${given} as ${instant}`, () => {
      assert.equal(instantArg(given).toISOString(), instant);
    });
  }

  const refused: Array<[string, RegExp]> = [
    ['2025-02-30', /not a valid date/],
    ['2025-02-29', /not a valid date/],
    ['2025-13-01', /not a valid date/],
    ['2025-01-31T24:00Z', /not a valid date/],
    ['2025-01-31T12:60Z', /not a valid date/],
    ['2025-01-31T12:00:00+25:00', /not a valid date/],
    ['2025-01-31T12:00', /not a time with an offset/],
    ['2025-01-31 12:00Z', /not an ISO 8601 date/],
    ['31/01/2025', /not an ISO 8601 date/],
    ['yesterday', /not an ISO 8601 date/],
    ['', /not an ISO 8601 date/],
    ['2025-1-31', /not an ISO 8601 date/],
  ];
  for (const [given, message] of refused) {
    it(`refuses ${JSON.stringify(given)} as bad input`, () => {
      assert.throws(
        () => instantArg(given),
        (error: unknown) => error instanceof InvalidInputError && error.code === 'TCRAWL_INVALID_DATE' && message.test(error.message) && /2025-01-31T12:00:00Z/.test(error.message),
      );
    });
  }

  it('summarises a deletion: rows per table, executions, how it was stopped, why retention picked it', () => {
    const rows = { items: 3, bodies: 5, pages: 12, links: 0, robots: 1, frontier: 40, crawls: 1 };
    assert.equal(
      describeDeletion({ crawlId: 'c1', rows, executions: ['r1', 'r2'], stopped: 'cancelled' }),
      'Deleted crawl c1 after it was cancelled: rows 3 items, 5 bodies, 12 pages, 0 links, 1 robots, 40 frontier, 1 crawls; 2 workflow executions',
    );
    assert.equal(
      describeDeletion({ crawlId: 'c2', rows, executions: [], stopped: null, why: 'no_workflow', at: new Date(Date.UTC(2025, 0, 1)) }, true),
      'Would delete crawl c2 (no workflow left; created 2025-01-01T00:00:00.000Z): rows 3 items, 5 bodies, 12 pages, 0 links, 1 robots, 40 frontier, 1 crawls; 0 workflow executions',
    );
  });
});
