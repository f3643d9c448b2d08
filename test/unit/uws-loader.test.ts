import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadUws, UwsFallbackError } from '../../native/uws.js';

test('the native uWS binary loads on this platform', () => {
  const loaded = loadUws();
  assert.equal(loaded.native, true);
  assert.equal(typeof loaded.uws.App, 'function');
});

test('without the native binary the gateway refuses to start, naming the way out', () => {
  assert.throws(
    () => loadUws({ binary: '/nonexistent/uws_missing.node' }),
    (err: unknown) => err instanceof UwsFallbackError && /native binary did not load/.test(err.message) && /--allow-js-fallback/.test(err.message),
  );
});

test('with the opt-in it serves on the pure-JS fallback', () => {
  const loaded = loadUws({ binary: '/nonexistent/uws_missing.node', allowJsFallback: true });
  assert.equal(loaded.native, false);
  assert.match(loaded.fallbackReason ?? '', /Cannot find module/);
  assert.equal(typeof loaded.uws.App, 'function');
});
