/**
 * HTTP/1.1 as a client on a raw socket sees it: HEAD without a body, Content-Length headers that
 * disagree, over-deep bodies, empty bodies. See the README, "HTTP/1.1", for what uWebSockets.js
 * decides before the gateway sees a request.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { pack } from '../../workers/protocol/envelopes.js';
import { MAX_BODY_DEPTH } from '../../workers/pool/encode.js';
import { fixture, postJson, startGateway, type TestGateway } from '../helpers/gateway.js';
import { exchange, parseResponses } from '../helpers/raw-http.js';

const request = (method: string, path: string, headers: string[] = [], body = '') =>
  `${method} ${path} HTTP/1.1\r\nHost: test\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
const post = (path: string, body: string, headers: string[] = []) =>
  request('POST', path, ['Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`, ...headers], body);

describe('HTTP/1.1 conformance', () => {
  let gw: TestGateway;
  let port: number;

  before(async () => {
    gw = await startGateway({
      endpoints: {
        b: { predictor: fixture('behaviours') },
        noinput: { predictor: fixture('behaviours'), allow_empty_body: true },
      },
    });
    port = gw.gateway.port;
  });
  after(() => gw.close());

  test('HEAD answers like GET without a body, and the connection serves the next request', async () => {
    const wire =
      request('HEAD', '/healthz') + request('HEAD', '/inference/b') + request('HEAD', '/nowhere') + request('GET', '/healthz');
    const got = await exchange(port, wire, { done: (b) => parseResponses(b, [true, true, true]).length === 4 });
    const [head, headInference, headMissing, get] = parseResponses(got.bytes, [true, true, true]);
    assert.ok(get, `four answers on one connection, got ${JSON.stringify(got.bytes.toString())}`);
    assert.equal(head!.status, 200);
    assert.equal(Number(head!.headers['content-length']), get.body.length, 'HEAD carries the length GET has');
    assert.equal(headInference!.status, 405);
    assert.equal(headInference!.headers.allow, 'GET, POST');
    assert.equal(headMissing!.status, 404);
    assert.deepEqual(JSON.parse(get.body.toString()), { status: 'ok' });
  });

  test('a keep-alive Node client can send HEAD then another request', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const call = (method: string, path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ port, host: '127.0.0.1', method, path, agent }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        });
        req.on('error', reject);
        req.end();
      });
    try {
      assert.equal((await call('HEAD', '/inference/b')).status, 405);
      assert.equal((await call('HEAD', '/readyz')).status, 200);
      const next = await call('GET', '/healthz');
      assert.equal(next.status, 200);
      assert.deepEqual(JSON.parse(next.body), { status: 'ok' });
    } finally {
      agent.destroy();
    }
  });

  test('Content-Length headers that disagree: 400 and the connection closes', async () => {
    const got = await exchange(port, request('POST', '/inference/b', ['Content-Type: application/json', 'Content-Length: 2', 'Content-Length: 13'], '{}'));
    const answers = parseResponses(got.bytes);
    assert.equal(answers.length, 1, got.bytes.toString());
    assert.equal(answers[0]!.status, 400);
    assert.equal(JSON.parse(answers[0]!.body.toString()).error.code, 'SY_BAD_REQUEST');
    assert.ok(got.closed, 'the server closed the connection');
    // A complete request smuggled behind the ambiguous one is never served: the connection closes.
    for (const follower of ['GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /v1/endpoints HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const smuggled = await exchange(port, request('POST', '/inference/b', ['Content-Type: application/json', 'Content-Length: 2', 'Content-Length: 13'], '{}') + follower);
      assert.ok(smuggled.closed, 'the server closed the connection');
      assert.deepEqual(parseResponses(smuggled.bytes).filter((r) => r.status !== 400), [], smuggled.bytes.toString());
    }
    // The same on the other routes, since the body would be framed the same way.
    const onHealth = await exchange(port, request('GET', '/healthz', ['Content-Length: 1', 'Content-Length: 0'], 'x'));
    assert.equal(parseResponses(onHealth.bytes)[0]?.status, 400);
    assert.ok(onHealth.closed);
    // Repeating the same value is allowed (RFC 9110 §8.6).
    const same = await exchange(port, post('/inference/b', '{"value":1}', [`Content-Length: 11`]), { done: (b) => parseResponses(b).length === 1 });
    assert.equal(parseResponses(same.bytes)[0]?.status, 200);
  });

  test(`JSON nested deeper than ${MAX_BODY_DEPTH} levels is 400, at the limit it is served`, async () => {
    const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
    const atLimit = await postJson(`${gw.url}/inference/b`, `{"value":${nested(MAX_BODY_DEPTH - 1)}}`);
    assert.equal(atLimit.status, 200, atLimit.text);
    for (const body of [`{"value":${nested(MAX_BODY_DEPTH)}}`, nested(200_000), `{"s":"[[[[","v":${nested(MAX_BODY_DEPTH)}}`]) {
      const res = await postJson(`${gw.url}/inference/b`, body);
      assert.equal(res.status, 400, res.text.slice(0, 200));
      assert.equal(res.json.error.code, 'SY_BAD_REQUEST');
      assert.match(res.json.error.message, new RegExp(`deeper than ${MAX_BODY_DEPTH}`));
    }
    // Brackets inside strings are text, not nesting.
    const text = await postJson(`${gw.url}/inference/b`, { value: '['.repeat(5000) });
    assert.equal(text.status, 200, text.text.slice(0, 200));
  });

  test('msgpack nested too deeply is 400 too', async () => {
    let value: unknown = 1;
    for (let i = 0; i < MAX_BODY_DEPTH + 1; i++) value = [value];
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/msgpack' }, body: pack({ value }) });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as any).error.code, 'SY_BAD_REQUEST');
  });

  test('an empty body is 400 unless the endpoint takes none', async () => {
    const empty = await exchange(port, request('POST', '/inference/b', ['Content-Length: 0']), { done: (b) => parseResponses(b).length === 1 });
    const [answer] = parseResponses(empty.bytes);
    assert.equal(answer?.status, 400, empty.bytes.toString());
    const err = JSON.parse(answer.body.toString()).error;
    assert.equal(err.code, 'SY_BAD_REQUEST');
    assert.match(err.message, /allow_empty_body/);
    const taken = await postJson(`${gw.url}/inference/noinput`, '');
    assert.equal(taken.status, 200, taken.text);
    assert.deepEqual(taken.json.echo, {});
  });
});
