/**
 * The environment tcrawl reads, checked once by runtimeConfig (src/config.ts),
 * and the options every Temporal connection is built from
 * (temporalConnectionOptions). Certificates are made by openssl here. API
 * keys are checked as options only: Temporal Cloud cannot be reached offline.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runtimeConfig } from '../../src/config';
import { InvalidInputError } from '../../src/errors';
import { temporalConnectionOptions } from '../../src/temporal-connection';
import { privateDir } from '../helpers/processes';
import { testCertificateAuthority } from '../helpers/tls';

const address = '127.0.0.1:7233';
const dir = privateDir('tcrawl-config-');
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const ca = testCertificateAuthority(dir);
const client = ca.client('worker');
const other = testCertificateAuthority(dir, 'another CA').client('stranger');
const notPem = path.join(dir, 'not.pem');
fs.writeFileSync(notPem, 'hello\n');

/** The code and message runtimeConfig refuses `env` with. */
function refusal(env: NodeJS.ProcessEnv): { code: string; message: string } {
  try {
    runtimeConfig(env);
  } catch (error) {
    assert.ok(error instanceof InvalidInputError, `expected InvalidInputError, got ${String(error)}`);
    return { code: error.code, message: error.message };
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

describe('runtimeConfig: names', () => {
  it('defaults: namespace default, task queue tcrawl, plaintext', () => {
    const config = runtimeConfig({});
    assert.equal(config.temporalNamespace, 'default');
    assert.equal(config.taskQueue, 'tcrawl');
    assert.deepEqual(temporalConnectionOptions(address, config), { address });
  });

  it('takes Temporal Cloud names (namespace.account) and any non-blank task queue', () => {
    const config = runtimeConfig({ TEMPORAL_NAMESPACE: 'crawls.a1b2c', TCRAWL_TASK_QUEUE: 'tcrawl/eu-west:1' });
    assert.equal(config.temporalNamespace, 'crawls.a1b2c');
    assert.equal(config.taskQueue, 'tcrawl/eu-west:1');
  });

  it('refuses a namespace with whitespace, and one over 1,000 bytes', () => {
    const spaced = refusal({ TEMPORAL_NAMESPACE: 'default ' });
    assert.equal(spaced.code, 'TCRAWL_INVALID_NAMESPACE');
    assert.match(spaced.message, /TEMPORAL_NAMESPACE="default " has " " at 7: names take no whitespace/);
    assert.equal(refusal({ TEMPORAL_NAMESPACE: 'n'.repeat(1001) }).code, 'TCRAWL_INVALID_NAMESPACE');
  });

  it('refuses a task queue with a control character, or the server\'s reserved prefixes', () => {
    assert.equal(refusal({ TCRAWL_TASK_QUEUE: 'tcrawl\n' }).code, 'TCRAWL_INVALID_TASK_QUEUE');
    const partition = refusal({ TCRAWL_TASK_QUEUE: '/_sys/tcrawl/1' });
    assert.equal(partition.code, 'TCRAWL_INVALID_TASK_QUEUE');
    assert.match(partition.message, /starts with \/_sys\/, which the Temporal server keeps for itself/);
    assert.equal(refusal({ TCRAWL_TASK_QUEUE: 'temporal-sys-per-ns-tq' }).code, 'TCRAWL_INVALID_TASK_QUEUE');
  });

  it('refuses a TEMPORAL_ADDRESS that is not host:port', () => {
    for (const bad of ['http://127.0.0.1:7233', 'temporal', 'temporal:port', 'temporal:70000']) {
      assert.equal(refusal({ TEMPORAL_ADDRESS: bad }).code, 'TCRAWL_INVALID_TEMPORAL_ADDRESS', bad);
    }
    for (const good of ['temporal:7233', 'crawls.a1b2c.tmprl.cloud:7233', '[::1]:7233']) assert.equal(runtimeConfig({ TEMPORAL_ADDRESS: good }).temporalAddress, good);
  });
});

describe('runtimeConfig: TLS and API keys', () => {
  const base = { TEMPORAL_ADDRESS: address };

  it('mutual TLS: the CA, the client pair and the server name go into the options, read from the files', () => {
    const config = runtimeConfig({ ...base, TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca.caFile, TEMPORAL_TLS_CLIENT_CERT_PATH: client.cert, TEMPORAL_TLS_CLIENT_KEY_PATH: client.key, TEMPORAL_TLS_SERVER_NAME: 'temporal.internal' });
    assert.deepEqual(temporalConnectionOptions(address, config), {
      address,
      tls: {
        serverRootCACertificate: fs.readFileSync(ca.caFile),
        clientCertPair: { crt: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) },
        serverNameOverride: 'temporal.internal',
      },
    });
  });

  it('TEMPORAL_TLS=true alone: TLS with the system\'s roots; false or unset: plaintext', () => {
    assert.deepEqual(temporalConnectionOptions(address, runtimeConfig({ ...base, TEMPORAL_TLS: 'true' })), { address, tls: {} });
    assert.deepEqual(temporalConnectionOptions(address, runtimeConfig({ ...base, TEMPORAL_TLS: 'false' })), { address });
    assert.equal(refusal({ ...base, TEMPORAL_TLS: 'yes' }).code, 'TCRAWL_INVALID_TEMPORAL_TLS');
  });

  it('an API key (Temporal Cloud) is passed through and implies TLS; with a client pair both are sent', () => {
    assert.deepEqual(temporalConnectionOptions(address, runtimeConfig({ ...base, TEMPORAL_API_KEY: 'key-123' })), { address, tls: {}, apiKey: 'key-123' });
    const both = temporalConnectionOptions(address, runtimeConfig({ ...base, TEMPORAL_API_KEY: 'key-123', TEMPORAL_TLS_CLIENT_CERT_PATH: client.cert, TEMPORAL_TLS_CLIENT_KEY_PATH: client.key }));
    assert.equal(both.apiKey, 'key-123');
    assert.ok(both.tls?.clientCertPair);
  });

  it('refuses a key without its certificate, and a certificate without its key', () => {
    const keyOnly = refusal({ ...base, TEMPORAL_TLS_CLIENT_KEY_PATH: client.key });
    assert.equal(keyOnly.code, 'TCRAWL_TLS_KEY_WITHOUT_CERT');
    assert.match(keyOnly.message, /TEMPORAL_TLS_CLIENT_KEY_PATH is set without TEMPORAL_TLS_CLIENT_CERT_PATH/);
    assert.equal(refusal({ ...base, TEMPORAL_TLS_CLIENT_CERT_PATH: client.cert }).code, 'TCRAWL_TLS_CERT_WITHOUT_KEY');
  });

  it('refuses a missing file, naming the variable and the path', () => {
    const missing = path.join(dir, 'nowhere.pem');
    const { code, message } = refusal({ ...base, TEMPORAL_TLS_SERVER_CA_CERT_PATH: missing });
    assert.equal(code, 'TCRAWL_TLS_FILE_UNREADABLE');
    assert.equal(message, `TEMPORAL_TLS_SERVER_CA_CERT_PATH=${missing}: cannot read it (ENOENT).`);
    assert.equal(refusal({ ...base, TEMPORAL_TLS_CLIENT_CERT_PATH: client.cert, TEMPORAL_TLS_CLIENT_KEY_PATH: missing }).code, 'TCRAWL_TLS_FILE_UNREADABLE');
  });

  it('refuses a file that is not PEM, and a key that is not the certificate\'s', () => {
    assert.equal(refusal({ ...base, TEMPORAL_TLS_SERVER_CA_CERT_PATH: notPem }).code, 'TCRAWL_TLS_INVALID_FILE');
    assert.equal(refusal({ ...base, TEMPORAL_TLS_CLIENT_CERT_PATH: client.cert, TEMPORAL_TLS_CLIENT_KEY_PATH: notPem }).code, 'TCRAWL_TLS_INVALID_FILE');
    const mismatch = refusal({ ...base, TEMPORAL_TLS_CLIENT_CERT_PATH: client.cert, TEMPORAL_TLS_CLIENT_KEY_PATH: other.key });
    assert.equal(mismatch.code, 'TCRAWL_TLS_KEY_MISMATCH');
  });

  it('refuses TLS settings without TEMPORAL_ADDRESS (the local dev server is plaintext), and TEMPORAL_TLS=false beside them', () => {
    const local = refusal({ TEMPORAL_API_KEY: 'key-123' });
    assert.equal(local.code, 'TCRAWL_TLS_WITHOUT_ADDRESS');
    assert.match(local.message, /^TEMPORAL_API_KEY set without TEMPORAL_ADDRESS/);
    assert.equal(refusal({ TEMPORAL_TLS: 'true' }).code, 'TCRAWL_TLS_WITHOUT_ADDRESS');
    assert.equal(refusal({ ...base, TEMPORAL_TLS: 'false', TEMPORAL_API_KEY: 'key-123' }).code, 'TCRAWL_TLS_CONFLICT');
    assert.equal(refusal({ ...base, TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca.caFile }).code, 'TCRAWL_TLS_CONFLICT');
  });

  it('refuses the PEM-in-a-variable forms, pointing at the _PATH ones', () => {
    const { code, message } = refusal({ ...base, TEMPORAL_TLS_CLIENT_CERT_DATA: '-----BEGIN CERTIFICATE-----' });
    assert.equal(code, 'TCRAWL_TLS_UNSUPPORTED_VARIABLE');
    assert.match(message, /set TEMPORAL_TLS_CLIENT_CERT_PATH to its path/);
  });
});
