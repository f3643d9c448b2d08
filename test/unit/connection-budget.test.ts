import assert from 'node:assert/strict';
import { test } from 'node:test';
import { admitRequest, mayStart, REPLY_SIZE_WINDOW, ReplySizes } from '../../gateway/http/connection-budget.js';
import { isStalled, StallWatch } from '../../gateway/http/stall-watch.js';

const limits = { maxInFlight: 4, maxBufferedBytes: 1000 };

test('a socket under its request cap takes requests; at the cap, or with replay tails past the byte budget, they are refused; refusals in a row close it', () => {
  assert.deepEqual(admitRequest({ inFlight: 3, retainedBytes: 999, refusedInARow: 0 }, limits), { verdict: 'accept' });
  const full = admitRequest({ inFlight: 4, retainedBytes: 0, refusedInARow: 0 }, limits);
  assert.equal(full.verdict, 'refuse');
  assert.match((full as { reason: string }).reason, /ws_max_in_flight is 4/);
  const tails = admitRequest({ inFlight: 1, retainedBytes: 1000, refusedInARow: 2 }, limits);
  assert.equal(tails.verdict, 'refuse');
  assert.match((tails as { reason: string }).reason, /replay tail \(server.ws_max_buffered_bytes is 1000\)/);
  assert.equal(admitRequest({ inFlight: 1, retainedBytes: 1000, refusedInARow: 3 }, limits).verdict, 'close');
  // An accepted request ends a run of refusals: the caller resets the count.
  assert.equal(admitRequest({ inFlight: 0, retainedBytes: 0, refusedInARow: 3 }, limits).verdict, 'accept');
});

test('a unary request starts only while unread bytes plus the expected answers of the running ones fit the budget', () => {
  const budget = 1000;
  // Nothing known yet: the first unary request runs alone; a stream is not held for it.
  assert.equal(mayStart({ unreadBytes: 0, runningUnary: 0, expectedReplyBytes: undefined }, true, budget), true);
  assert.equal(mayStart({ unreadBytes: 0, runningUnary: 1, expectedReplyBytes: undefined }, true, budget), false);
  assert.equal(mayStart({ unreadBytes: 0, runningUnary: 1, expectedReplyBytes: undefined }, false, budget), true);
  // Answers of 300 bytes: three fit, a fourth would not.
  assert.equal(mayStart({ unreadBytes: 0, runningUnary: 2, expectedReplyBytes: 300 }, true, budget), true);
  assert.equal(mayStart({ unreadBytes: 0, runningUnary: 3, expectedReplyBytes: 300 }, true, budget), false);
  assert.equal(mayStart({ unreadBytes: 400, runningUnary: 1, expectedReplyBytes: 300 }, true, budget), true);
  assert.equal(mayStart({ unreadBytes: 401, runningUnary: 1, expectedReplyBytes: 300 }, true, budget), false);
  // An answer larger than the whole budget is still served, one at a time, while the client reads.
  assert.equal(mayStart({ unreadBytes: 999, runningUnary: 0, expectedReplyBytes: 5000 }, true, budget), true);
  assert.equal(mayStart({ unreadBytes: 0, runningUnary: 1, expectedReplyBytes: 5000 }, true, budget), false);
  // Unread bytes at the budget hold everything, streams too.
  assert.equal(mayStart({ unreadBytes: 1000, runningUnary: 0, expectedReplyBytes: 10 }, true, budget), false);
  assert.equal(mayStart({ unreadBytes: 1000, runningUnary: 0, expectedReplyBytes: 10 }, false, budget), false);
});

test('the expected answer is the largest of the last few', () => {
  const sizes = new ReplySizes();
  assert.equal(sizes.expected(), undefined);
  sizes.note(10);
  sizes.note(5000);
  sizes.note(20);
  assert.equal(sizes.expected(), 5000);
  for (let i = 0; i < REPLY_SIZE_WINDOW - 2; i++) sizes.note(30);
  assert.equal(sizes.expected(), 5000, 'still among the last REPLY_SIZE_WINDOW');
  sizes.note(30);
  assert.equal(sizes.expected(), 30, 'the large one has left the window');
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
