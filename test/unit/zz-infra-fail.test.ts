import { test } from 'node:test';
import * as assert from 'node:assert/strict';
test('fails on purpose', () => { assert.equal(1, 2); });
test('sleeps', async () => { await new Promise((r) => setTimeout(r, Number(process.env.ZZ_SLEEP ?? 0))); });
