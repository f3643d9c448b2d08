import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { pack, unpack } from '../../workers/protocol/envelopes.js';
import { renderPng } from '../../examples/image/predictor.js';
import { example, fixture, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';

interface Reply {
  id: string | number | null;
  chunk?: string | Uint8Array;
  seq?: number;
  stream?: string;
  encoding?: string;
  result?: unknown;
  content_type?: string;
  done?: true;
  error?: { code: string; message: string; retry_after_s?: number };
  /** Whether it came as a binary (msgpack) frame. */
  binary: boolean;
}

/** A test client: every reply is kept in arrival order, decoded from JSON or msgpack. */
class Client {
  readonly replies: Reply[] = [];
  closed = false;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, binary: boolean) => {
      const decoded = binary ? unpack<Omit<Reply, 'binary'>>(data) : (JSON.parse(data.toString('utf8')) as Omit<Reply, 'binary'>);
      this.replies.push({ ...decoded, binary });
    });
    ws.on('close', () => (this.closed = true));
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<Client> {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(new Client(ws)));
      ws.once('error', reject);
      ws.once('unexpected-response', (req: ClientRequest, res: IncomingMessage) => {
        let text = '';
        // The refused upgrade's connection stays open otherwise (keep-alive, no agent to reuse it).
        const socket = req.socket;
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => {
          socket?.destroy();
          reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body: text }));
        });
      });
    });
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  sendPacked(message: unknown): void {
    this.ws.send(pack(message));
  }

  of(id: string | number | null): Reply[] {
    return this.replies.filter((r) => r.id === id);
  }

  /** Waits for the request's last reply (result, done or error) and returns all of its replies. */
  async finished(id: string | number, timeoutMs = 10_000): Promise<Reply[]> {
    await waitFor(() => this.of(id).some((r) => r.result !== undefined || r.done || r.error), timeoutMs, `request ${id} to finish`);
    return this.of(id);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

const chunkText = (r: Reply) => (typeof r.chunk === 'string' ? r.chunk : Buffer.from(r.chunk!).toString('utf8'));

describe('WebSocket', () => {
  let gw: TestGateway;
  let ws: string;
  const outputDir = tempDir();
  const imageDir = tempDir();
  const marked = (name: string) => existsSync(path.join(outputDir, name));

  before(async () => {
    gw = await startGateway({
      endpoints: {
        b: { predictor: fixture('behaviours'), output_dir: outputDir },
        story: { predictor: example('stream/predictor.js'), settings: { interval_ms: 0 } },
        image: { predictor: example('image/predictor.js'), produces: ['image/png'], output_dir: imageDir },
        locked: { predictor: fixture('behaviours'), api_keys: ['s3cret-key-1'] },
      },
    });
    ws = gw.url.replace('http', 'ws');
  });
  after(() => gw.close());

  test('unary over JSON and over msgpack, answered in the encoding each came in', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    c.send({ id: 'j', input: { value: { n: 1 } } });
    c.sendPacked({ id: 2, input: { value: { n: 2, bytes: new Uint8Array([1, 2, 3]) } } });
    const [json] = await c.finished('j');
    assert.equal(json!.binary, false);
    assert.deepEqual((json!.result as { echo: unknown }).echo, { n: 1 });
    const [packed] = await c.finished(2);
    assert.equal(packed!.binary, true);
    const echo = (packed!.result as { echo: { n: number; bytes: Uint8Array } }).echo;
    assert.equal(echo.n, 2);
    assert.deepEqual([...echo.bytes], [1, 2, 3]);
    await c.close();
  });

  test('a stream over JSON: the numbered chunks in order, then done', async () => {
    const c = await Client.open(`${ws}/inference/story`);
    c.send({ id: 'q', input: { text: 'life' }, stream: true });
    const replies = await c.finished('q');
    assert.deepEqual(
      replies.slice(0, -1).map(chunkText),
      [1, 2, 3, 4, 5].map((i) => `Answer for life is: ${i}\n\n`),
    );
    assert.deepEqual(
      replies.slice(0, -1).map((r) => r.seq),
      [1, 2, 3, 4, 5],
    );
    // The first chunk names the stream (what a resume message presents); later ones do not repeat it.
    assert.match(replies[0]!.stream ?? '', /^[\w-]{20}$/);
    assert.ok(replies.slice(1).every((r) => r.stream === undefined));
    assert.deepEqual(replies.at(-1), { id: 'q', done: true, binary: false });
    await c.close();
  });

  for (const ms of [0, 1]) {
    test(`200 chunks ${ms ? 'a turn apart' : 'coalesced per turn'}: one message each, every one in order with its seq, over JSON and msgpack`, async () => {
      const c = await Client.open(`${ws}/inference/b`);
      c.send({ id: 'j', input: { chunks: 200, ms }, stream: true });
      c.sendPacked({ id: 'm', input: { chunks: 200, ms }, stream: true });
      for (const id of ['j', 'm']) {
        const replies = await c.finished(id);
        assert.deepEqual(
          replies.slice(0, -1).map((r) => [r.seq, chunkText(r)]),
          Array.from({ length: 200 }, (_, i) => [i + 1, `chunk ${i}\n`]),
          id,
        );
        assert.equal(replies.at(-1)!.done, true);
      }
      await c.close();
    });
  }

  test('a run of text beyond ASCII keeps every character of every chunk', async () => {
    const c = await Client.open(`${ws}/inference/story`);
    c.send({ id: 'u', input: { text: 'ünï ☃', chunks: 3 }, stream: true });
    const replies = await c.finished('u');
    assert.deepEqual(replies.slice(0, -1).map(chunkText), [1, 2, 3].map((i) => `Answer for ünï ☃ is: ${i}\n\n`));
    await c.close();
  });

  test('a lone chunk is sent while the generator waits, not held for the next one', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    const mark = `ws-lone-${Date.now()}`;
    // The second chunk is a minute away: the first must arrive on its own.
    c.send({ id: 'lone', input: { chunks: 2, ms: 60_000, mark }, stream: true });
    await waitFor(() => c.of('lone').length > 0, 15_000, 'the first chunk');
    assert.deepEqual(
      c.of('lone').map((r) => [r.seq, chunkText(r)]),
      [[1, 'chunk 0\n']],
    );
    await c.close();
    await waitFor(() => marked(`${mark}.finally`), 10_000, "the generator's finally");
  });

  test('a stream over msgpack: chunks are bytes in binary frames', async () => {
    const c = await Client.open(`${ws}/inference/story`);
    c.sendPacked({ id: 9, input: { text: 'bin', chunks: 3 }, stream: true });
    const replies = await c.finished(9);
    assert.ok(replies.every((r) => r.binary));
    assert.ok(replies.slice(0, -1).every((r) => r.chunk instanceof Uint8Array));
    assert.deepEqual(replies.slice(0, -1).map(chunkText), [1, 2, 3].map((i) => `Answer for bin is: ${i}\n\n`));
    assert.deepEqual(
      replies.slice(0, -1).map((r) => r.seq),
      [1, 2, 3],
    );
    assert.equal(replies.at(-1)!.done, true);
    await c.close();
  });

  test('chunks that are not UTF-8 go as base64 over JSON', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    c.send({ id: 'raw', input: { binary: true, chunks: 2 }, stream: true });
    const replies = await c.finished('raw');
    assert.deepEqual(
      replies.slice(0, -1).map((r) => [r.encoding, [...Buffer.from(r.chunk as string, 'base64')]]),
      [
        ['base64', [0xff, 0xfe, 0]],
        ['base64', [0xff, 0xfe, 1]],
      ],
    );
    await c.close();
  });

  test('many streams and unary requests interleave on one socket, each complete and in order', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    const streams = Array.from({ length: 20 }, (_, i) => `s${i}`);
    for (const id of streams) c.send({ id, input: { chunks: 10, ms: 5 }, stream: true });
    for (let i = 0; i < 10; i++) c.send({ id: i, input: { value: i } });
    for (const id of streams) {
      const replies = await c.finished(id);
      assert.deepEqual(
        replies.map((r) => (r.done ? 'done' : chunkText(r))),
        [...Array.from({ length: 10 }, (_, k) => `chunk ${k}\n`), 'done'],
        id,
      );
    }
    for (let i = 0; i < 10; i++) assert.equal(((await c.finished(i))[0]!.result as { echo: number }).echo, i);
    const order = c.replies.map((r) => r.id);
    const switches = order.filter((id, k) => k > 0 && id !== order[k - 1]).length;
    assert.ok(switches > streams.length, `replies of different requests interleave (${switches} switches)`);
    await c.close();
  });

  test('a mid-stream failure ends that request with a typed error; the socket stays usable', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    c.send({ id: 'f', input: { chunks: 10, fail_at: 2 }, stream: true });
    const replies = await c.finished('f');
    assert.deepEqual(replies.slice(0, 2).map(chunkText), ['chunk 0\n', 'chunk 1\n']);
    assert.equal(replies.length, 3);
    assert.equal(replies[2]!.error!.code, 'SY_PREDICTOR_ERROR');
    assert.match(replies[2]!.error!.message, /failed at chunk 2/);
    c.send({ id: 'after', input: { value: 'still here' } });
    assert.equal(((await c.finished('after'))[0]!.result as { echo: string }).echo, 'still here');
    await c.close();
  });

  test('unreadable messages are answered with errors and the socket stays open', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    c.send('{"id": "x", "input": ');
    c.send('[1, 2]');
    c.send({ input: {} });
    c.send({ id: '', input: {} });
    c.send({ id: 'y', input: {}, stream: 'yes' });
    c.send({ id: 'z', input: {}, timeout_ms: -1 });
    c.ws.send(Buffer.from([0x92, 0x01]));
    c.send({ id: 'ok', input: { value: 1 } });
    await c.finished('ok');
    const anonymous = c.of(null);
    assert.equal(anonymous.length, 5);
    assert.ok(anonymous.every((r) => r.error?.code === 'SY_BAD_REQUEST'));
    assert.match(anonymous[0]!.error!.message, /not valid JSON/);
    assert.match(anonymous[4]!.error!.message, /not valid msgpack/);
    assert.equal(anonymous[4]!.binary, true, 'a binary message is answered in msgpack');
    assert.match(c.of('y')[0]!.error!.message, /"stream"/);
    assert.match(c.of('z')[0]!.error!.message, /timeout_ms/);
    assert.equal(c.closed, false);
    await c.close();
  });

  test('a duplicate live id is refused; the request holding it goes on', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    c.send({ id: 'd', input: { chunks: 3, ms: 50 }, stream: true });
    c.send({ id: 'd', input: { value: 'again' } });
    await waitFor(() => c.of('d').some((r) => r.done), 10_000, 'the live stream to end');
    // The refusal and the stream's first chunk may come in either order (a quick first chunk is
    // written before the second message is read); the refusal is one reply, the stream whole.
    const refusals = c.of('d').filter((r) => r.error !== undefined);
    assert.deepEqual(refusals.map((r) => r.error!.code), ['SY_BAD_REQUEST'], 'the duplicate is refused, once');
    assert.deepEqual(
      c.of('d').filter((r) => r.error === undefined).map((r) => (r.done ? 'done' : chunkText(r))),
      ['chunk 0\n', 'chunk 1\n', 'chunk 2\n', 'done'],
    );
    // Once finished, the id is free again.
    c.send({ id: 'd', input: { value: 'reused' } });
    await waitFor(() => c.of('d').some((r) => r.result !== undefined), 10_000, 'the reused id to answer');
    await c.close();
  });

  test('cancel stops one request in the worker; the others on the socket go on', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    const mark = `ws-cancel-${Date.now()}`;
    c.send({ id: 'stop', input: { chunks: 100_000, ms: 20, mark }, stream: true });
    c.send({ id: 'keep', input: { chunks: 30, ms: 20 }, stream: true });
    await waitFor(() => c.of('stop').length >= 2, 10_000, 'the first chunks');
    c.send({ id: 'stop', cancel: true });
    await waitFor(() => c.of('stop').some((r) => r.error), 10_000, 'the cancel to be confirmed');
    assert.equal(c.of('stop').at(-1)!.error!.code, 'SY_CANCELLED');
    await waitFor(() => marked(`${mark}.finally`), 10_000, "the generator's finally");
    assert.ok(marked(`${mark}.aborted`), 'the AbortSignal fired');
    const keep = await c.finished('keep');
    assert.equal(keep.at(-1)!.done, true);
    assert.equal(keep.length, 31);
    // Cancelling an id that is not live says nothing: the next reply is the next request's.
    const before = c.replies.length;
    c.send({ id: 'nobody', cancel: true });
    c.send({ id: 'next', input: { value: 1 } });
    await c.finished('next');
    assert.equal(c.replies[before]!.id, 'next');
    await c.close();
  });

  test('closing the socket cancels every request on it', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    const marks = [0, 1, 2].map((i) => `ws-close-${i}-${Date.now()}`);
    for (const mark of marks) c.send({ id: mark, input: { chunks: 100_000, ms: 20, mark }, stream: true });
    c.send({ id: 'waiting', input: { action: 'hang', mark: `${marks[0]}-unary` } });
    await waitFor(() => marks.every((m) => c.of(m).length > 0), 10_000, 'every stream to start');
    c.ws.terminate();
    for (const mark of marks) await waitFor(() => marked(`${mark}.finally`), 10_000, `${mark} to stop`);
    await waitFor(() => marked(`${marks[0]}-unary.aborted`), 10_000, 'the unary request to be aborted');
    await waitFor(() => gw.gateway.endpoints.get('b')!.inFlight === 0, 5000, 'every token to be returned');
  });

  test('a client that stops reading pauses the generator; it resumes when the client reads again', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    const mark = `ws-slow-${Date.now()}`;
    const chunks = 1600;
    const size = 64 * 1024; // 100 MiB in all
    c.sendPacked({ id: 1, input: { chunks, size, mark, progress: true }, stream: true });
    await waitFor(() => c.of(1).length > 0, 10_000, 'the first chunk');
    c.ws.pause();
    // Long enough for an unpaused generator to produce all of it.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const produced = Number(readFileSync(path.join(outputDir, `${mark}.progress`), 'utf8'));
    assert.ok(!marked(`${mark}.finally`), 'the generator is paused, not finished');
    assert.ok(produced < 400, `the generator got ${produced} chunks ahead of a client that read 1`);
    c.ws.resume();
    const replies = await c.finished(1, 30_000);
    assert.equal(replies.length, chunks + 1);
    let wrong = 0;
    replies.slice(0, -1).forEach((r, i) => {
      const bytes = r.chunk as Uint8Array;
      if (bytes.byteLength !== size || bytes[0] !== i % 256 || bytes[size - 1] !== i % 256) wrong++;
    });
    assert.equal(wrong, 0, 'every chunk whole and in order');
    assert.equal(replies.at(-1)!.done, true);
    await c.close();
  });

  test('a request may ask for a file type the endpoint produces; it comes whole, base64 in JSON and bytes in msgpack', async () => {
    const c = await Client.open(`${ws}/inference/image`);
    const input = { text: 'ws', width: 32, height: 16 };
    const expected = Buffer.from(renderPng({ ...input, pattern: 'waves' }));
    c.send({ id: 'png', input, accept: 'image/png' });
    const [json] = await c.finished('png');
    assert.equal(json!.encoding, 'base64');
    assert.equal(json!.content_type, 'image/png');
    assert.ok(Buffer.from(json!.result as string, 'base64').equals(expected));
    c.sendPacked({ id: 'png2', input, accept: 'image/png' });
    const [packed] = await c.finished('png2');
    assert.equal(packed!.content_type, 'image/png');
    assert.ok(Buffer.from(packed!.result as Uint8Array).equals(expected));
    c.send({ id: 'pdf', input, accept: 'application/pdf' });
    assert.equal((await c.finished('pdf'))[0]!.error!.code, 'SY_NOT_ACCEPTABLE');
    await waitFor(() => !readdirSync(imageDir).some((f) => f.endsWith('.png')), 5000, 'the files to be removed');
    await c.close();
  });

  test('timeout_ms bounds a request: it fails with SY_DEADLINE_EXCEEDED and the work is aborted', async () => {
    const c = await Client.open(`${ws}/inference/b`);
    const mark = `ws-deadline-${Date.now()}`;
    c.send({ id: 't', input: { action: 'hang', mark }, timeout_ms: 150 });
    assert.equal((await c.finished('t'))[0]!.error!.code, 'SY_DEADLINE_EXCEEDED');
    await waitFor(() => marked(`${mark}.aborted`), 5000, 'the predictor to see the abort');
    await c.close();
  });

  test('API keys: only the Authorization header of the upgrade counts', async () => {
    const refused = async (url: string, headers: Record<string, string> = {}) => {
      const err = (await Client.open(url, headers).then(
        () => assert.fail('the upgrade should be refused'),
        (e: unknown) => e,
      )) as { status: number; body: string };
      return { status: err.status, code: (JSON.parse(err.body) as { error: { code: string } }).error.code };
    };
    assert.deepEqual(await refused(`${ws}/inference/locked`), { status: 401, code: 'SY_UNAUTHORIZED' });
    assert.deepEqual(await refused(`${ws}/inference/locked?key=s3cret-key-1`), { status: 401, code: 'SY_UNAUTHORIZED' });
    assert.deepEqual(await refused(`${ws}/inference/locked`, { authorization: 'Bearer wrong-key-99' }), { status: 401, code: 'SY_UNAUTHORIZED' });
    const c = await Client.open(`${ws}/inference/locked`, { authorization: 'Bearer s3cret-key-1' });
    c.send({ id: 1, input: { value: 'in' } });
    assert.equal(((await c.finished(1))[0]!.result as { echo: string }).echo, 'in');
    await c.close();
  });

  test('an unknown endpoint is 404 on the upgrade; a plain GET on an endpoint (not an upgrade, not SSE) is 406', async () => {
    const err = (await Client.open(`${ws}/inference/nope`).catch((e: unknown) => e)) as { status: number };
    assert.equal(err.status, 404);
    const res = await fetch(`${gw.url}/inference/b`);
    assert.equal(res.status, 406);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'SY_NOT_ACCEPTABLE');
  });
});
