import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixture, postJson, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';

function assertError(res: { status: number; json: any; text: string }, status: number, code: string): void {
  assert.equal(res.status, status, res.text);
  assert.equal(res.json?.error?.code, code, res.text);
  assert.equal(typeof res.json.error.message, 'string');
  assert.doesNotMatch(res.text, /\n\s+at /, 'no stack trace in an error body');
}

describe('HTTP errors', () => {
  let gw: TestGateway;
  const outputDir = tempDir();

  before(async () => {
    gw = await startGateway({
      server: { max_body_bytes: 1024 },
      endpoints: {
        b: { predictor: fixture('behaviours'), output_dir: outputDir, timeout_ms: 5000 },
        locked: { predictor: fixture('behaviours'), api_keys: ['s3cret-key-1', 'other-key-22'] },
        tight: { predictor: fixture('behaviours'), max_concurrency: 1, max_queue: 1 },
        small: { predictor: fixture('behaviours'), max_body_bytes: 64 },
      },
    });
  });
  after(() => gw.close());

  test('malformed JSON is 400 SY_BAD_REQUEST', async () => {
    assertError(await postJson(`${gw.url}/inference/b`, '{"text": '), 400, 'SY_BAD_REQUEST');
  });

  test('malformed msgpack is 400', async () => {
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body: new Uint8Array([0x92, 0x01]) });
    assertError({ status: res.status, text: await res.clone().text(), json: await res.json() }, 400, 'SY_BAD_REQUEST');
  });

  test('unknown endpoint is 404, unknown route is 404', async () => {
    assertError(await postJson(`${gw.url}/inference/nope`, {}), 404, 'SY_NOT_FOUND');
    const res = await fetch(`${gw.url}/nowhere`);
    assert.equal(res.status, 404);
    assert.equal(((await res.json()) as any).error.code, 'SY_NOT_FOUND');
  });

  test('wrong method is 405 with Allow', async () => {
    const res = await fetch(`${gw.url}/inference/b`, { method: 'PUT', body: '{}' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, POST');
    assert.equal(((await res.json()) as any).error.code, 'SY_METHOD_NOT_ALLOWED');
    const res2 = await fetch(`${gw.url}/healthz`, { method: 'DELETE' });
    assert.equal(res2.status, 405);
  });

  test('a body over the server limit is 413, declared or streamed', async () => {
    assertError(await postJson(`${gw.url}/inference/b`, { value: 'x'.repeat(2000) }), 413, 'SY_PAYLOAD_TOO_LARGE');
    // Without Content-Length (chunked upload) the limit is enforced while reading.
    const big = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('{"value":"' + 'y'.repeat(3000) + '"}'));
        c.close();
      },
    });
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big, duplex: 'half' } as RequestInit);
    assert.equal(res.status, 413);
  });

  test('the per-endpoint body limit applies', async () => {
    assertError(await postJson(`${gw.url}/inference/small`, { value: 'z'.repeat(100) }), 413, 'SY_PAYLOAD_TOO_LARGE');
    assert.equal((await postJson(`${gw.url}/inference/small`, { value: 'z' })).status, 200);
  });

  test('an unsupported content type is 415', async () => {
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'text/csv' }, body: 'a,b' });
    assert.equal(res.status, 415);
    assert.equal(((await res.json()) as any).error.code, 'SY_UNSUPPORTED_MEDIA_TYPE');
  });

  test('an Accept the endpoint cannot produce is 406', async () => {
    assertError(await postJson(`${gw.url}/inference/b`, {}, { accept: 'image/png' }), 406, 'SY_NOT_ACCEPTABLE');
  });

  test('API keys: missing or wrong is 401, a right one passes', async () => {
    assertError(await postJson(`${gw.url}/inference/locked`, {}), 401, 'SY_UNAUTHORIZED');
    assertError(await postJson(`${gw.url}/inference/locked`, {}, { authorization: 'Bearer wrong-key-123' }), 401, 'SY_UNAUTHORIZED');
    assertError(await postJson(`${gw.url}/inference/locked`, {}, { authorization: 'Basic abc' }), 401, 'SY_UNAUTHORIZED');
    const ok = await postJson(`${gw.url}/inference/locked`, { value: 1 }, { authorization: 'Bearer other-key-22' });
    assert.equal(ok.status, 200);
    assert.equal(ok.json.echo, 1);
  });

  test('a full queue is 503 SY_QUEUE_FULL with Retry-After', async () => {
    // One in flight, one queued, the third is refused.
    const slow = [postJson(`${gw.url}/inference/tight`, { action: 'sleep', ms: 600 }), postJson(`${gw.url}/inference/tight`, { action: 'sleep', ms: 10 })];
    await waitFor(() => gw.gateway.endpoints.get('tight')!.queued === 1, 5000, 'one queued');
    const refused = await postJson(`${gw.url}/inference/tight`, {});
    assertError(refused, 503, 'SY_QUEUE_FULL');
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    const done = await Promise.all(slow);
    assert.deepEqual(done.map((r) => r.status), [200, 200]);
  });

  test('a deadline is 504 and the work is aborted in the worker', async () => {
    const mark = `deadline-${Date.now()}`;
    const res = await postJson(`${gw.url}/inference/b`, { action: 'hang', mark }, { 'x-request-timeout-ms': '150' });
    assertError(res, 504, 'SY_DEADLINE_EXCEEDED');
    await waitFor(() => existsSync(path.join(outputDir, `${mark}.aborted`)), 5000, 'the predictor to see the abort');
  });

  test('a bad X-Request-Timeout-Ms is 400', async () => {
    assertError(await postJson(`${gw.url}/inference/b`, {}, { 'x-request-timeout-ms': 'soon' }), 400, 'SY_BAD_REQUEST');
  });

  test('a predictor that throws is 500 SY_PREDICTOR_ERROR with its message, no stack', async () => {
    const res = await postJson(`${gw.url}/inference/b`, { action: 'throw' });
    assertError(res, 500, 'SY_PREDICTOR_ERROR');
    assert.match(res.json.error.message, /broke on purpose/);
  });

  test('a result that cannot be encoded is 500 SY_PREDICTOR_OUTPUT', async () => {
    assertError(await postJson(`${gw.url}/inference/b`, { action: 'bigint' }), 500, 'SY_PREDICTOR_OUTPUT');
  });

  test('a client that disconnects aborts its request in the worker', async () => {
    const mark = `gone-${Date.now()}`;
    const controller = new AbortController();
    const pending = fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ action: 'hang', mark }), signal: controller.signal }).catch(() => 'aborted');
    await waitFor(() => gw.gateway.endpoints.get('b')!.inFlight === 1, 5000, 'the request to be in flight');
    controller.abort();
    assert.equal(await pending, 'aborted');
    await waitFor(() => existsSync(path.join(outputDir, `${mark}.aborted`)), 5000, 'the predictor to see the abort');
    await waitFor(() => gw.gateway.endpoints.get('b')!.inFlight === 0, 5000, 'the token to be returned');
  });

  test('errors are counted in /metrics by status', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(text, /switchyard_requests_total\{endpoint="b",status="500"\} [1-9]/);
    assert.match(text, /switchyard_requests_total\{endpoint="tight",status="503"\} [1-9]/);
    assert.match(text, /switchyard_queue_depth\{endpoint="b"\} 0/);
  });
});
