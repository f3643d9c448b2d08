/**
 * A WebSocket client that stops reading while it asks for large unary answers costs the gateway at
 * most `ws_max_buffered_bytes` plus one answer: its requests past that wait in the gateway (held)
 * instead of running and piling their answers up, and run once it reads again. A client that reads
 * is never refused for the size of its answers. Observed as a user would: the replies, and the
 * gauges in GET /metrics. The paused reader is a real socket whose receiving side is paused.
 */
import assert from 'node:assert/strict';
import type net from 'node:net';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { fixture, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';

const BUDGET = 1024 * 1024;
const ANSWER = 512 * 1024;
/** The JSON frame of one ANSWER-byte answer: its base64 and the fields around it (a two-digit id at most). */
const FRAME = 4 * Math.ceil(ANSWER / 3) + `{"id":99,"result":"","encoding":"base64","content_type":"application/octet-stream"}`.length;
/** Far more than the budget and than loopback's socket buffers take off the gateway's hands. */
const REQUESTS = 64;

interface Reply {
  id: number;
  result?: string;
  encoding?: string;
  error?: { code: string; message: string };
}

async function openSocket(url: string): Promise<{ ws: WebSocket; replies: Reply[]; pause(): void; resume(): void }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const replies: Reply[] = [];
  ws.on('message', (data: Buffer) => replies.push(JSON.parse(data.toString('utf8')) as Reply));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const socket = (ws as unknown as { _socket: net.Socket })._socket;
  return { ws, replies, pause: () => socket.pause(), resume: () => socket.resume() };
}

/** The value of one unlabelled gauge, or the sum of a counter's series that match `labels`; undefined when absent. */
async function metric(url: string, name: string, labels = ''): Promise<number | undefined> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total: number | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{') || !line.includes(labels)) continue;
    total = (total ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

const served = async (url: string) => (await metric(url, 'switchyard_requests_total', 'endpoint="b"')) ?? 0;

/** Waits until the endpoint answers no more requests and none of the socket's is running (loopback buffers have taken what they take). */
async function whenSettled(url: string): Promise<void> {
  let last = -1;
  await waitFor(
    async () => {
      await new Promise((r) => setTimeout(r, 500));
      const now = await served(url);
      const settled = now === last && ((await metric(url, 'switchyard_ws_expected_reply_bytes')) ?? 0) === 0;
      last = now;
      return settled;
    },
    60_000,
    'the paused socket to stop taking answers',
  );
}

function assertAnswer(reply: Reply): void {
  assert.equal(reply.error, undefined, JSON.stringify(reply.error));
  assert.equal(reply.encoding, 'base64');
  const bytes = Buffer.from(reply.result!, 'base64');
  assert.equal(bytes.byteLength, ANSWER);
  assert.equal(bytes[260], 260 % 251);
}

describe('a WebSocket whose client stops reading large answers', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway({
      // No stall cut here: what bounds the paused reader is the byte budget.
      server: { ws_max_buffered_bytes: BUDGET, stall_timeout_ms: 120_000 },
      endpoints: { b: { predictor: fixture('behaviours'), output_dir: tempDir(), max_concurrency: 8 } },
    });
  });
  after(() => gw.close());

  test('holds its requests once unread and expected answers reach the budget; all are answered when it reads again', async () => {
    const wsUrl = `${gw.url.replace('http', 'ws')}/inference/b`;
    const servedBefore = await served(gw.url);
    const client = await openSocket(wsUrl);
    client.pause();
    for (let id = 0; id < REQUESTS; id++) client.ws.send(JSON.stringify({ id, input: { action: 'bytes', size: ANSWER } }));
    await whenSettled(gw.url);

    const unread = await metric(gw.url, 'switchyard_ws_unread_reply_bytes');
    const held = await metric(gw.url, 'switchyard_ws_held_requests');
    const ran = (await served(gw.url)) - servedBefore;
    assert.ok(ran < REQUESTS, `${ran} of ${REQUESTS} requests ran while their client read nothing`);
    assert.ok(unread !== undefined && unread <= BUDGET + FRAME, `the gateway holds ${unread} unread bytes for the socket; budget ${BUDGET} + one answer ${FRAME}`);
    assert.equal(held, REQUESTS - ran, 'the others wait in the gateway');

    client.resume();
    await waitFor(() => client.replies.length >= REQUESTS, 60_000, `${REQUESTS} replies`);
    assert.deepEqual(
      client.replies.map((r) => r.id).sort((a, b) => a - b),
      Array.from({ length: REQUESTS }, (_, i) => i),
    );
    for (const reply of client.replies) assertAnswer(reply);
    await waitFor(async () => (await metric(gw.url, 'switchyard_ws_held_requests')) === 0 && (await metric(gw.url, 'switchyard_ws_unread_reply_bytes')) === 0, 10_000, 'nothing held');
    client.ws.close();
  });

  test('a held request past its timeout is answered SY_DEADLINE_EXCEEDED, a cancelled one SY_CANCELLED; neither reaches a replica', async () => {
    const client = await openSocket(`${gw.url.replace('http', 'ws')}/inference/b`);
    client.pause();
    for (let id = 0; id < REQUESTS; id++) client.ws.send(JSON.stringify({ id, timeout_ms: 3000, input: { action: 'bytes', size: ANSWER } }));
    client.ws.send(JSON.stringify({ id: REQUESTS - 1, cancel: true }));
    await whenSettled(gw.url);
    await waitFor(async () => (await metric(gw.url, 'switchyard_ws_held_requests')) === 0, 30_000, 'the held requests to time out');
    client.resume();
    await waitFor(() => client.replies.length >= REQUESTS, 60_000, `${REQUESTS} replies`);
    assert.equal(new Set(client.replies.map((r) => r.id)).size, REQUESTS, 'one reply per request');
    assert.equal(client.replies.find((r) => r.id === REQUESTS - 1)?.error?.code, 'SY_CANCELLED');
    const expired = client.replies.filter((r) => r.error?.code === 'SY_DEADLINE_EXCEEDED');
    assert.ok(expired.length > 0, 'some requests were held until their deadline');
    assert.match(expired[0]!.error!.message, /ws_max_buffered_bytes is 1048576\) and never reached a replica/);
    for (const reply of client.replies) if (reply.error === undefined) assertAnswer(reply);
    client.ws.close();
  });

  test('a client that reads is never refused for the size of its answers', async () => {
    const client = await openSocket(`${gw.url.replace('http', 'ws')}/inference/b`);
    // Each answer (1 MiB, 1.4 MB as base64) is larger than the whole budget: they run one at a time, all served.
    const count = 24;
    for (let id = 0; id < count; id++) client.ws.send(JSON.stringify({ id, input: { action: 'bytes', size: 1024 * 1024 } }));
    await waitFor(() => client.replies.length >= count, 60_000, `${count} replies`);
    assert.deepEqual(
      client.replies.filter((r) => r.error !== undefined).map((r) => r.error!.code),
      [],
    );
    assert.equal(client.replies.filter((r) => Buffer.from(r.result!, 'base64').byteLength === 1024 * 1024).length, count);
    client.ws.close();
  });
});
