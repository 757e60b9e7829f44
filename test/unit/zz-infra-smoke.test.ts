import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Client } from 'pg';
import { Connection } from '@temporalio/client';

test('test stack: DATABASE_URL is a fresh tcrawl_test_ database', async () => {
  const client = new Client(process.env.DATABASE_URL);
  await client.connect();
  const { rows } = await client.query('select current_database() as db');
  await client.end();
  assert.match(rows[0].db, /^tcrawl_test_[0-9a-f]{8}$/);
});

test('test stack: TEMPORAL_ADDRESS answers', async () => {
  const conn = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS });
  const info = await conn.workflowService.getSystemInfo({});
  assert.ok(info.serverVersion);
  await conn.close();
});
