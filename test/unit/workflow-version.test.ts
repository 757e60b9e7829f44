/**
 * Every change to workflows/ is a new workflow version with recorded
 * histories of its own (workflows/versions.ts): this fails until it is.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { patches, workflowVersion } from '../../workflows/versions';
import { loadHistory, patchIds, recordedHistories, recordedSourceHashes, workflowSourcesHash } from '../fixtures/histories';

const record = 'record its histories with `TEMPORAL_ADDRESS=… DATABASE_URL=… npm run record-histories` and commit test/fixtures/histories';

describe('workflow version', () => {
  it(`workflows/ is the code version ${workflowVersion}'s histories were recorded with`, () => {
    const recorded = recordedSourceHashes()[workflowVersion];
    assert.ok(recorded !== undefined, `version ${workflowVersion} has no recorded histories yet: ${record}.`);
    assert.equal(
      workflowSourcesHash(),
      recorded,
      `workflows/ changed since version ${workflowVersion}'s histories were recorded. Every change to workflows/ is a new version: ` +
        `set workflowVersion = ${workflowVersion + 1} in workflows/versions.ts; put any change to the commands the workflow issues ` +
        `for an earlier history behind patched(id), with the id in \`patches\`; then ${record}.`,
    );
  });

  it(`version ${workflowVersion} has recorded histories`, () => {
    const current = recordedHistories().filter(({ version }) => version === workflowVersion);
    assert.ok(current.length > 0, `no test/fixtures/histories/v${workflowVersion}-*.json: ${record}.`);
  });

  it('versions.json names each version from 0 to workflowVersion, none ahead of it', () => {
    const expected = Array.from({ length: workflowVersion + 1 }, (_, version) => String(version));
    assert.deepEqual(Object.keys(recordedSourceHashes()).sort((a, b) => Number(a) - Number(b)), expected);
  });

  it('every patch in `patches` has its patched branch in a committed history', () => {
    const replayed = new Set(recordedHistories().flatMap(({ file }) => patchIds(loadHistory(file))));
    const missing = Object.values(patches).filter((id) => !replayed.has(id));
    assert.deepEqual(missing, [], `no committed history takes the patched branch of ${missing.join(', ')}: add a recording that does to test/fixtures/record-histories.ts`);
  });
});
