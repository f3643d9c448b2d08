/**
 * The same long stream over WebSocket: `{"id","input","stream":true}` in, 100 `{"id","chunk"}`
 * messages and a `{"id","done":true}` out, two streams in flight per socket. The gateway's chunks
 * cross from the worker thread under credit and leave through the socket's reply queue; raw uWS
 * sends the same messages from a generator on its own event loop. Ratios of completed streams
 * per second are ratios of chunks per second.
 */
import { switchyardExchange } from '../lib/ws-load.js';
import type { Scenario, WsPlan } from './index.js';
import { STREAM_CHUNKS, STREAM_INPUT } from './stream-http.js';

const plan: WsPlan = {
  kind: 'ws',
  path: '/inference/stream',
  exchange: switchyardExchange(STREAM_INPUT, true),
  inFlightPerSocket: 2,
};

export const streamWsScenario: Scenario = {
  name: 'stream-ws',
  description: `WebSocket /inference/stream, 2 streams in flight per socket, ${STREAM_CHUNKS} chunks each (chunks/s = streams/s × ${STREAM_CHUNKS})`,
  baseline: 'raw-uws-stream',
  targets: [
    { name: 'gateway', server: 'gateway', load: plan },
    { name: 'raw-uws-stream', server: 'raw-uws-stream', load: plan },
  ],
};
