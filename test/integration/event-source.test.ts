import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { example, fixture, startGateway, type TestGateway } from '../helpers/gateway.js';

const KEY = 'browser-key-123';

/** Every message of an EventSource until the stream's `end` (or `error`) event; then it is closed. */
function collect(url: string, init?: ConstructorParameters<typeof EventSource>[1]): Promise<{ data: string[]; ids: string[]; ended: string }> {
  return new Promise((resolve, reject) => {
    const es = new EventSource(url, init);
    const data: string[] = [];
    const ids: string[] = [];
    es.onmessage = (e) => {
      data.push(e.data);
      ids.push(e.lastEventId);
    };
    es.addEventListener('end', () => {
      es.close();
      resolve({ data, ids, ended: 'end' });
    });
    es.addEventListener('error', (e) => {
      es.close();
      const withData = e as unknown as { data?: string; message?: string };
      if (withData.data !== undefined) resolve({ data, ids, ended: withData.data });
      else reject(new Error(`EventSource failed: ${withData.message ?? 'no detail'}`));
    });
  });
}

const q = (input: unknown) => `?input=${encodeURIComponent(JSON.stringify(input))}`;

describe('SSE over GET (EventSource) and browser WebSocket auth', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startGateway({
      endpoints: {
        stream: { predictor: example('stream/predictor.js'), settings: { interval_ms: 0 } },
        b: { predictor: fixture('behaviours') },
        locked: { predictor: example('stream/predictor.js'), settings: { interval_ms: 0 }, api_keys: [KEY] },
      },
    });
  });
  after(() => gw.close());

  test('the eventsource package streams GET /inference/{e}?input=<url-encoded JSON>, with ids, ending with end', async () => {
    const r = await collect(`${gw.url}/inference/stream${q({ text: 'why "so" & how?', chunks: 3 })}`);
    assert.deepEqual(r.data, [1, 2, 3].map((i) => `Answer for why "so" & how? is: ${i}\n\n`));
    assert.equal(r.ids.length, 3);
    r.ids.forEach((id, i) => assert.match(id, new RegExp(`^[\\w-]+:${i + 1}$`)));
    assert.equal(r.ended, 'end');
  });

  test('fetch from Node reads the same stream as text/event-stream', async () => {
    const res = await fetch(`${gw.url}/inference/stream${q({ text: 'x', chunks: 2 })}`, { headers: { accept: 'text/event-stream' } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const text = await res.text();
    assert.match(text, /^id: [\w-]+:1\ndata: Answer for x is: 1\n/);
    assert.match(text, /event: end\ndata: \{\}\n\n$/);
  });

  test('without input the predictor gets {}; a failure mid-stream is an error event with the code', async () => {
    const none = await fetch(`${gw.url}/inference/b`, { headers: { accept: 'text/event-stream' } });
    assert.match(await none.text(), /chunk 4/);
    const failing = await collect(`${gw.url}/inference/b${q({ chunks: 5, fail_at: 2 })}`);
    assert.deepEqual(failing.data, ['chunk 0\n', 'chunk 1\n']);
    assert.equal((JSON.parse(failing.ended) as { error: { code: string } }).error.code, 'SY_PREDICTOR_ERROR');
  });

  test('input that is not JSON is a 400 before the stream; GET without Accept: text/event-stream is a 406', async () => {
    const bad = await fetch(`${gw.url}/inference/stream?input=${encodeURIComponent('{nope')}`, { headers: { accept: 'text/event-stream' } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'SY_BAD_REQUEST');
    const plain = await fetch(`${gw.url}/inference/stream`);
    assert.equal(plain.status, 406);
  });

  test('an endpoint with keys: EventSource without a key is refused; with the header (eventsource fetch option) it streams', async () => {
    const refused = await fetch(`${gw.url}/inference/locked${q({ text: 'k' })}`, { headers: { accept: 'text/event-stream' } });
    assert.equal(refused.status, 401);
    const r = await collect(`${gw.url}/inference/locked${q({ text: 'k', chunks: 2 })}`, {
      fetch: (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${KEY}` } }),
    });
    assert.equal(r.data.length, 2);
  });

  test('WebSocket: a key offered as the subprotocol switchyard.bearer.<key> opens, answered as switchyard.v1', async () => {
    const url = `${gw.url.replace('http', 'ws')}/inference/locked`;
    const ws = new WebSocket(url, ['switchyard.v1', `switchyard.bearer.${KEY}`]);
    const chunks: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ id: 'a', input: { text: 'ws', chunks: 2 }, stream: true })));
      ws.on('message', (data) => {
        const m = JSON.parse(String(data));
        if (m.chunk !== undefined) chunks.push(m.chunk);
        if (m.done || m.error) resolve();
      });
      ws.on('error', reject);
    });
    assert.equal(ws.protocol, 'switchyard.v1');
    ws.close();
    assert.deepEqual(chunks, ['Answer for ws is: 1\n\n', 'Answer for ws is: 2\n\n']);
  });

  test('WebSocket: a wrong key, no key, or a key without switchyard.v1 is refused on the upgrade', async () => {
    const url = `${gw.url.replace('http', 'ws')}/inference/locked`;
    const status = (protocols: string[]) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(url, protocols);
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        ws.on('error', reject);
      });
    assert.equal(await status(['switchyard.v1', 'switchyard.bearer.wrong-key-456']), 401);
    assert.equal(await status(['switchyard.v1']), 401);
    assert.equal(await status([`switchyard.bearer.${KEY}`]), 400);
  });
});
