/**
 * Replay tails (stream_reconnect) are memory a WebSocket client costs the gateway, so they count in
 * its buffered bytes: a client whose live streams hold more tail than `ws_max_buffered_bytes` has
 * new requests refused with SY_CONNECTION_BUSY, even though it reads everything it is sent.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { fixture, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';

interface Reply {
  id: string;
  chunk?: unknown;
  result?: unknown;
  done?: boolean;
  error?: { code: string };
}

const CHUNK = 8 * 1024;
let gw: TestGateway;

before(async () => {
  gw = await startGateway({
    server: { ws_max_buffered_bytes: 64 * 1024 },
    endpoints: {
      tails: { predictor: fixture('behaviours'), output_dir: tempDir(), stream_reconnect: { grace_ms: 10_000, tail_bytes: 1024 * 1024 } },
      plain: { predictor: fixture('behaviours'), output_dir: tempDir() },
    },
  });
});
after(() => gw.close());

async function socketTo(endpoint: string): Promise<{ ws: WebSocket; replies: Reply[] }> {
  const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/inference/${endpoint}`);
  const replies: Reply[] = [];
  ws.on('message', (data: Buffer) => replies.push(JSON.parse(data.toString('utf8')) as Reply));
  await new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  return { ws, replies };
}

for (const [endpoint, expected] of [
  ['tails', 'SY_CONNECTION_BUSY'],
  ['plain', undefined],
] as const) {
  test(`a client reading every chunk of a long stream: a new request on ${endpoint} is ${expected ?? 'served'}`, async () => {
    const { ws, replies } = await socketTo(endpoint);
    try {
      // 8 KiB chunks every 30 ms; the client reads them all as they come.
      ws.send(JSON.stringify({ id: 's', stream: true, input: { chunks: 200, size: CHUNK, ms: 30 } }));
      await waitFor(() => replies.filter((r) => r.id === 's' && r.chunk !== undefined).length >= 12, 20_000, '12 chunks (96 KiB) read');
      ws.send(JSON.stringify({ id: 'u', input: { value: 1 } }));
      await waitFor(() => replies.some((r) => r.id === 'u'), 20_000, 'an answer to the new request');
      const answer = replies.find((r) => r.id === 'u')!;
      assert.equal(answer.error?.code, expected, JSON.stringify(answer));
    } finally {
      ws.close();
    }
  });
}
