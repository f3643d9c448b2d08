import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { fixture, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';

/** SSE events of a finished response: the data of each chunk, and the last event's name and data. */
async function sse(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; chunks: string[]; last: { event: string; data: string } }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers }, body: JSON.stringify(body) });
  const events = (await res.text())
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      return { event, data: data.join('\n') };
    });
  return { status: res.status, chunks: events.filter((e) => e.event === 'message').map((e) => e.data), last: events[events.length - 1]! };
}

const codeOf = (data: string) => (JSON.parse(data) as { error: { code: string } }).error.code;

describe('stream deadlines', () => {
  let gw: TestGateway;
  const outputDir = tempDir();
  before(async () => {
    gw = await startGateway({
      endpoints: {
        b: { predictor: fixture('behaviours'), output_dir: outputDir },
        idle: { predictor: fixture('behaviours'), stream_timeouts: { idle_ms: 150 } },
      },
    });
  });
  after(() => gw.close());

  test('X-Request-Timeout-Ms bounds the whole stream: it ends with SY_STREAM_TOTAL_TIMEOUT and the generator stops', async () => {
    const r = await sse(`${gw.url}/inference/b`, { chunks: 50, ms: 100, stream: true, mark: 'total' }, { 'x-request-timeout-ms': '450' });
    assert.equal(r.status, 200);
    assert.ok(r.chunks.length >= 1 && r.chunks.length < 50, `${r.chunks.length} chunks`);
    assert.equal(r.last.event, 'error');
    assert.equal(codeOf(r.last.data), 'SY_STREAM_TOTAL_TIMEOUT');
    await waitFor(() => existsSync(path.join(outputDir, 'total.finally')), 10_000, 'the generator to stop');
  });

  test('X-Stream-First-Chunk-Ms: no first chunk in time ends the stream with SY_STREAM_FIRST_CHUNK_TIMEOUT', async () => {
    const r = await sse(`${gw.url}/inference/b`, { chunks: 3, first_ms: 5000, stream: true }, { 'x-stream-first-chunk-ms': '200' });
    assert.deepEqual(r.chunks, []);
    assert.equal(codeOf(r.last.data), 'SY_STREAM_FIRST_CHUNK_TIMEOUT');
  });

  test('X-Stream-Idle-Ms: a gap between chunks ends the stream with SY_STREAM_IDLE_TIMEOUT after the chunks so far', async () => {
    const r = await sse(`${gw.url}/inference/b`, { chunks: 3, ms: 5000, stream: true }, { 'x-stream-idle-ms': '200' });
    assert.deepEqual(r.chunks, ['chunk 0\n']);
    assert.equal(codeOf(r.last.data), 'SY_STREAM_IDLE_TIMEOUT');
  });

  test('the endpoint idle limit applies with no header; a stream that keeps its pace finishes', async () => {
    const slow = await sse(`${gw.url}/inference/idle`, { chunks: 3, ms: 3000, stream: true });
    assert.equal(codeOf(slow.last.data), 'SY_STREAM_IDLE_TIMEOUT');
    const brisk = await sse(`${gw.url}/inference/idle`, { chunks: 4, ms: 1, stream: true });
    assert.equal(brisk.chunks.length, 4);
    assert.equal(brisk.last.event, 'end');
  });

  test('chunked HTTP: the timeout is the last line, then the connection is cut', async () => {
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-stream-idle-ms': '200' }, body: JSON.stringify({ chunks: 3, ms: 5000, stream: true }) });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = '';
    await assert.rejects(async () => {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString();
      }
    });
    const lines = text.split('\n').filter(Boolean);
    assert.equal(lines[0], 'chunk 0');
    assert.equal(codeOf(lines[lines.length - 1]!), 'SY_STREAM_IDLE_TIMEOUT');
  });

  test('a limit header that is not a positive number is a 400 naming it', async () => {
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-stream-idle-ms': 'soon' }, body: '{"stream":true}' });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /X-Stream-Idle-Ms/);
  });

  test('WebSocket: timeout_ms bounds a stream whole', async () => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/inference/b`);
    const replies: Array<{ chunk?: string; error?: { code: string }; done?: boolean }> = [];
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ id: 1, input: { chunks: 50, ms: 100 }, stream: true, timeout_ms: 450 })));
      ws.on('message', (data) => {
        const m = JSON.parse(String(data));
        replies.push(m);
        if (m.error || m.done) resolve();
      });
      ws.on('error', reject);
    });
    ws.close();
    const last = replies[replies.length - 1]!;
    assert.equal(last.error?.code, 'SY_STREAM_TOTAL_TIMEOUT');
    assert.ok(replies.length > 1 && replies.length < 50);
  });

  test('WebSocket: first_chunk_timeout_ms and idle_timeout_ms end a stream with their codes', async () => {
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/inference/b`);
    const ends = new Map<string, string>();
    const chunks = new Map<string, number>();
    await new Promise<void>((resolve, reject) => {
      ws.on('open', () => {
        ws.send(JSON.stringify({ id: 'first', input: { chunks: 3, first_ms: 5000 }, stream: true, first_chunk_timeout_ms: 200 }));
        ws.send(JSON.stringify({ id: 'idle', input: { chunks: 3, ms: 5000 }, stream: true, idle_timeout_ms: 200 }));
        ws.send(JSON.stringify({ id: 'bad', input: {}, stream: true, idle_timeout_ms: -1 }));
      });
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { id: string; chunk?: string; error?: { code: string } };
        if (m.chunk !== undefined) chunks.set(m.id, (chunks.get(m.id) ?? 0) + 1);
        if (m.error) ends.set(m.id, m.error.code);
        if (ends.size === 3) resolve();
      });
      ws.on('error', reject);
    });
    ws.close();
    assert.deepEqual(Object.fromEntries(ends), { first: 'SY_STREAM_FIRST_CHUNK_TIMEOUT', idle: 'SY_STREAM_IDLE_TIMEOUT', bad: 'SY_BAD_REQUEST' });
    assert.equal(chunks.get('first'), undefined);
    assert.equal(chunks.get('idle'), 1);
  });
});
