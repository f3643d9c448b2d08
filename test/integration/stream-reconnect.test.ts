/**
 * Client reconnection (stream_reconnect): an SSE client whose connection is cut after 2 events
 * reconnects with Last-Event-ID and receives exactly the rest; the same for a WebSocket client
 * with a resume message; a stream whose client does not come back within the grace window is
 * cancelled and cannot be resumed any more.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import { goldenChunk } from '../fixtures/resumable-stream.js';
import { fixture, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';

interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** Reads SSE events from a response as they come; `cutAfter` aborts the connection after that many. */
async function readEvents(res: Response, cutAfter?: { n: number; abort: () => void }): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  let buffered = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffered.indexOf('\n\n')) >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const lines = block.split('\n').filter((l) => !l.startsWith(':'));
        if (lines.length === 0) continue;
        const id = lines.find((l) => l.startsWith('id: '))?.slice(4);
        const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message';
        const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.replace(/^data: ?/, '')).join('\n');
        events.push({ id, event, data });
        if (cutAfter && events.length === cutAfter.n) {
          cutAfter.abort();
          return events;
        }
      }
    }
  } catch (err) {
    if (!cutAfter) throw err;
  }
  return events;
}

interface WsReply {
  id: unknown;
  seq?: number;
  stream?: string;
  chunk?: string;
  done?: boolean;
  error?: { code: string };
}

function openSocket(url: string): Promise<{ ws: WebSocket; replies: WsReply[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const replies: WsReply[] = [];
    ws.on('message', (data: Buffer) => replies.push(JSON.parse(data.toString('utf8')) as WsReply));
    ws.on('open', () => resolve({ ws, replies }));
    ws.on('error', reject);
  });
}

describe('a client reconnects to its stream', () => {
  let gw: TestGateway;
  const dir = tempDir();
  const input = (tag: string, chunks: number) => ({ tag, chunks, ms: 60 });

  before(async () => {
    gw = await startGateway({
      endpoints: {
        rc: { predictor: fixture('resumable-stream'), output_dir: dir, settings: { mode: 'none' }, stream_reconnect: { grace_ms: 10_000 } },
        short: { predictor: fixture('behaviours'), output_dir: dir, stream_reconnect: { grace_ms: 300 } },
      },
    });
  });
  after(() => gw.close());

  test('SSE: cut after 2 events, back with Last-Event-ID: exactly events 3..n, then end', async () => {
    const abort = new AbortController();
    const first = await fetch(`${gw.url}/inference/rc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ ...input('sse', 12), stream: true }),
      signal: abort.signal,
    });
    const stream = first.headers.get('x-switchyard-stream')!;
    const before = await readEvents(first, { n: 2, abort: () => abort.abort() });
    assert.deepEqual(
      before.map((e) => e.id),
      [`${stream}:1`, `${stream}:2`],
    );

    const again = await fetch(`${gw.url}/inference/rc/streams/${stream}`, { headers: { accept: 'text/event-stream', 'last-event-id': before[1]!.id! } });
    assert.equal(again.status, 200);
    const rest = await readEvents(again);
    assert.deepEqual(
      rest.map((e) => [e.id, e.event, e.data]),
      [...Array.from({ length: 10 }, (_, i) => [`${stream}:${i + 3}`, 'message', goldenChunk({ tag: 'sse' }, i + 2)]), [undefined, 'end', '{}']],
    );
  });

  test('a plain EventSource whose connection drops after 2 events reconnects by itself with Last-Event-ID and gets exactly the rest', async () => {
    const sent: Array<string | null> = [];
    // The first connection breaks after its second event, as a dropped network would; later ones are left alone.
    const droppingFetch: typeof fetch = async (input, init) => {
      sent.push(new Headers(init?.headers).get('last-event-id'));
      const res = await fetch(input, init);
      if (sent.length > 1) return res;
      const reader = res.body!.getReader();
      let text = '';
      let forwarded = 0;
      const body = new ReadableStream<Uint8Array>({
        async pull(controller) {
          const { value, done } = await reader.read();
          if (done) return controller.close();
          text += Buffer.from(value).toString('utf8');
          const events = [...text.matchAll(/id: [^\n]*\n(?:data:[^\n]*\n)*\n/g)];
          if (events.length < 2) return;
          const end = events[1]!.index! + events[1]![0].length;
          controller.enqueue(Buffer.from(text.slice(forwarded, end)));
          forwarded = end;
          controller.error(new Error('the connection dropped'));
          await reader.cancel();
        },
      });
      return new Response(body, { status: res.status, headers: res.headers });
    };
    const url = `${gw.url}/inference/rc?input=${encodeURIComponent(JSON.stringify(input('es', 8)))}`;
    const got = await new Promise<Array<[string, string]>>((resolve, reject) => {
      const es = new EventSource(url, { fetch: droppingFetch });
      const messages: Array<[string, string]> = [];
      es.onmessage = (e) => messages.push([e.lastEventId, e.data]);
      es.addEventListener('end', () => {
        es.close();
        resolve(messages);
      });
      es.addEventListener('error', (e) => {
        // A dropped connection is an error event too; EventSource then reconnects on its own.
        if (es.readyState === EventSource.CLOSED) reject(new Error(`EventSource gave up: ${(e as unknown as { message?: string }).message ?? ''}`));
      });
    });
    const stream = got[0]![0].split(':')[0]!;
    assert.equal(sent.length, 2, 'one reconnect');
    assert.equal(sent[1], `${stream}:2`);
    assert.deepEqual(
      got,
      Array.from({ length: 8 }, (_, i) => [`${stream}:${i + 1}`, goldenChunk({ tag: 'es' }, i)]),
    );
  });

  test('WebSocket: the socket closes after 2 chunks, a resume message on a new socket gets exactly the rest', async () => {
    const url = `${gw.url.replace('http', 'ws')}/inference/rc`;
    const one = await openSocket(url);
    one.ws.send(JSON.stringify({ id: 'a', input: input('ws', 12), stream: true }));
    await waitFor(() => one.replies.length >= 2, 10_000, 'two chunks');
    one.ws.terminate();
    const got = one.replies.slice(0, 2);
    assert.deepEqual(
      got.map((r) => r.seq),
      [1, 2],
    );
    const stream = got[0]!.stream!;

    const two = await openSocket(url);
    two.ws.send(JSON.stringify({ id: 'b', resume: stream, last_seq: 2 }));
    await waitFor(() => two.replies.some((r) => r.done || r.error), 15_000, 'the end of the stream');
    two.ws.close();
    assert.deepEqual(
      two.replies.map((r) => (r.done ? 'done' : r.error ? r.error.code : `${r.id} ${r.seq} ${r.chunk}`)),
      [...Array.from({ length: 10 }, (_, i) => `b ${i + 3} ${goldenChunk({ tag: 'ws' }, i + 2)}`), 'done'],
    );
  });

  test('a client that does not come back within the grace window: the stream is cancelled, and a late resume is 410 SY_STREAM_GONE', async () => {
    const abort = new AbortController();
    const res = await fetch(`${gw.url}/inference/short`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ chunks: 100_000, ms: 20, mark: 'gone', stream: true }),
      signal: abort.signal,
    });
    const stream = res.headers.get('x-switchyard-stream')!;
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    await waitFor(() => existsSync(path.join(dir, 'gone.aborted')), 10_000, 'the generator to be aborted after the grace window');
    const late = await fetch(`${gw.url}/inference/short/streams/${stream}?last_seq=1`, { headers: { accept: 'application/x-ndjson' } });
    assert.equal(late.status, 410);
    assert.equal(((await late.json()) as { error: { code: string } }).error.code, 'SY_STREAM_GONE');
  });

  test('NDJSON: back within the window with ?last_seq, the rest follows with its seq', async () => {
    const abort = new AbortController();
    const res = await fetch(`${gw.url}/inference/rc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
      body: JSON.stringify({ ...input('nd', 6), stream: true }),
      signal: abort.signal,
    });
    const stream = res.headers.get('x-switchyard-stream')!;
    abort.abort();
    const again = await fetch(`${gw.url}/inference/rc/streams/${stream}?last_seq=0`, { headers: { accept: 'application/x-ndjson' } });
    const lines = (await again.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(lines, [...Array.from({ length: 6 }, (_, i) => ({ seq: i + 1, chunk: goldenChunk({ tag: 'nd' }, i) })), { done: true }]);
  });
});
