import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ARRIVAL_JITTER_MS, apiFigures, exampleSpecOnPort, exampleSpecPort, peakInFlight } from '../helpers/api-examples';

describe('API example helpers', () => {
  it('moves an example spec to another port everywhere it names its own', () => {
    for (const name of ['clan-harvest', 'reblog-graph'] as const) {
      const fixed = exampleSpecPort(name);
      const text = fs.readFileSync(exampleSpecOnPort(name, 40123), 'utf8');
      assert.ok(!text.includes(`:${fixed}`), `${name}: no :${fixed} left`);
      const spec = parseYaml(text) as { seeds: string[] };
      assert.equal(new URL(spec.seeds[0]).port, '40123');
    }
    const clans = parseYaml(fs.readFileSync(exampleSpecOnPort('clan-harvest', 40123), 'utf8')) as {
      rateGroups: Array<{ hosts: string[] }>;
      rules: Array<{ url?: string; follow?: Array<{ template: string }> }>;
    };
    assert.deepEqual(clans.rateGroups[0].hosts, ['127.0.0.1:40123', '127.0.0.2:40123']);
    assert.match('http://127.0.0.1:40123/v1/clans?page=2&limit=100', new RegExp(clans.rules[0].url!));
    assert.equal(clans.rules[0].follow![0].template, 'http://127.0.0.2:40123/v1/clans/{id}/members');
  });

  it('counts what an API saw: per host and status, the busiest second with and without the jitter allowance', () => {
    const at = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 985];
    const figures = apiFigures(at.map((t, i) => ({ at: 1_000_000 + t, host: i % 2 ? 'b' : 'a', status: i === 3 ? 429 : 200 })));
    assert.equal(figures.requests, 11);
    assert.deepEqual(figures.byHost, { a: 6, b: 5 });
    assert.deepEqual(figures.byStatus, { '200': 10, '429': 1 });
    assert.equal(figures.maxInSecond, 11);
    assert.equal(figures.maxInSecondLessJitter, 10, `judged ${ARRIVAL_JITTER_MS} ms short of a second, the 11th start is outside`);
    assert.equal(figures.spanSecs, 0.985);
  });

  it('finds the most requests in flight at once; one answered as the next arrives does not overlap it', () => {
    assert.equal(peakInFlight([]), 0);
    assert.equal(peakInFlight([{ at: 0, answeredAt: 10 }, { at: 10, answeredAt: 20 }]), 1);
    assert.equal(peakInFlight([{ at: 0, answeredAt: 30 }, { at: 5, answeredAt: 10 }, { at: 8, answeredAt: 40 }, { at: 35, answeredAt: 50 }]), 3);
  });
});
