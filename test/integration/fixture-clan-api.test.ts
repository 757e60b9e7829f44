/**
 * The imitation clan API (test/fixtures/clan-api.ts) behaves as the
 * clan-harvest test relies on: deterministic sparse data, every page and
 * members list as documented, the key required, and one quota across both
 * hostnames answered with 429 and Retry-After above it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { generateClans, harvestRequestCount, startClanApi, type ClanApi, type ClanApiOptions } from '../fixtures/clan-api';

const apiKey = 'test-key-0123';
/** Enough quota that data tests are never refused. */
const noQuota = { requests: 100_000, windowMs: 1000 };

async function withApi(opts: Partial<ClanApiOptions>, fn: (api: ClanApi) => Promise<void>): Promise<void> {
  const api = await startClanApi({ apiKey, quota: noQuota, latencyMs: 0, ...opts });
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}

async function get(url: string, key: string | null = apiKey) {
  const res = await request(url, { headers: key === null ? {} : { 'x-api-key': key } });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: JSON.parse(text) };
}

describe('clan API data', () => {
  it('is the same for the same seed, and differs for another', () => {
    assert.deepEqual(generateClans(300, 7), generateClans(300, 7));
    assert.notDeepEqual(generateClans(300, 7).clans, generateClans(300, 8).clans);
  });

  it('has sparse ascending ids that cannot be counted, unique member tags, empty clans and awkward names', () => {
    const { clans, members } = generateClans(1500, 8701);
    assert.equal(clans.length, 1500);
    const ids = clans.map((c) => c.id);
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), 'ascending');
    const consecutive = ids.filter((id, i) => i > 0 && id === ids[i - 1] + 1).length;
    assert.ok(consecutive < 5, `${consecutive} consecutive ids`);
    const tags = [...members.values()].flat().map((m) => m.tag);
    assert.equal(new Set(tags).size, tags.length);
    assert.ok(clans.every((c) => c.memberCount === members.get(c.id)!.length));
    assert.ok(clans.some((c) => c.memberCount === 0), 'some clan has no members');
    assert.ok(clans.some((c) => c.name.includes('🐺')) && clans.some((c) => c.name.includes('"')));
  });

  it('counts the requests of a harvest: every list page, then one per clan', () => {
    assert.equal(harvestRequestCount(620, 100), 7 + 620);
    assert.equal(harvestRequestCount(600, 100), 6 + 600);
  });
});

describe('clan API endpoints', () => {
  it('lists every clan once over the pages, with the total, and no clans past the end', () =>
    withApi({ clans: 250 }, async (api) => {
      const pages = await Promise.all([1, 2, 3].map((page) => get(api.listUrl(page))));
      assert.deepEqual(pages.map((p) => p.status), [200, 200, 200]);
      assert.deepEqual(pages.map((p) => p.json.clans.length), [100, 100, 50]);
      assert.deepEqual(pages.map((p) => p.json.total), [250, 250, 250]);
      assert.deepEqual(pages.flatMap((p) => p.json.clans), api.clans);
      assert.deepEqual((await get(api.listUrl(4))).json.clans, []);
      assert.equal((await get(`${api.origins[0]}/v1/clans?page=0&limit=100`)).status, 400);
      assert.equal((await get(`${api.origins[0]}/v1/clans?page=1&limit=101`)).status, 400);
      assert.equal((await get(`${api.origins[0]}/v1/clans`)).json.clans.length, 20, 'limit defaults to 20');
    }));

  it('gives each clan its members on both hostnames, and 404 for an id that is no clan', () =>
    withApi({ clans: 50 }, async (api) => {
      const clan = api.clans.find((c) => c.memberCount > 2)!;
      for (const origin of [0, 1]) {
        const { status, json } = await get(api.membersUrl(clan.id, origin));
        assert.equal(status, 200);
        assert.deepEqual(json, { clan: { id: clan.id, name: clan.name }, members: api.members.get(clan.id) });
      }
      assert.equal((await get(api.membersUrl(clan.id + 1))).status, api.clans.some((c) => c.id === clan.id + 1) ? 200 : 404);
      assert.equal((await get(`${api.origins[1]}/v1/clans/abc/members`)).status, 404);
      assert.deepEqual(api.hosts, api.origins.map((o) => new URL(o).host));
      assert.match(api.hosts[0], /^127\.0\.0\.1:\d+$/);
      assert.match(api.hosts[1], /^127\.0\.0\.2:\d+$/);
    }));

  it('answers 401 without the key or with another, but serves robots.txt (404) without one', () =>
    withApi({ clans: 10 }, async (api) => {
      assert.equal((await get(api.listUrl(1), null)).status, 401);
      assert.equal((await get(api.listUrl(1), 'wrong')).status, 401);
      assert.equal((await get(api.membersUrl(api.clans[0].id), null)).status, 401);
      assert.equal((await get(`${api.origins[0]}/robots.txt`, null)).status, 404);
      assert.equal((await get(api.listUrl(1))).status, 200);
    }));

  it('records every request with its time, host, path and status', () =>
    withApi({ clans: 10 }, async (api) => {
      const before = Date.now();
      await get(api.listUrl(1));
      await get(api.membersUrl(api.clans[0].id), null);
      assert.deepEqual(
        api.requests.map(({ host, path, status, method }) => ({ host, path, status, method })),
        [
          { host: api.hosts[0], path: '/v1/clans?page=1&limit=100', status: 200, method: 'GET' },
          { host: api.hosts[1], path: `/v1/clans/${api.clans[0].id}/members`, status: 401, method: 'GET' },
        ],
      );
      assert.ok(api.requests.every((r) => r.at >= before - 1 && r.at <= Date.now() + 1));
    }));
});

describe('clan API quota', () => {
  it('shares one quota across both hostnames: above it 429 with Retry-After, and room again once the window has passed', () =>
    withApi({ clans: 10, quota: { requests: 10, windowMs: 1000 } }, async (api) => {
      const urls = Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? api.listUrl(1) : api.membersUrl(api.clans[0].id)));
      const first = await Promise.all(urls.map((url) => get(url)));
      const statuses = first.map((r) => r.status).sort();
      assert.deepEqual(statuses, [...Array(10).fill(200), ...Array(6).fill(429)]);
      const refused = first.filter((r) => r.status === 429);
      assert.ok(refused.every((r) => r.headers['retry-after'] === '1'), 'Retry-After: 1 (the window frees within a second)');
      assert.deepEqual(new Set(api.requests.map((r) => r.host)), new Set(api.hosts), 'both hosts were asked');
      // A refused request does not use the quota: after the window, 10 more pass.
      await new Promise((resolve) => setTimeout(resolve, 1050));
      const second = await Promise.all(urls.slice(0, 10).map((url) => get(url)));
      assert.deepEqual(second.map((r) => r.status), Array(10).fill(200));
    }));

  it('lets requests paced at the quota through, one window after another', () =>
    withApi({ clans: 10, quota: { requests: 5, windowMs: 500 } }, async (api) => {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) {
        statuses.push((await get(api.listUrl(1))).status);
        await new Promise((resolve) => setTimeout(resolve, 110));
      }
      assert.deepEqual(statuses, Array(12).fill(200));
    }));
});
