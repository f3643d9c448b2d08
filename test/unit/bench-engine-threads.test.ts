import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultWorkers } from '../../bench/engine/engine.js';

test('load threads: one per spare core up to 8; with one spare core or none the main thread carries the load', () => {
  assert.equal(defaultWorkers(1), 0);
  assert.equal(defaultWorkers(2), 0);
  assert.equal(defaultWorkers(3), 2);
  assert.equal(defaultWorkers(4), 3);
  assert.equal(defaultWorkers(64), 8);
});
