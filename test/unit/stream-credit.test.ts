import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpointSchema } from '../../gateway/config/schema.js';
import type { SwitchyardError } from '../../workers/protocol/errors.js';
import { forEachChunk, runLength, type ChunkRun } from '../../workers/protocol/chunk-run.js';
import { CreditGate, DEFAULT_STREAM_CREDIT, STREAM_CREDIT_BYTES } from '../../workers/protocol/credit.js';
import type { ControlMessage } from '../../workers/protocol/envelopes.js';
import { Call, type CallSink } from '../../gateway/endpoints/call.js';
import { Endpoint } from '../../gateway/endpoints/endpoint.js';
import type { Replica } from '../../gateway/endpoints/replica.js';
import { ScriptedLink } from '../helpers/scripted-link.js';

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

async function endpointWithOneReplica(): Promise<{ endpoint: Endpoint; link: ScriptedLink }> {
  const link = new ScriptedLink('r/cpu/1');
  const endpoint = new Endpoint('r', endpointSchema.parse({ predictor: 'unused.js' }), { create: () => [link] }, { onFinished() {}, onLog() {} });
  endpoint.reconcile();
  await nextTurn();
  assert.equal(endpoint.readyCount, 1);
  return { endpoint, link };
}

/** A sink that keeps every chunk with its seq and lets the test decide when the client takes them. */
class HoldingSink implements CallSink {
  call!: Call;
  readonly chunks: Array<[seq: number, text: string]> = [];
  untaken = 0;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly takeAtOnce: boolean,
  ) {}

  onResult(): void {}
  onFile(): void {}
  onStreamStart(): void {}
  onChunks(run: ChunkRun): void {
    forEachChunk(run, (data, seq) => this.chunks.push([seq, Buffer.from(data).toString()]));
    if (this.takeAtOnce) this.endpoint.ack(this.call, runLength(run));
    else this.untaken += runLength(run);
  }
  /** The client takes `n` of the chunks it was handed. */
  take(n: number): void {
    this.untaken -= n;
    this.endpoint.ack(this.call, n);
  }
  onStreamEnd(): void {}
  onError(err: SwitchyardError): void {
    throw err;
  }
}

function streamCall(endpoint: Endpoint, id: number, sink: HoldingSink): Call {
  const call = new Call({ id, encoding: 'json', deadline: Date.now() + 10_000, stream: true, input: {} }, sink, ['local'], 0);
  sink.call = call;
  endpoint.submit(call);
  return call;
}

/** A stream whose client takes nothing until told to, running on the endpoint's one replica. */
async function heldStream(id: number): Promise<{ endpoint: Endpoint; link: ScriptedLink; sink: HoldingSink; call: Call; replica: Replica }> {
  const { endpoint, link } = await endpointWithOneReplica();
  const sink = new HoldingSink(endpoint, false);
  const call = streamCall(endpoint, id, sink);
  await nextTurn();
  return { endpoint, link, sink, call, replica: call.replica! };
}

/** A run frame of `texts`, as a replica's outbox makes it. */
function run(id: number, texts: string[]) {
  const parts = texts.map((t) => Buffer.from(t));
  return texts.length === 1 ? { t: 'chunk' as const, id, data: parts[0]! } : { t: 'chunk' as const, id, data: Buffer.concat(parts), sizes: parts.map((p) => p.length) };
}

/** Credit granted per request id, over every control message sent. */
function granted(controls: readonly ControlMessage[]): Map<number, number> {
  const total = new Map<number, number>();
  const add = (id: number, n: number) => total.set(id, (total.get(id) ?? 0) + n);
  for (const m of controls) {
    if (m.t === 'credit') add(m.id, m.n);
    else if (m.t === 'credits') m.ids.forEach((id, i) => add(id, m.ns[i]!));
  }
  return total;
}

test('a run of chunks is numbered one by one, and exactly its chunks come back as credit, once per turn', async () => {
  const { endpoint, link } = await endpointWithOneReplica();
  const sink = new HoldingSink(endpoint, true);
  streamCall(endpoint, 7, sink);
  await nextTurn();
  link.events.onFrames([{ t: 'start', id: 7 }, run(7, ['a', 'bc', 'def']), run(7, ['g'])]);
  link.events.onFrames([run(7, ['h', 'i'])]);
  assert.deepEqual(sink.chunks, [
    [1, 'a'],
    [2, 'bc'],
    [3, 'def'],
    [4, 'g'],
    [5, 'h'],
    [6, 'i'],
  ]);
  assert.deepEqual(link.controls, [], 'credit leaves with the turn, not with each acknowledgement');
  await nextTurn();
  assert.deepEqual(link.controls, [{ t: 'credit', id: 7, n: 6 }], 'one message for the six chunks the client took this turn');
  link.events.onFrames([{ t: 'end', id: 7 }]);
  await endpoint.close();
});

test('the credit of several streams taken in one turn leaves as one message', async () => {
  const { endpoint, link } = await endpointWithOneReplica();
  const a = new HoldingSink(endpoint, true);
  const b = new HoldingSink(endpoint, true);
  streamCall(endpoint, 1, a);
  streamCall(endpoint, 2, b);
  await nextTurn();
  link.events.onFrames([{ t: 'start', id: 1 }, { t: 'start', id: 2 }, run(1, ['x', 'y']), run(2, ['z']), run(1, ['w'])]);
  await nextTurn();
  assert.deepEqual(link.controls, [{ t: 'credits', ids: [1, 2], ns: [3, 1] }]);
  link.events.onFrames([
    { t: 'end', id: 1 },
    { t: 'end', id: 2 },
  ]);
  await endpoint.close();
});

test('a stream that spent its credit is parked until its client takes chunks, and never gets more credit than it spent', async () => {
  const { endpoint, link, sink, call, replica } = await heldStream(9);
  // Two runs spend the default credit.
  link.events.onFrames([{ t: 'start', id: 9 }, run(9, Array.from({ length: DEFAULT_STREAM_CREDIT - 6 }, (_, i) => `c${i}`))]);
  assert.equal(replica.isParked(call), false);
  link.events.onFrames([run(9, Array.from({ length: 6 }, (_, i) => `d${i}`))]);
  assert.equal(replica.isParked(call), true, 'all credit spent: it waits for its client and holds no slot');
  await nextTurn();
  assert.deepEqual(link.controls, [], 'nothing taken, nothing returned');

  sink.take(5);
  await nextTurn();
  assert.equal(replica.isParked(call), false);
  sink.take(DEFAULT_STREAM_CREDIT - 5);
  await nextTurn();
  assert.equal(sink.untaken, 0);
  assert.deepEqual([...granted(link.controls)], [[9, DEFAULT_STREAM_CREDIT]], 'every chunk taken returned its credit, once');
  assert.equal(call.unacked, 0);
  link.events.onFrames([{ t: 'end', id: 9 }]);
  await endpoint.close();
});

test('a checkpoint inside a run is remembered with the seq of its own chunk', async () => {
  const { endpoint, link } = await endpointWithOneReplica();
  const sink = new HoldingSink(endpoint, true);
  const call = streamCall(endpoint, 3, sink);
  await nextTurn();
  link.events.onFrames([{ t: 'start', id: 3, resumable: 'checkpoint' }, { ...run(3, ['a', 'b', 'c', 'd']), cp: { next: 3 }, cpAt: 1 }]);
  assert.deepEqual(call.checkpoint, { seq: 2, value: { next: 3 } });
  link.events.onFrames([{ ...run(3, ['e', 'f']), cp: { next: 7 } }]);
  assert.deepEqual(call.checkpoint, { seq: 6, value: { next: 7 } }, 'without cpAt: the last chunk of the run');
  link.events.onFrames([{ t: 'end', id: 3 }]);
  await endpoint.close();
});

test('a stream of large chunks spends its credit in bytes: parked at STREAM_CREDIT_BYTES, free again once the client took enough', async () => {
  const { endpoint, link, sink, call, replica } = await heldStream(11);
  const quarter = 'x'.repeat(STREAM_CREDIT_BYTES / 4);
  link.events.onFrames([{ t: 'start', id: 11 }, run(11, [quarter, quarter, quarter])]);
  assert.equal(replica.isParked(call), false, 'three quarters of the bytes: the replica may send more');
  link.events.onFrames([run(11, [quarter])]);
  assert.equal(replica.isParked(call), true, 'four chunks, far below the chunk credit, but all the bytes');
  sink.take(1);
  await nextTurn();
  assert.equal(replica.isParked(call), false);
  assert.deepEqual(link.controls, [{ t: 'credit', id: 11, n: 1 }]);
  assert.equal(call.inFlight.bytes, (3 * STREAM_CREDIT_BYTES) / 4);
  link.events.onFrames([{ t: 'end', id: 11 }]);
  await endpoint.close();
});

test('the replica waits at the same point as the gateway parks: chunks or bytes, whichever comes first', async () => {
  const never = { aborted: false };
  const small = new CreditGate(3);
  assert.equal(small.spend(1, never), undefined);
  assert.equal(small.spend(1, never), undefined);
  const waiting = small.spend(1, never);
  assert.ok(waiting, 'three chunks of credit spent');
  let woke = false;
  void waiting.then(() => (woke = true));
  small.grant(1);
  await waiting;
  assert.equal(woke, true);

  const big = new CreditGate(undefined);
  assert.equal(big.spend(STREAM_CREDIT_BYTES / 2, never), undefined);
  const full = big.spend(STREAM_CREDIT_BYTES / 2, never);
  assert.ok(full, 'two chunks, all the bytes');
  big.grant(1);
  await full;
  assert.ok(big.spend(STREAM_CREDIT_BYTES, never), 'one chunk as large as the bound goes, then the stream waits');
});
