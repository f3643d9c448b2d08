import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpointSchema } from '../../gateway/config/schema.js';
import type { SwitchyardError } from '../../workers/protocol/errors.js';
import { Call, type CallSink } from '../../gateway/endpoints/call.js';
import { Endpoint } from '../../gateway/endpoints/endpoint.js';
import type { ControlMessage, RequestEnvelope } from '../../workers/protocol/envelopes.js';
import type { ReplicaLink, ReplicaLinkEvents } from '../../workers/protocol/link.js';

/** A replica that does nothing by itself: the test plays its frames and reads its control messages. */
class ScriptedLink implements ReplicaLink {
  readonly replicaId = 'r/cpu/1';
  readonly endpoint = 'r';
  readonly device = 'cpu';
  readonly node = 'local';
  readonly region = 'local';
  readonly controls: ControlMessage[] = [];
  readonly sent: RequestEnvelope[] = [];
  events!: ReplicaLinkEvents;

  async start(events: ReplicaLinkEvents): Promise<void> {
    this.events = events;
  }
  send(reqs: RequestEnvelope[]): void {
    this.sent.push(...reqs);
  }
  control(msg: ControlMessage): void {
    this.controls.push(msg);
  }
  async stop(): Promise<void> {}
}

test('a stream returns exactly one credit per chunk the client took, in batches', async () => {
  const link = new ScriptedLink();
  const endpoint = new Endpoint('r', endpointSchema.parse({ predictor: 'unused.js' }), { create: () => [link] }, { onFinished() {}, onLog() {} });
  endpoint.reconcile();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(endpoint.readyCount, 1);

  let call: Call;
  const sink: CallSink = {
    onResult() {},
    onFile() {},
    onStreamStart() {},
    onChunk: () => endpoint.ack(call),
    onStreamEnd() {},
    onError(err: SwitchyardError) {
      throw err;
    },
  };
  call = new Call({ id: 7, encoding: 'json', deadline: Date.now() + 10_000, stream: true, input: {} }, sink, ['local'], 0);
  endpoint.submit(call);
  link.events.onFrames([{ t: 'start', id: 7 }]);
  for (let i = 0; i < 10; i++) link.events.onFrames([{ t: 'chunk', id: 7, data: new Uint8Array([i]) }]);

  const credits = link.controls.filter((m) => m.t === 'credit');
  assert.deepEqual(
    credits.map((m) => (m.t === 'credit' ? m.n : 0)),
    [4, 4],
    'ten chunks taken: two batches of four returned, two chunks owed',
  );
  link.events.onFrames([{ t: 'end', id: 7 }]);
  await endpoint.close();
});
