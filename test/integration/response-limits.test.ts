/**
 * max_response_bytes, and large answers written in slices: what a client receives is whole and
 * exact, and an answer over the limit is a coded 500, never a partial body.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { fixture, postJson, startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';

const pattern = (size: number) => new Uint8Array(size).map((_, i) => i % 251);

describe('response size limits', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startGateway({
      server: { max_response_bytes: 64 * 1024 * 1024 },
      endpoints: {
        small: { predictor: fixture('behaviours'), output_dir: tempDir(), max_response_bytes: 1000, produces: ['application/x-test'] },
        big: { predictor: fixture('behaviours'), output_dir: tempDir() },
      },
    });
  });
  after(() => gw.close());

  test('an answer over max_response_bytes is 500 SY_RESPONSE_TOO_LARGE; one under it is served', async () => {
    const over = await postJson(`${gw.url}/inference/small`, { action: 'bytes', size: 2000 });
    assert.equal(over.status, 500);
    assert.equal(over.json.error.code, 'SY_RESPONSE_TOO_LARGE');
    assert.match(over.json.error.message, /max_response_bytes \(1000\)/);
    const under = await fetch(`${gw.url}/inference/small`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'bytes', size: 900 }) });
    assert.equal(under.status, 200);
    assert.equal((await under.arrayBuffer()).byteLength, 900);
    // The server-wide default applies where the endpoint sets none.
    const serverWide = await postJson(`${gw.url}/inference/big`, { action: 'bytes', size: 64 * 1024 * 1024 + 1 });
    assert.equal(serverWide.json.error.code, 'SY_RESPONSE_TOO_LARGE');
  });

  test('over a WebSocket, a result or a file over the limit is an error message and the socket goes on', async () => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/inference/small`);
    const replies: Array<Record<string, any>> = [];
    ws.on('message', (d: Buffer) => replies.push(JSON.parse(d.toString('utf8')) as Record<string, any>));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify({ id: 'r', input: { action: 'bytes', size: 2000 } }));
    ws.send(JSON.stringify({ id: 'f', accept: 'application/x-test', input: { action: 'file', size: 2000 } }));
    ws.send(JSON.stringify({ id: 'ok', input: { value: 1 } }));
    await new Promise<void>((resolve) => ws.on('message', () => replies.length === 3 && resolve()));
    const byId = new Map(replies.map((r) => [r.id, r]));
    assert.equal(byId.get('r')!.error.code, 'SY_RESPONSE_TOO_LARGE');
    assert.equal(byId.get('f')!.error.code, 'SY_RESPONSE_TOO_LARGE');
    assert.deepEqual(byId.get('ok')!.result.echo, 1);
    ws.close();
  });

  test('a 40 MB answer reaches a late reader whole and exact (written in slices)', async () => {
    const size = 40 * 1024 * 1024;
    const res = await fetch(`${gw.url}/inference/big`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'bytes', size }) });
    assert.equal(res.status, 200);
    assert.equal(Number(res.headers.get('content-length')), size);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(bytes.byteLength, size);
    assert.ok(Buffer.from(bytes).equals(Buffer.from(pattern(size))));
    // The gateway still answers after it.
    assert.equal((await postJson(`${gw.url}/inference/big`, { value: 2 })).status, 200);
  });
});

describe('request bodies', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({ endpoints: { b: { predictor: fixture('behaviours'), output_dir: tempDir(), max_body_bytes: 32 * 1024 * 1024 } } });
  });
  after(() => gw.close());

  test('a body that arrives in many chunks, with and without Content-Length, reaches the predictor exact', async () => {
    const value = Array.from({ length: 6 * 1024 * 1024 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    const sized = await postJson(`${gw.url}/inference/b`, { value });
    assert.equal(sized.status, 200);
    assert.equal(sized.json.echo, value);
    // Chunked transfer: no Content-Length, so the chunks are joined at the end.
    const body = new TextEncoder().encode(JSON.stringify({ value }));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < body.byteLength; at += 1024 * 1024) controller.enqueue(body.subarray(at, at + 1024 * 1024));
        controller.close();
      },
    });
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { echo: string }).echo, value);
  });
});
