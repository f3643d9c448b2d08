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

interface SimReplica extends RoutableReplica {
  name: string;
  inFlight: number;
  latencyMs: number;
  /** How long it takes to answer, however many requests it holds (side by side, as a batching GPU does). */
  serviceMs: number;
  served: number;
}

/**
 * A closed loop on a simulated clock: `clients` each send their next request as soon as the last
 * is answered, until `total` are answered. Replicas learn their latency from what they serve, as
 * gateway/endpoints/replica.ts does (EWMA, alpha 0.1, starting at 1 ms).
 */
function simulate(clients: number, total: number): { replicas: SimReplica[]; meanLatencyMs: number } {
  const replicas: SimReplica[] = [
    { name: 'fast', serviceMs: 2, routable: true, inFlight: 0, capacity: 8, latencyMs: 1, region: 'eu', served: 0 },
    { name: 'slow', serviceMs: 10, routable: true, inFlight: 0, capacity: 8, latencyMs: 1, region: 'eu', served: 0 },
  ];
  let now = 0;
  let sent = 0;
  let answered = 0;
  let latencySum = 0;
  const inFlight: Array<{ at: number; sentAt: number; replica: SimReplica }> = [];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const send = () => {
    const replica = pickReplica(replicas, [], random);
    assert.ok(replica, 'every replica was full');
    replica.inFlight++;
    sent++;
    inFlight.push({ at: now + replica.serviceMs, sentAt: now, replica });
  };
  for (let i = 0; i < clients; i++) send();
  while (answered < total) {
    inFlight.sort((a, b) => a.at - b.at);
    const done = inFlight.shift()!;
    now = done.at;
    done.replica.inFlight--;
    done.replica.served++;
    done.replica.latencyMs += 0.1 * (now - done.sentAt - done.replica.latencyMs);
    answered++;
    latencySum += now - done.sentAt;
    if (sent < total) send();
  }
  return { replicas, meanLatencyMs: latencySum / answered };
}

test('under concurrent load, requests stay on the faster replica until waiting there costs more than the slower one', () => {
  const { replicas, meanLatencyMs } = simulate(8, 4000);
  const [fast, slow] = replicas;
  // Counting outstanding requests alone would split 5:1 (each replica's share of a closed loop is
  // its speed), the slow replica would take a sixth of the requests and clients would wait 3.3 ms
  // on average. Weighted by latency, the slow replica only takes what the fast one cannot answer
  // sooner.
  assert.ok(slow!.served > 0, 'the slow replica takes overflow once the fast one is loaded');
  assert.ok(slow!.served < 0.1 * 4000, `slow served ${slow!.served}, fast ${fast!.served}`);
  assert.ok(meanLatencyMs < 2.5, `clients waited ${meanLatencyMs.toFixed(2)} ms on average (simulated)`);
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
