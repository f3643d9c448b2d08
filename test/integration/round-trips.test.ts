import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { pack, unpack } from '../../workers/protocol/envelopes.js';
import { example, fixture, postJson, sourceFixture, startGateway, type TestGateway } from '../helpers/gateway.js';

describe('request and response encodings', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({
      endpoints: {
        echo: { predictor: example('echo/predictor.js') },
        b: { predictor: fixture('behaviours') },
        ts: { predictor: sourceFixture('typescript-predictor'), settings: { prefix: 'hi' } },
      },
    });
  });
  after(() => gw.close());

  test('JSON in, JSON out', async () => {
    const res = await postJson(`${gw.url}/inference/echo`, { text: 'hello', n: [1, 2.5, null], nested: { ok: true } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(res.json, { text: 'hello', n: [1, 2.5, null], nested: { ok: true } });
  });

  test('a body wrapped in "inputs" is unwrapped, as in TensorOpera Deploy', async () => {
    const res = await postJson(`${gw.url}/inference/echo`, { inputs: { text: 'wrapped' } });
    assert.deepEqual(res.json, { text: 'wrapped' });
  });

  test('no Content-Type is read as JSON', async () => {
    const res = await fetch(`${gw.url}/inference/echo`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': '' } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { a: 1 });
  });

  test('msgpack in, msgpack out, bytes stay bytes', async () => {
    const bytes = new Uint8Array([0, 1, 2, 255]);
    const res = await fetch(`${gw.url}/inference/echo`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body: pack({ blob: bytes, n: 7 }) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/msgpack');
    const answer = unpack<{ blob: Uint8Array; n: number }>(new Uint8Array(await res.arrayBuffer()));
    assert.equal(answer.n, 7);
    assert.deepEqual([...answer.blob], [0, 1, 2, 255]);
  });

  test('JSON in, msgpack out when the client accepts msgpack', async () => {
    const res = await fetch(`${gw.url}/inference/echo`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/msgpack' }, body: '{"x":[1,2]}' });
    assert.equal(res.headers.get('content-type'), 'application/msgpack');
    assert.deepEqual(unpack(new Uint8Array(await res.arrayBuffer())), { x: [1, 2] });
  });

  test('msgpack in, JSON out when the client accepts JSON', async () => {
    const res = await fetch(`${gw.url}/inference/echo`, { method: 'POST', headers: { 'content-type': 'application/msgpack', accept: 'application/json' }, body: pack({ y: 'z' }) });
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(await res.json(), { y: 'z' });
  });

  test('a predictor returning bytes answers application/octet-stream', async () => {
    const res = await postJson(`${gw.url}/inference/b`, { action: 'bytes', size: 300 });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    const again = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'bytes', size: 300 }) });
    const body = new Uint8Array(await again.arrayBuffer());
    assert.equal(body.length, 300);
    assert.equal(body[260], 260 % 251);
  });

  test('a predictor returning nothing answers null', async () => {
    const res = await postJson(`${gw.url}/inference/b`, { action: 'undefined' });
    assert.equal(res.status, 200);
    assert.equal(res.text, 'null');
  });

  test('a TypeScript predictor loads from source with its settings', async () => {
    const res = await postJson(`${gw.url}/inference/ts`, { text: 'abc' });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { answer: 'hi:ABC' });
  });

  test('headers reach the predictor, Authorization does not', async () => {
    const res = await postJson(`${gw.url}/inference/b`, { action: 'echo' }, { 'x-trace': 't-1' });
    assert.equal(res.status, 200);
  });

  test('health, readiness and the endpoint listing', async () => {
    assert.deepEqual(await (await fetch(`${gw.url}/healthz`)).json(), { status: 'ok' });
    const ready = await fetch(`${gw.url}/readyz`);
    assert.equal(ready.status, 200);
    const listing = (await (await fetch(`${gw.url}/v1/endpoints`)).json()) as any;
    const echo = listing.endpoints.find((e: any) => e.name === 'echo');
    assert.equal(echo.replicas.length, 1);
    assert.equal(echo.replicas[0].state, 'ready');
    assert.equal(echo.replicas[0].device, 'cpu');
    assert.ok(echo.requests.completed >= 1);
  });
});
