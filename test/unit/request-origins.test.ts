import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestOrigins } from '../../workers/node/request-origins.js';

test('two gateways with the same request ids get ids of their own, and frames find their sender', () => {
  const origins = new RequestOrigins();
  const a = origins.admit('gwA', 7);
  const b = origins.admit('gwB', 7);
  assert.notEqual(a, b);
  assert.equal(origins.size, 2);
  assert.deepEqual(origins.origin(a), { gateway: 'gwA', id: 7 });
  assert.deepEqual(origins.origin(b), { gateway: 'gwB', id: 7 });
  assert.equal(origins.local('gwA', 7), a);
  assert.equal(origins.local('gwB', 7), b);
  assert.equal(origins.local('gwC', 7), undefined);
});

test('a finished request is forgotten both ways, once', () => {
  const origins = new RequestOrigins();
  const a = origins.admit('gwA', 1);
  const b = origins.admit('gwA', 2);
  assert.deepEqual(origins.finish(a), { gateway: 'gwA', id: 1 });
  assert.equal(origins.finish(a), undefined);
  assert.equal(origins.origin(a), undefined);
  assert.equal(origins.local('gwA', 1), undefined);
  assert.equal(origins.local('gwA', 2), b);
  assert.equal(origins.size, 1);
});
