import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeadlineHeap } from '../../gateway/routing/deadline-heap.js';
import { pickReplica, type RoutableReplica } from '../../gateway/routing/pick-replica.js';

const replica = (over: Partial<RoutableReplica> & { name: string }): RoutableReplica & { name: string } => ({
  routable: true,
  inFlight: 0,
  capacity: 10,
  latencyMs: 1,
  region: 'eu',
  ...over,
});

function seq(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

test('never picks a full, starting or draining replica', () => {
  const rs = [replica({ name: 'full', inFlight: 10 }), replica({ name: 'draining', routable: false }), replica({ name: 'ok', inFlight: 9 })];
  for (let i = 0; i < 20; i++) assert.equal(pickReplica(rs)?.name, 'ok');
  assert.equal(pickReplica([replica({ name: 'full', inFlight: 10 })]), undefined);
});

test('of two choices, the lower expected wait wins: load weighted by latency', () => {
  const fast = replica({ name: 'gpu', inFlight: 4, latencyMs: 1 });
  const slow = replica({ name: 'laptop', inFlight: 0, latencyMs: 20 });
  // (4+1)*1 = 5 < (0+1)*20 = 20
  assert.equal(pickReplica([fast, slow], [], seq([0, 0]))?.name, 'gpu');
  const busyFast = replica({ name: 'gpu', inFlight: 30, capacity: 64, latencyMs: 1 });
  assert.equal(pickReplica([busyFast, slow], [], seq([0, 0]))?.name, 'laptop');
});

test('traffic splits in proportion to speed under P2C', () => {
  const rs = [replica({ name: 'fast', latencyMs: 1 }), replica({ name: 'slow', latencyMs: 5 })];
  const counts: Record<string, number> = { fast: 0, slow: 0 };
  // Simulate steady state: in-flight proportional to picks, released in latency order.
  for (let i = 0; i < 1000; i++) {
    const r = pickReplica(rs)!;
    counts[(r as typeof rs[0] & { name: string }).name as string]!++;
  }
  assert.ok(counts.fast! >= counts.slow!, JSON.stringify(counts));
});

test('the preferred region wins while it has room, then requests spill', () => {
  const rs = [replica({ name: 'us1', region: 'us' }), replica({ name: 'eu1', region: 'eu', inFlight: 3 }), replica({ name: 'eu2', region: 'eu', inFlight: 5 })];
  for (let i = 0; i < 20; i++) assert.match(pickReplica(rs, ['eu'])!.name, /^eu/);
  const euFull = [replica({ name: 'us1', region: 'us' }), replica({ name: 'eu1', region: 'eu', inFlight: 10 })];
  assert.equal(pickReplica(euFull, ['eu'])?.name, 'us1');
  assert.equal(pickReplica(euFull, ['ap', 'us'])?.name, 'us1');
});

test('the deadline heap pops in deadline order and skips settled entries', () => {
  const heap = new DeadlineHeap<{ deadline: number; settled: boolean; id: number }>();
  const items = [50, 10, 40, 20, 30, 60].map((deadline, id) => ({ deadline, settled: false, id }));
  for (const item of items) heap.push(item);
  items[3]!.settled = true; // deadline 20 finished early
  assert.deepEqual(heap.popExpired(35).map((i) => i.deadline), [10, 30]);
  assert.deepEqual(heap.popExpired(100).map((i) => i.deadline), [40, 50, 60]);
  assert.equal(heap.size, 0);
});
