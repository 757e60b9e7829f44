/**
 * The Docker files name the Temporal server release tcrawl builds and tests
 * (`npm run test:cluster`); a version bump in one place must reach the others.
 * The compose file's workers serve metrics on the port they expose.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GO_TOOLCHAIN, TEMPORAL_SERVER_VERSION } from '../../src/infra/temporal-cluster-binaries';

const root = path.resolve(__dirname, '../..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');

describe('deploy files', () => {
  it('deploy/temporal/Dockerfile builds the tested Temporal server release with the same Go', () => {
    const dockerfile = read('deploy/temporal/Dockerfile');
    assert.match(dockerfile, new RegExp(`^ARG TEMPORAL_SERVER_VERSION=${TEMPORAL_SERVER_VERSION}$`, 'm'));
    assert.match(dockerfile, new RegExp(`^ARG GO_TOOLCHAIN=${GO_TOOLCHAIN}$`, 'm'));
  });

  it('docker-compose.yml tags its Temporal image with that release', () => {
    const tags = [...read('docker-compose.yml').matchAll(/image: tcrawl-temporal:(\S+)/g)].map((m) => m[1]);
    assert.ok(tags.length >= 2, 'the schema job and the server use the image');
    for (const tag of tags) assert.equal(tag, TEMPORAL_SERVER_VERSION);
  });

  it('docker-compose.yml\'s workers serve metrics on the port the file exposes, and the image declares it', () => {
    const compose = read('docker-compose.yml');
    const port = /command: \["worker", "--metrics-port", "(\d+)"\]/.exec(compose)?.[1];
    assert.ok(port, 'the worker runs with --metrics-port');
    assert.match(compose, new RegExp(`expose: \\["${port}"\\]`));
    assert.match(compose, new RegExp(`ports: \\["\\d+-\\d+:${port}"\\]`));
    assert.match(read('Dockerfile'), new RegExp(`^EXPOSE ${port}$`, 'm'));
  });
});
