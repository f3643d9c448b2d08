import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StreamWatch, streamExpired, streamTimeoutsFor, type StreamTimeouts } from '../../gateway/endpoints/stream-deadlines.js';

const config = (stream_timeouts: Record<string, number> = {}) => ({ timeout_ms: 30_000, stream_timeouts });

test('the first-chunk limit defaults to timeout_ms; idle and total default to none', () => {
  assert.deepEqual(streamTimeoutsFor(config()), { firstChunkMs: 30_000, idleMs: undefined, totalMs: undefined });
  assert.deepEqual(streamTimeoutsFor(config({ first_chunk_ms: 500, idle_ms: 200, total_ms: 9000 })), { firstChunkMs: 500, idleMs: 200, totalMs: 9000 });
});

test('a request only shortens the endpoint limits, and may set those the endpoint leaves open', () => {
  const limits = streamTimeoutsFor(config({ idle_ms: 200 }), { firstChunkMs: 60_000, idleMs: 50, totalMs: 300 });
  assert.deepEqual(limits, { firstChunkMs: 30_000, idleMs: 50, totalMs: 300 });
  assert.equal(streamTimeoutsFor(config({ idle_ms: 200 }), { idleMs: 900 }).idleMs, 200);
});

test('before the first chunk only the first-chunk and total limits apply', () => {
  const limits: StreamTimeouts = { firstChunkMs: 100, idleMs: 10, totalMs: 1000 };
  const clock = { startedAt: 0, lastProgressAt: undefined, unacked: 0 };
  assert.equal(streamExpired(limits, clock, 99), undefined);
  assert.equal(streamExpired(limits, clock, 100), 'SY_STREAM_FIRST_CHUNK_TIMEOUT');
  assert.equal(streamExpired({ totalMs: 50, firstChunkMs: 100 }, clock, 60), 'SY_STREAM_TOTAL_TIMEOUT');
});

test('the idle clock runs from the last progress, and only while the client has taken every chunk', () => {
  const limits: StreamTimeouts = { idleMs: 100 };
  assert.equal(streamExpired(limits, { startedAt: 0, lastProgressAt: 500, unacked: 0 }, 599), undefined);
  assert.equal(streamExpired(limits, { startedAt: 0, lastProgressAt: 500, unacked: 0 }, 600), 'SY_STREAM_IDLE_TIMEOUT');
  // A slow reader holds chunks: the gap is the client's, not the predictor's.
  assert.equal(streamExpired(limits, { startedAt: 0, lastProgressAt: 500, unacked: 3 }, 5000), undefined);
  // The first chunk is out: its limit no longer applies.
  assert.equal(streamExpired({ firstChunkMs: 100 }, { startedAt: 0, lastProgressAt: 50, unacked: 0 }, 5000), undefined);
});

test('StreamWatch reports each expired stream once, with its limit, and forgets ended ones', () => {
  const watch = new StreamWatch<{ streamTimeouts: StreamTimeouts | undefined; startedAt: number; unacked: number }>();
  const a = { streamTimeouts: { idleMs: 100 } as StreamTimeouts | undefined, startedAt: 0, unacked: 0 };
  const b = { streamTimeouts: undefined as StreamTimeouts | undefined, startedAt: 0, unacked: 0 };
  const c = { streamTimeouts: {} as StreamTimeouts | undefined, startedAt: 0, unacked: 0 };
  watch.started(a, () => ({}));
  watch.started(b, () => ({ totalMs: 1000 }));
  watch.started(c, () => ({ totalMs: 1 }));
  assert.equal(watch.size, 2, 'a stream without limits is not watched');
  assert.deepEqual(b.streamTimeouts, { totalMs: 1000 });
  watch.progress(a, 10);
  assert.deepEqual(watch.expired(50), []);
  assert.deepEqual(watch.expired(110), [{ call: a, code: 'SY_STREAM_IDLE_TIMEOUT', limitMs: 100 }]);
  assert.deepEqual(watch.expired(200), []);
  watch.ended(b);
  assert.equal(watch.size, 0);
});
