import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HandlerError, handlerPath, runHandler, type HandlerContext, type HandlerResponse } from '../../activities/handlers';
import { MissingSecretError, resolveValues, scrubSecrets } from '../../activities/secrets';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tcrawl-handlers-'));
function module(name: string, source: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, source);
  return file;
}

const response: HandlerResponse = { url: 'https://api.example/x', finalUrl: 'https://api.example/x', status: 200, contentType: 'application/json', text: '{"n":2}', json: { n: 2 }, $: undefined };
const context: HandlerContext = { crawlId: 'c', label: 'l', depth: 1, request: { method: 'GET', url: 'https://api.example/x' }, rule: 'r' };

/** The HandlerError message `run` rejects with. */
async function refusal(run: Promise<unknown>): Promise<string> {
  try {
    await run;
  } catch (error) {
    assert.ok(error instanceof HandlerError, String(error));
    assert.equal(error.code, 'TCRAWL_HANDLER_ERROR');
    return error.message;
  }
  assert.fail('the handler did not fail');
}

describe('handlers', () => {
  it('an ES module or a CommonJS one: what handle returns is checked and defaulted', async () => {
    const esm = module('double.mjs', 'export function handle(r, c) { return { items: [{ n: r.json.n * 2, rule: c.rule }], requests: ["/next", { url: "/p", method: "POST", body: { a: 1 } }] }; }');
    assert.deepEqual(await runHandler(esm, response, context, 1000), { items: [{ n: 4, rule: 'r' }], requests: ['/next', { url: '/p', method: 'POST', body: { a: 1 } }] });
    const cjs = module('nothing.cjs', 'exports.handle = async () => undefined;');
    assert.deepEqual(await runHandler(cjs, response, context, 1000), { items: [], requests: [] });
  });

  it('relative paths resolve against TCRAWL_HANDLERS_DIR, else the working directory', () => {
    assert.equal(handlerPath('h.mjs', { TCRAWL_HANDLERS_DIR: '/srv/handlers' }), '/srv/handlers/h.mjs');
    assert.equal(handlerPath('h.mjs', {}), path.resolve('h.mjs'));
    assert.equal(handlerPath('/abs/h.mjs', { TCRAWL_HANDLERS_DIR: '/srv' }), '/abs/h.mjs');
  });

  it('a missing module, a module without handle, a throw, a wrong result and a hang are handler errors that say which', async () => {
    assert.match(await refusal(runHandler(path.join(dir, 'absent.mjs'), response, context, 1000)), /Cannot load handler module .*absent\.mjs/);
    assert.match(await refusal(runHandler(module('none.mjs', 'export const x = 1;'), response, context, 1000)), /does not export a function `handle\(response, context\)`/);
    assert.match(await refusal(runHandler(module('throws.mjs', 'export function handle() { throw new Error("boom"); }'), response, context, 1000)), /threw: boom/);
    assert.match(await refusal(runHandler(module('wrong.mjs', 'export function handle() { return { items: "x" }; }'), response, context, 1000)), /returned something other than \{ items, requests \}: items:/);
    assert.match(await refusal(runHandler(module('hangs.mjs', 'export function handle() { return new Promise(() => {}); }'), response, context, 50)), /did not finish within 50 ms/);
  });
});

describe('secrets', () => {
  it('plain values pass, secrets are read from the environment with their prefix, and listed for scrubbing', () => {
    const resolved = resolveValues({ Accept: 'application/json', Authorization: { env: 'TOKEN', prefix: 'Bearer ' } }, { TOKEN: 's3cr3t' });
    assert.deepEqual(resolved, { values: { Accept: 'application/json', Authorization: 'Bearer s3cr3t' }, secrets: ['s3cr3t'] });
    assert.equal(scrubSecrets('failed at https://x/?key=s3cr3t (s3cr3t)', resolved.secrets), 'failed at https://x/?key=[secret] ([secret])');
  });

  it('an unset or empty variable is a MissingSecretError naming the variable, never a value', () => {
    for (const env of [{}, { TOKEN: '' }]) {
      assert.throws(() => resolveValues({ Authorization: { env: 'TOKEN' } }, env), (error: unknown) => error instanceof MissingSecretError && error.code === 'TCRAWL_SECRET_MISSING' && /TOKEN is not set/.test(error.message));
    }
  });
});
