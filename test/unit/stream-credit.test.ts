import assert from 'node:assert/strict';
import { test } from 'node:test';
import { endpointSchema } from '../../gateway/config/schema.js';
import type { SwitchyardError } from '../../workers/protocol/errors.js';
import { Call, type CallSink } from '../../gateway/endpoints/call.js';
import { Endpoint } from '../../gateway/endpoints/endpoint.js';
import { ScriptedLink } from '../helpers/scripted-link.js';

test('a stream returns exactly one credit per chunk the client took, in batches', async () => {
  const link = new ScriptedLink('r/cpu/1');
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
