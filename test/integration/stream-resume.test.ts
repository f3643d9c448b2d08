/**
 * A stream whose replica dies mid-stream, in one gateway: a resumable predictor's stream goes on
 * on a sibling replica and the client gets exactly the golden stream (raw chunked, SSE, NDJSON,
 * WebSocket in JSON and msgpack), with no error and no repeat; a non-resumable one still ends with
 * SY_REPLICA_LOST.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { pack, unpack } from '../../workers/protocol/envelopes.js';
import { goldenChunk, goldenStream } from '../fixtures/resumable-stream.js';
import { fixture, startGateway, tempDir, type TestGateway } from '../helpers/gateway.js';

const post = (url: string, body: unknown, accept?: string) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(accept ? { accept } : {}) }, body: JSON.stringify(body) });

/** Reads a body to its end; `cut` says why reading stopped early, if it did. */
async function readAll(res: Response): Promise<{ text: string; cut: string | undefined }> {
  let text = '';
  const decoder = new TextDecoder();
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return { text, cut: undefined };
      text += decoder.decode(value, { stream: true });
    }
  } catch (err) {
    return { text, cut: (err as Error).message };
  }
}

interface WsReply {
  id: unknown;
  seq?: number;
  stream?: string;
  chunk?: string | Uint8Array;
  done?: boolean;
  error?: { code: string };
}

/** One WebSocket stream request; resolves with every reply up to and including its last. */
function wsStream(url: string, input: unknown, binary: boolean): Promise<WsReply[]> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const replies: WsReply[] = [];
    ws.on('error', reject);
    ws.on('open', () => {
      const message = { id: 's', input, stream: true };
      ws.send(binary ? pack(message) : JSON.stringify(message));
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const reply = (isBinary ? unpack(data) : JSON.parse(data.toString('utf8'))) as WsReply;
      replies.push(reply);
      if (reply.done || reply.error) {
        ws.close();
        resolve(replies);
      }
    });
  });
}

/** An SSE body without its comment lines. */
const withoutComments = (sse: string) =>
  sse
    .split('\n')
    .filter((line) => !line.startsWith(':'))
    .join('\n');

const text = (chunk: string | Uint8Array | undefined) => (typeof chunk === 'string' ? chunk : Buffer.from(chunk!).toString('utf8'));

describe('streams resume on a sibling when their replica dies', () => {
  let gw: TestGateway;
  const dir = tempDir();
  const predictor = fixture('resumable-stream');
  let n = 0;
  /** A request that kills the replica serving it before chunk `exitAt`, once. */
  const dying = (chunks: number, exitAt: number) => ({ tag: `r${++n}`, chunks, ms: 3, exit_at: exitAt, mark: `m${n}` });
  /** The replica that served `input` first did die (the test would prove nothing otherwise). */
  const died = (input: { mark: string }) => assert.ok(existsSync(path.join(dir, `${input.mark}.exited`)), 'a replica died mid-stream');

  before(async () => {
    gw = await startGateway({
      endpoints: {
        det: { predictor, replicas: 2, output_dir: dir, settings: { mode: 'deterministic' } },
        cp: { predictor, replicas: 2, output_dir: dir, settings: { mode: 'checkpoint', every: 4 } },
        none: { predictor, replicas: 2, output_dir: dir, settings: { mode: 'none' } },
      },
    });
  });
  after(() => gw.close());

  test('deterministic, raw chunked: the body is the golden stream, complete', async () => {
    const input = dying(30, 9);
    const res = await post(`${gw.url}/inference/det`, { ...input, stream: true });
    assert.equal(res.status, 200);
    const { text: body, cut } = await readAll(res);
    assert.equal(cut, undefined);
    assert.equal(body, goldenStream(input));
    died(input);
  });

  test('checkpoint, SSE: every event once, ids in order, then end', async () => {
    const input = dying(30, 10);
    const res = await post(`${gw.url}/inference/cp`, { ...input, stream: true }, 'text/event-stream');
    const stream = res.headers.get('x-switchyard-stream');
    // Comment lines (":") only push bytes out; they are no events.
    const events = withoutComments((await readAll(res)).text).split('\n\n').filter(Boolean);
    assert.equal(events.length, 31);
    events.slice(0, 30).forEach((event, i) => {
      const [id, ...data] = event.split('\n');
      assert.equal(id, `id: ${stream}:${i + 1}`);
      assert.equal(data.map((l) => l.slice(6)).join('\n'), goldenChunk(input, i));
    });
    assert.equal(events[30], 'event: end\ndata: {}');
    died(input);
  });

  test('checkpoint, NDJSON: seq 1..n, the golden chunks, done', async () => {
    const input = dying(25, 14);
    const res = await post(`${gw.url}/inference/cp`, { ...input, stream: true }, 'application/x-ndjson');
    const lines = (await readAll(res)).text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq?: number; chunk?: string; done?: boolean });
    assert.deepEqual(lines, [...Array.from({ length: 25 }, (_, i) => ({ seq: i + 1, chunk: goldenChunk(input, i) })), { done: true }]);
    died(input);
  });

  for (const binary of [false, true]) {
    test(`WebSocket (${binary ? 'msgpack' : 'JSON'}): seq 1..n with the golden chunks, then done`, async () => {
      const input = dying(20, 6);
      const replies = await wsStream(`${gw.url.replace('http', 'ws')}/inference/${binary ? 'det' : 'cp'}`, input, binary);
      assert.deepEqual(
        replies.map((r) => (r.done ? 'done' : r.error ? r.error.code : `${r.seq} ${text(r.chunk)}`)),
        [...Array.from({ length: 20 }, (_, i) => `${i + 1} ${goldenChunk(input, i)}`), 'done'],
      );
      died(input);
    });
  }

  test('not resumable: the stream still ends with SY_REPLICA_LOST', async () => {
    const input = dying(20, 5);
    const res = await post(`${gw.url}/inference/none`, { ...input, stream: true }, 'application/x-ndjson');
    const lines = (await readAll(res)).text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { seq?: number; error?: { code: string } });
    assert.deepEqual(
      lines.slice(0, 5).map((l) => l.seq),
      [1, 2, 3, 4, 5],
    );
    assert.equal(lines.length, 6);
    assert.equal(lines[5]!.error?.code, 'SY_REPLICA_LOST');
    died(input);
  });
});
