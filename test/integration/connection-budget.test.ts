/**
 * Clients that stop reading, on real sockets: they lose their own requests, never other clients'.
 * A paused reader is a real socket whose receiving side is paused (`socket.pause()`), so the
 * kernel buffers and then uWS's fill up exactly as with a client that stops reading.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { fixture, postJson, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';
import { DEFAULT_STREAM_CREDIT, STREAM_CREDIT_BYTES } from '../../workers/protocol/credit.js';

/** A WebSocket whose client reads nothing once `pause()` was called. */
async function openSocket(url: string): Promise<{ ws: WebSocket; replies: Array<Record<string, any>>; closed: Promise<number>; pause(): void; resume(): void }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const replies: Array<Record<string, any>> = [];
  ws.on('message', (data: Buffer) => replies.push(JSON.parse(data.toString('utf8')) as Record<string, any>));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const socket = (ws as unknown as { _socket: net.Socket })._socket;
  return { ws, replies, closed, pause: () => socket.pause(), resume: () => socket.resume() };
}

/** Each stream's progress mark (chunks its generator produced), once none of them moves any more. */
async function whenStreamsStopMoving(dir: string, marks: string[]): Promise<number[]> {
  const read = () => marks.map((m) => (existsSync(path.join(dir, `${m}.progress`)) ? Number(readFileSync(path.join(dir, `${m}.progress`), 'utf8')) : 0));
  let last = read();
  await waitFor(
    async () => {
      await new Promise((r) => setTimeout(r, 400));
      const now = read();
      const still = now.every((n, i) => n > 0 && n === last[i]);
      last = now;
      return still;
    },
    30_000,
    'the paused streams to stop producing',
  );
  return last;
}

describe('paused readers do not take an endpoint down', () => {
  let gw: TestGateway;
  const dir = tempDir();

  before(async () => {
    gw = await startGateway({
      // A long stall timeout: what keeps other clients served here is that paused streams hold no slot.
      server: { stall_timeout_ms: 120_000 },
      endpoints: { b: { predictor: fixture('behaviours'), output_dir: dir, max_concurrency: 32, replicas: 1 } },
    });
  });
  after(() => gw.close());

  test('32 paused streams on max_concurrency 32: a well-behaved client is still served', async () => {
    const wsUrl = `${gw.url.replace('http', 'ws')}/inference/b`;
    const readers = await Promise.all([0, 1, 2, 3].map(() => openSocket(wsUrl)));
    const marks: string[] = [];
    for (let i = 0; i < 32; i++) {
      const mark = `paused-${i}`;
      marks.push(mark);
      const reader = readers[i % readers.length]!;
      reader.ws.send(JSON.stringify({ id: i, stream: true, input: { chunks: 1_000_000, size: 64 * 1024, progress: true, mark } }));
    }
    for (const reader of readers) reader.pause();
    const produced = await whenStreamsStopMoving(dir, marks);
    assert.ok(produced.every((n) => n < 1_000_000), 'the paused streams are held back, not run to the end');
    // And the gateway has every chunk they were allowed to send (a whole credit each, in chunks or bytes).
    const replica = gw.gateway.endpoints.get('b')!.replicas[0]!;
    const credit = Math.min(DEFAULT_STREAM_CREDIT, STREAM_CREDIT_BYTES / (64 * 1024));
    await waitFor(() => [...replica.calls.values()].filter((c) => c.state === 'streaming' && c.seq >= credit).length === 32, 30_000, 'the chunks to reach the gateway');

    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) => postJson(`${gw.url}/inference/b`, { value: i }, { 'x-request-timeout-ms': '5000' })),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      answers.map(() => 200),
      `other clients' requests: ${answers.map((a) => a.json?.error?.code ?? a.status).join(', ')}`,
    );
    for (const reader of readers) reader.ws.terminate();
    await waitFor(() => marks.every((m) => existsSync(path.join(dir, `${m}.aborted`))), 10_000, 'the streams of closed sockets to be cancelled');
  });
});

describe('per-socket budgets and stall timeouts', () => {
  let gw: TestGateway;
  const dir = tempDir();

  before(async () => {
    gw = await startGateway({
      server: { stall_timeout_ms: 1000, ws_max_in_flight: 4 },
      endpoints: { b: { predictor: fixture('behaviours'), output_dir: dir, max_concurrency: 8 } },
    });
  });
  after(() => gw.close());

  test('requests past ws_max_in_flight are refused with SY_CONNECTION_BUSY, the others go on; refusals in a row close the socket with 1008', async () => {
    const client = await openSocket(`${gw.url.replace('http', 'ws')}/inference/b`);
    for (let i = 0; i < 6; i++) client.ws.send(JSON.stringify({ id: i, input: { action: 'sleep', ms: 500 } }));
    await waitFor(() => client.replies.length >= 6, 10_000, 'six replies');
    const busy = client.replies.filter((r) => r.error?.code === 'SY_CONNECTION_BUSY');
    assert.deepEqual(busy.map((r) => r.id).sort(), [4, 5]);
    assert.equal(busy[0]!.error.retry_after_s, 1);
    assert.deepEqual(client.replies.filter((r) => r.result).map((r) => r.id).sort(), [0, 1, 2, 3]);

    // Keep sending into a full socket: after ws_max_in_flight refusals in a row it is closed.
    for (let i = 10; i < 20; i++) client.ws.send(JSON.stringify({ id: i, input: { action: 'hang' } }));
    assert.equal(await client.closed, 1008);
  });

  test('a WebSocket whose client reads nothing for stall_timeout_ms is closed with 1008 and its streams cancelled', async () => {
    const client = await openSocket(`${gw.url.replace('http', 'ws')}/inference/b`);
    client.pause();
    client.ws.send(JSON.stringify({ id: 's', stream: true, input: { chunks: 1_000_000, size: 64 * 1024, mark: 'ws-stalled' } }));
    await waitFor(() => existsSync(path.join(dir, 'ws-stalled.aborted')), 20_000, 'the stalled stream to be cancelled');
    client.resume();
    assert.equal(await client.closed, 1008);
  });

  test('an HTTP stream whose client reads nothing for stall_timeout_ms is cancelled and its connection closed', async () => {
    const { port } = new URL(gw.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const body = JSON.stringify({ stream: true, chunks: 1_000_000, size: 64 * 1024, mark: 'http-stalled' });
    socket.write(`POST /inference/b HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    socket.pause();
    await waitFor(() => existsSync(path.join(dir, 'http-stalled.aborted')), 20_000, 'the stalled stream to be cancelled');
    const ended = new Promise((resolve) => socket.once('close', resolve));
    socket.resume();
    await ended;
    // The slot is free: the endpoint still answers.
    assert.equal((await postJson(`${gw.url}/inference/b`, { value: 1 })).status, 200);
  });
});
