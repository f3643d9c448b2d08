import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admitRequest } from '../../gateway/http/connection-budget.js';
import { isStalled, StallWatch } from '../../gateway/http/stall-watch.js';

const limits = { maxInFlight: 4, maxBufferedBytes: 1000 };

test('a socket under its budget takes requests; at either cap they are refused; refusals in a row close it', () => {
  assert.deepEqual(admitRequest({ inFlight: 3, bufferedBytes: 999, refusedInARow: 0 }, limits), { verdict: 'accept' });
  const full = admitRequest({ inFlight: 4, bufferedBytes: 0, refusedInARow: 0 }, limits);
  assert.equal(full.verdict, 'refuse');
  assert.match((full as { reason: string }).reason, /ws_max_in_flight is 4/);
  const unread = admitRequest({ inFlight: 1, bufferedBytes: 1000, refusedInARow: 2 }, limits);
  assert.equal(unread.verdict, 'refuse');
  assert.match((unread as { reason: string }).reason, /ws_max_buffered_bytes is 1000/);
  assert.equal(admitRequest({ inFlight: 1, bufferedBytes: 1000, refusedInARow: 3 }, limits).verdict, 'close');
  // An accepted request ends a run of refusals: the caller resets the count.
  assert.equal(admitRequest({ inFlight: 0, bufferedBytes: 0, refusedInARow: 3 }, limits).verdict, 'accept');
});

test('the stall watch tells a response once it made no progress for the timeout, and only then', () => {
  assert.equal(isStalled(1000, 1999, 1000), false);
  assert.equal(isStalled(1000, 2000, 1000), true);
  let now = 0;
  const watch = new StallWatch(1000, () => now);
  const stalled: string[] = [];
  const a = { lastProgressAt: 0, onStalled: () => stalled.push('a') };
  const b = { lastProgressAt: 0, onStalled: () => stalled.push('b') };
  watch.watch(a);
  watch.watch(b);
  now = 600;
  b.lastProgressAt = 600;
  watch.sweep();
  assert.deepEqual(stalled, []);
  now = 1000;
  watch.sweep();
  assert.deepEqual(stalled, ['a'], 'a took nothing for 1000 ms; b did 400 ms ago');
  assert.equal(watch.size, 1, 'a stalled response is no longer watched');
  watch.unwatch(b);
  now = 5000;
  watch.sweep();
  assert.deepEqual(stalled, ['a'], 'an unwatched response is never told');
  watch.close();
});
