import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidInputError } from '../../src/errors';
import { jsonLogLine, logFormat } from '../../src/cli/log-format';
import { metricsPortArg } from '../../src/cli/runtime';

describe('TCRAWL_LOG_FORMAT and JSON log lines', () => {
  it('is text unless set to json, and refuses anything else with its code', () => {
    assert.equal(logFormat({}), 'text');
    assert.equal(logFormat({ TCRAWL_LOG_FORMAT: '' }), 'text');
    assert.equal(logFormat({ TCRAWL_LOG_FORMAT: 'text' }), 'text');
    assert.equal(logFormat({ TCRAWL_LOG_FORMAT: 'json' }), 'json');
    assert.throws(() => logFormat({ TCRAWL_LOG_FORMAT: 'JSON' }), (error: unknown) => error instanceof InvalidInputError && error.code === 'TCRAWL_INVALID_LOG_FORMAT');
  });

  it('writes one line: time in UTC, level in lower case, message, then the attributes (errors and bigints written out)', () => {
    const line = jsonLogLine({
      level: 'WARN',
      message: 'URL failed with an internal error',
      meta: { crawlId: 'c1', host: 'a.test:8080', error: new TypeError('boom'), n: 5n, note: 'two\nlines' },
      timestampNanos: BigInt(Date.UTC(2026, 11, 1, 23, 0, 0, 123)) * 1_000_000n,
    });
    assert.ok(line.endsWith('}\n') && line.indexOf('\n') === line.length - 1, 'one line');
    const entry = JSON.parse(line);
    assert.equal(entry.time, '2026-12-01T23:00:00.123Z');
    assert.equal(entry.level, 'warn');
    assert.equal(entry.message, 'URL failed with an internal error');
    assert.equal(entry.crawlId, 'c1');
    assert.equal(entry.host, 'a.test:8080');
    assert.deepEqual({ name: entry.error.name, message: entry.error.message }, { name: 'TypeError', message: 'boom' });
    assert.match(entry.error.stack, /TypeError: boom/);
    assert.equal(entry.n, '5');
    assert.equal(entry.note, 'two\nlines');
    assert.deepEqual(Object.keys(entry).slice(0, 3), ['time', 'level', 'message']);
  });
});

describe('--metrics-port', () => {
  it('takes a TCP port, and refuses anything else with its code', () => {
    assert.equal(metricsPortArg('9464'), 9464);
    assert.equal(metricsPortArg('1'), 1);
    assert.equal(metricsPortArg('65535'), 65535);
    for (const bad of ['0', '65536', '-1', '94.5', '1e3', '0x10', '', 'port']) {
      assert.throws(() => metricsPortArg(bad), (error: unknown) => error instanceof InvalidInputError && error.code === 'TCRAWL_INVALID_METRICS_PORT', bad);
    }
  });
});
