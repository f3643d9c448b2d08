import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { example, fixture, startGateway, type TestGateway } from '../helpers/gateway.js';

const APP = 'https://app.example';
const OTHER = 'https://evil.example';

function preflight(url: string, origin: string, method = 'POST', headers = 'authorization, content-type, x-request-timeout-ms'): Promise<Response> {
  return fetch(url, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers } });
}

/** Opens a WebSocket with `origin`; resolves with the upgrade's status (101 when it opened). */
function upgradeStatus(url: string, origin: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { origin });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.on('error', reject);
  });
}

describe('CORS configured on the server', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({
      server: { cors: { allow_origins: [APP], max_age_secs: 120, allow_headers: ['X-Trace'] } },
      endpoints: {
        echo: { predictor: example('echo/predictor.js') },
        stream: { predictor: example('stream/predictor.js'), settings: { interval_ms: 0 } },
        image: { predictor: example('image/predictor.js'), produces: ['image/png'] },
        locked: { predictor: fixture('behaviours'), api_keys: ['secret-key-1'] },
      },
    });
  });
  after(() => gw.close());

  test('a preflight from an allowed origin: 204, methods, headers and max-age', async () => {
    const res = await preflight(`${gw.url}/inference/echo`, APP);
    assert.equal(res.status, 204);
    assert.equal(res.headers.get('access-control-allow-origin'), APP);
    assert.equal(res.headers.get('vary'), 'Origin');
    assert.deepEqual(res.headers.get('access-control-allow-methods')!.split(', ').sort(), ['GET', 'OPTIONS', 'POST']);
    const allowed = res.headers.get('access-control-allow-headers')!.toLowerCase().split(', ');
    for (const h of ['authorization', 'content-type', 'x-request-timeout-ms', 'x-switchyard-region', 'last-event-id', 'inference-header-content-length', 'x-trace']) {
      assert.ok(allowed.includes(h), `allow-headers lacks ${h}: ${allowed.join(', ')}`);
    }
    assert.equal(res.headers.get('access-control-max-age'), '120');
    assert.equal(res.headers.get('access-control-allow-credentials'), null);
    assert.equal(await res.text(), '');
  });

  test('a preflight from another origin is refused with a code', async () => {
    const res = await preflight(`${gw.url}/inference/echo`, OTHER);
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(((await res.json()) as any).error.code, 'SY_ORIGIN_REFUSED');
  });

  test('a unary answer carries the origin, Vary and the exposed headers', async () => {
    const res = await fetch(`${gw.url}/inference/echo`, { method: 'POST', headers: { origin: APP, 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { a: 1 });
    assert.equal(res.headers.get('access-control-allow-origin'), APP);
    assert.equal(res.headers.get('vary'), 'Origin');
    const exposed = res.headers.get('access-control-expose-headers')!.toLowerCase().split(', ');
    for (const h of ['retry-after', 'x-switchyard-stream', 'content-length', 'inference-header-content-length']) assert.ok(exposed.includes(h), `expose-headers lacks ${h}`);
  });

  test('errors carry the CORS headers too: 401, 404, 405, 400', async () => {
    const answers = await Promise.all([
      fetch(`${gw.url}/inference/locked`, { method: 'POST', headers: { origin: APP }, body: '{}' }),
      fetch(`${gw.url}/inference/nope`, { method: 'POST', headers: { origin: APP }, body: '{}' }),
      fetch(`${gw.url}/healthz`, { method: 'DELETE', headers: { origin: APP } }),
      fetch(`${gw.url}/inference/echo`, { method: 'POST', headers: { origin: APP, 'content-type': 'application/json' }, body: '{bad' }),
    ]);
    assert.deepEqual(answers.map((r) => r.status), [401, 404, 405, 400]);
    for (const res of answers) {
      assert.equal(res.headers.get('access-control-allow-origin'), APP, `status ${res.status}`);
      assert.equal(res.headers.get('vary'), 'Origin');
      assert.match(((await res.json()) as any).error.code, /^SY_/);
    }
  });

  test('streams (chunked and SSE) and files carry the CORS headers', async () => {
    const chunked = await fetch(`${gw.url}/inference/stream`, { method: 'POST', headers: { origin: APP, 'content-type': 'application/json' }, body: '{"text":"q","stream":true,"chunks":2}' });
    assert.equal(chunked.headers.get('access-control-allow-origin'), APP);
    assert.match(await chunked.text(), /is: 2/);
    const sse = await fetch(`${gw.url}/inference/stream`, { method: 'POST', headers: { origin: APP, accept: 'text/event-stream', 'content-type': 'application/json' }, body: '{"text":"q","stream":true,"chunks":2}' });
    assert.equal(sse.headers.get('access-control-allow-origin'), APP);
    assert.match(await sse.text(), /event: end/);
    const file = await fetch(`${gw.url}/inference/image`, { method: 'POST', headers: { origin: APP, accept: 'image/png', 'content-type': 'application/json' }, body: '{"text":"hi"}' });
    assert.equal(file.status, 200);
    assert.equal(file.headers.get('content-type'), 'image/png');
    assert.equal(file.headers.get('access-control-allow-origin'), APP);
    assert.ok((await file.arrayBuffer()).byteLength > 0);
  });

  test('an answer to another origin has Vary but no Allow-Origin', async () => {
    const res = await fetch(`${gw.url}/healthz`, { headers: { origin: OTHER } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal(res.headers.get('vary'), 'Origin');
  });

  test('WebSocket upgrades: an allowed origin opens, another is refused, none (not a browser) opens', async () => {
    const url = `${gw.url.replace('http', 'ws')}/inference/echo`;
    assert.equal(await upgradeStatus(url, APP), 101);
    assert.equal(await upgradeStatus(url, OTHER), 403);
    const plain = new WebSocket(url);
    await new Promise((resolve, reject) => {
      plain.on('open', resolve);
      plain.on('error', reject);
    });
    plain.close();
  });
});

describe('CORS per endpoint, and off by default', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({
      endpoints: {
        open: { predictor: example('echo/predictor.js'), cors: { allow_origins: ['*'] } },
        closed: { predictor: example('echo/predictor.js') },
      },
    });
  });
  after(() => gw.close());

  test('an endpoint with allow_origins "*" answers any origin with "*"', async () => {
    const pre = await preflight(`${gw.url}/inference/open`, OTHER);
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
    const res = await fetch(`${gw.url}/inference/open`, { method: 'POST', headers: { origin: OTHER, 'content-type': 'application/json' }, body: '{"x":2}' });
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(await res.json(), { x: 2 });
  });

  test('an endpoint without a policy (and no server policy) has no CORS: OPTIONS is 405', async () => {
    const pre = await preflight(`${gw.url}/inference/closed`, OTHER);
    assert.equal(pre.status, 405);
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
    const res = await fetch(`${gw.url}/inference/closed`, { method: 'POST', headers: { origin: OTHER, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), null);
    assert.equal((await fetch(`${gw.url}/healthz`, { headers: { origin: OTHER } })).headers.get('access-control-allow-origin'), null);
  });
});
