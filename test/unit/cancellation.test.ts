import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cancellation } from '../../workers/pool/cancellation.js';

test('a signal read before the cancel fires once, with the reason', () => {
  const cancel = new Cancellation();
  const signal = cancel.signal;
  let fired = 0;
  signal.addEventListener('abort', () => fired++);
  assert.equal(signal.aborted, false);
  const reason = new Error('the request was cancelled');
  cancel.abort(reason);
  cancel.abort(new Error('a second cancel'));
  assert.equal(cancel.aborted, true);
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason, reason);
  assert.equal(fired, 1);
  assert.equal(cancel.signal, signal);
});

test('a signal first read after the cancel comes out aborted, with the same reason', () => {
  const cancel = new Cancellation();
  const reason = new Error('the replica is stopping');
  cancel.abort(reason);
  assert.equal(cancel.signal.aborted, true);
  assert.equal(cancel.signal.reason, reason);
});

test('without a cancel nothing is aborted', () => {
  const cancel = new Cancellation();
  assert.equal(cancel.aborted, false);
  assert.equal(cancel.signal.aborted, false);
});
