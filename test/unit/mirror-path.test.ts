import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { conflictPath, itemFilePath, mirrorPath } from '../../src/results/mirror-path';

describe('mirrorPath', () => {
  it('names a folder URL index.html, the site root included', () => {
    assert.equal(mirrorPath('http://example.com/', 'text/html'), 'example.com/index.html');
    assert.equal(mirrorPath('http://example.com:8080/docs/', 'text/html; charset=utf-8'), 'example.com:8080/docs/index.html');
  });

  it('gives an HTML body .html unless its name has it, so /a and /a/b both fit', () => {
    assert.equal(mirrorPath('http://example.com/docs/intro', 'text/html'), 'example.com/docs/intro.html');
    assert.equal(mirrorPath('http://example.com/docs/intro/part', 'TEXT/HTML'), 'example.com/docs/intro/part.html');
    assert.equal(mirrorPath('http://example.com/page.htm', 'text/html'), 'example.com/page.htm');
    assert.equal(mirrorPath('http://example.com/x', 'application/xhtml+xml'), 'example.com/x.html');
  });

  it('keeps other names as they are', () => {
    assert.equal(mirrorPath('http://example.com/files/blob.bin', 'application/octet-stream'), 'example.com/files/blob.bin');
    assert.equal(mirrorPath('http://example.com/api/item/1', 'application/json'), 'example.com/api/item/1');
    assert.equal(mirrorPath('http://example.com/raw', null), 'example.com/raw');
  });

  it('keeps a query in the name, its slashes escaped', () => {
    assert.equal(mirrorPath('http://example.com/list?page=2', 'text/html'), 'example.com/list?page=2.html');
    assert.equal(mirrorPath('http://example.com/go?to=/a/b', 'text/plain'), 'example.com/go?to=%2Fa%2Fb');
  });

  it('keeps percent-encoding as the URL spelled it', () => {
    assert.equal(mirrorPath('http://example.com/a%20b/c%2Fd', 'text/plain'), 'example.com/a%20b/c%2Fd');
  });
});

describe('conflictPath', () => {
  it('is under the host, named by the request key, so two requests to one URL get two names', () => {
    const one = conflictPath('http://example.com/search', 'POST http://example.com/search sha256:aa');
    const two = conflictPath('http://example.com/search', 'POST http://example.com/search sha256:bb');
    assert.match(one, /^example\.com\/\.tcrawl-conflicts\/[0-9a-f]{16}-search$/);
    assert.notEqual(one, two);
    assert.equal(one, conflictPath('http://example.com/search', 'POST http://example.com/search sha256:aa'));
  });
});

describe('itemFilePath', () => {
  const item = { url: 'POST http://api.example:8080/search sha256:ab', position: 3, data: { id: 42, name: 'a/b', tags: ['x'], none: null } };

  it('fills fields, the position and the page host; a value cannot climb out of its folder', () => {
    assert.equal(itemFilePath('{host}/{id}-{position}.json', item), 'api.example:8080/42-3.json');
    assert.equal(itemFilePath('{name}.json', item), 'a%2Fb.json');
    assert.equal(itemFilePath('{tags}.json', item), '["x"].json');
    assert.equal(itemFilePath('{host}/{id}', { ...item, data: { id: '..' } }), null);
  });

  it('is null when a field is missing, null or empty', () => {
    assert.equal(itemFilePath('{sku}.json', item), null);
    assert.equal(itemFilePath('{none}.json', item), null);
    assert.equal(itemFilePath('{id}.json', { ...item, data: { id: '' } }), null);
  });
});
