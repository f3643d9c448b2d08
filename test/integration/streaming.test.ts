import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { startServer, type RunningServer } from '../../bench/lib/processes.js';
import { example, fixture, startGateway, tempDir, waitFor, type TestGateway } from '../helpers/gateway.js';

/**
 * One HTTP/1.1 POST on its own socket, the response parsed as it arrives: status, headers, and a
 * chunked body split into its chunks, so a test sees exactly what went over the wire (chunk
 * boundaries, a missing terminating chunk, a cut connection) and can read as slowly as it likes.
 */
class RawExchange {
  readonly socket: Socket;
  status = 0;
  headers: Record<string, string> = {};
  /** Chunks kept when `keepChunks`; `onChunk` sees every chunk either way. */
  readonly chunks: Buffer[] = [];
  bodyBytes = 0;
  /** The terminating zero-length chunk arrived. */
  complete = false;
  closed = false;
  private pending: Buffer = Buffer.alloc(0);
  private state: 'head' | 'size' | 'data' | 'crlf' | 'trailer' = 'head';
  private remaining = 0;
  private current: Buffer[] = [];
  private readonly settled: Promise<void>;

  constructor(
    port: number,
    urlPath: string,
    body: string,
    headers: Record<string, string> = {},
    private readonly options: { keepChunks?: boolean; onChunk?: (chunk: Buffer, index: number) => void } = { keepChunks: true },
  ) {
    this.socket = connect(port, '127.0.0.1');
    const head = [`POST ${urlPath} HTTP/1.1`, 'host: 127.0.0.1', 'content-type: application/json', `content-length: ${Buffer.byteLength(body)}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    this.socket.write(head.join('\r\n') + '\r\n\r\n' + body);
    this.socket.on('data', (data: Buffer) => this.take(data));
    this.settled = new Promise((resolve) => {
      this.socket.on('close', () => {
        this.closed = true;
        resolve();
      });
      this.socket.on('error', () => undefined);
    });
  }

  private chunkCount = 0;

  private take(data: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    for (;;) {
      if (this.state === 'head') {
        const end = this.pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const lines = this.pending.subarray(0, end).toString('latin1').split('\r\n');
        this.status = Number(lines[0]!.split(' ')[1]);
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(':');
          this.headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
        }
        this.pending = this.pending.subarray(end + 4);
        if (this.headers['transfer-encoding'] !== 'chunked') throw new Error(`expected a chunked response, got ${lines.join(' | ')}`);
        this.state = 'size';
      } else if (this.state === 'size') {
        const end = this.pending.indexOf('\r\n');
        if (end < 0) return;
        this.remaining = parseInt(this.pending.subarray(0, end).toString('latin1'), 16);
        this.pending = this.pending.subarray(end + 2);
        this.state = this.remaining === 0 ? 'trailer' : 'data';
      } else if (this.state === 'data') {
        if (this.pending.length === 0) return;
        const part = this.pending.subarray(0, this.remaining);
        this.current.push(part);
        this.remaining -= part.length;
        this.bodyBytes += part.length;
        this.pending = this.pending.subarray(part.length);
        if (this.remaining > 0) return;
        const chunk = this.current.length === 1 ? this.current[0]! : Buffer.concat(this.current);
        this.current = [];
        this.options.onChunk?.(chunk, this.chunkCount++);
        if (this.options.keepChunks) this.chunks.push(Buffer.from(chunk));
        this.state = 'crlf';
      } else if (this.state === 'crlf') {
        if (this.pending.length < 2) return;
        this.pending = this.pending.subarray(2);
        this.state = 'size';
      } else {
        if (this.pending.indexOf('\r\n') < 0) return;
        this.complete = true;
        this.socket.end();
        return;
      }
    }
  }

  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /** Resolves when the socket closed (the client ends it itself after a complete body). */
  closedOrComplete(): Promise<void> {
    return this.settled;
  }
}

const body = (value: unknown) => JSON.stringify(value);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const marker = (dir: string, name: string) => path.join(dir, name);

/** Events of an SSE body: `{event, data}` with multi-line data joined by "\n". */
function sseEvents(text: string): Array<{ event: string; data: string; id?: string }> {
  return text
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((block) => {
      let event = 'message';
      let id: string | undefined;
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
        else if (line === 'data:') data.push('');
      }
      return { event, data: data.join('\n'), ...(id === undefined ? {} : { id }) };
    });
}

describe('HTTP streams', () => {
  let gw: TestGateway;
  let port: number;
  const outputDir = tempDir();

  before(async () => {
    gw = await startGateway({
      endpoints: {
        b: { predictor: fixture('behaviours'), output_dir: outputDir },
        story: { predictor: example('stream/predictor.js'), settings: { interval_ms: 0 } },
      },
    });
    port = gw.gateway.port;
  });
  after(() => gw.close());

  test('chunked: the five chunks a fast generator yields in one turn arrive whole and in order, in one HTTP chunk', async () => {
    const x = new RawExchange(port, '/inference/story', body({ text: 'life', stream: true }));
    await x.closedOrComplete();
    assert.equal(x.status, 200);
    assert.equal(x.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(x.complete, true);
    assert.equal(x.text, [1, 2, 3, 4, 5].map((i) => `Answer for life is: ${i}\n\n`).join(''));
    assert.equal(x.chunks.length, 1, 'one write for the turn: the chunks were coalesced');
  });

  // Each framing: a generator with a pause between chunks (each chunk a turn of its own), and one
  // without (chunks coalesced per turn). Either way every chunk arrives, in order, with its seq.
  for (const ms of [0, 1]) {
    test(`SSE and NDJSON: 200 chunks ${ms ? 'a turn apart' : 'coalesced per turn'} arrive every one, in order, numbered`, async () => {
      const sse = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: body({ chunks: 200, ms, stream: true }) });
      const stream = sse.headers.get('x-switchyard-stream')!;
      const events = sseEvents(await sse.text());
      assert.deepEqual(events, [...Array.from({ length: 200 }, (_, i) => ({ event: 'message', data: `chunk ${i}\n`, id: `${stream}:${i + 1}` })), { event: 'end', data: '{}' }]);

      const nd = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: body({ chunks: 200, ms, stream: true }) });
      const lines = (await nd.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);
      assert.deepEqual(lines, [...Array.from({ length: 200 }, (_, i) => ({ seq: i + 1, chunk: `chunk ${i}\n` })), { done: true }]);

      const raw = new RawExchange(port, '/inference/b', body({ chunks: 200, ms, stream: true }));
      await raw.closedOrComplete();
      assert.equal(raw.complete, true);
      assert.equal(raw.text, Array.from({ length: 200 }, (_, i) => `chunk ${i}\n`).join(''));
    });
  }

  for (const accept of ['', 'text/event-stream', 'application/x-ndjson']) {
    test(`${accept || 'chunked'}: a lone chunk is delivered while the generator waits, not held for the next one`, async () => {
      const mark = `lone-${accept.replace(/\W/g, '') || 'raw'}-${Date.now()}`;
      // The second chunk is a minute away: the first must arrive on its own.
      const x = new RawExchange(port, '/inference/b', body({ chunks: 2, ms: 60_000, mark, stream: true }), accept ? { accept } : {});
      try {
        await waitFor(() => x.text.includes('chunk 0'), 15_000, 'the first chunk');
        assert.ok(!x.text.includes('chunk 1'));
        if (accept === 'text/event-stream') assert.match(x.text, /^id: [\w-]+:1\ndata: chunk 0\ndata: \n\n/);
        if (accept === 'application/x-ndjson') assert.equal(x.text, '{"seq":1,"chunk":"chunk 0\\n"}\n');
        if (!accept) assert.equal(x.text, 'chunk 0\n');
      } finally {
        x.socket.destroy();
      }
      await waitFor(() => existsSync(marker(outputDir, `${mark}.finally`)), 10_000, "the generator's finally");
    });
  }

  test('chunked: a client that stops reading parks its stream (no slot held, the generator paused); reading again resumes it', async () => {
    const mark = `park-${Date.now()}`;
    const chunks = 400;
    const size = 64 * 1024;
    const endpoint = gw.gateway.endpoints.get('b')!;
    const parked = () => endpoint.view().replicas.reduce((n, r) => n + r.parked, 0);
    let corrupt = 0;
    let offset = 0;
    const x = new RawExchange(port, '/inference/b', body({ chunks, size, mark, progress: true, stream: true }), {}, {
      keepChunks: false,
      // HTTP chunk boundaries carry no meaning: check every byte against the chunk it belongs to.
      onChunk: (chunk) => {
        for (let k = 0; k < chunk.length; k += 4096) if (chunk[k] !== Math.floor((offset + k) / size) % 256) corrupt++;
        offset += chunk.length;
      },
    });
    x.socket.pause();
    try {
      await waitFor(() => parked() === 1, 15_000, 'the stream to spend its credit and park');
      const produced = Number(readFileSync(marker(outputDir, `${mark}.progress`), 'utf8'));
      assert.ok(produced < chunks, `the generator is paused (${produced} of ${chunks} produced)`);
      assert.equal(endpoint.view().replicas[0]!.in_flight, 0, 'a parked stream holds no slot');
      x.socket.resume();
      await x.closedOrComplete();
    } finally {
      x.socket.destroy();
    }
    assert.equal(x.complete, true);
    assert.equal(x.bodyBytes, chunks * size);
    assert.equal(corrupt, 0, 'every chunk whole and in order');
    assert.equal(parked(), 0);
  });

  test('chunked: 200 chunks arrive complete and in order', async () => {
    const x = new RawExchange(port, '/inference/b', body({ chunks: 200, stream: true }));
    await x.closedOrComplete();
    assert.equal(x.complete, true);
    assert.equal(x.text, Array.from({ length: 200 }, (_, i) => `chunk ${i}\n`).join(''));
  });

  test('SSE: one event per chunk in order, newlines kept, then an end event', async () => {
    const res = await fetch(`${gw.url}/inference/story`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: body({ text: 'x', stream: true }) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    assert.equal(res.headers.get('cache-control'), 'no-cache');
    const stream = res.headers.get('x-switchyard-stream');
    assert.match(stream ?? '', /^[\w-]{20}$/);
    const events = sseEvents(await res.text());
    assert.deepEqual(events, [...[1, 2, 3, 4, 5].map((i) => ({ event: 'message', data: `Answer for x is: ${i}\n\n`, id: `${stream}:${i}` })), { event: 'end', data: '{}' }]);
  });

  test('SSE and NDJSON: a run of text beyond ASCII keeps every character of every chunk', async () => {
    const sse = await fetch(`${gw.url}/inference/story`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: body({ text: 'ünï ☃', chunks: 3, stream: true }) });
    assert.deepEqual(
      sseEvents(await sse.text()).map((e) => e.data),
      [...[1, 2, 3].map((i) => `Answer for ünï ☃ is: ${i}\n\n`), '{}'],
    );
    const nd = await fetch(`${gw.url}/inference/story`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: body({ text: 'ünï ☃', chunks: 3, stream: true }) });
    assert.deepEqual(
      (await nd.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown),
      [...[1, 2, 3].map((i) => ({ seq: i, chunk: `Answer for ünï ☃ is: ${i}\n\n` })), { done: true }],
    );
  });

  test('NDJSON framing on request: one line per chunk with its seq, then a done line; raw chunked carries the stream id in a header', async () => {
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: body({ chunks: 3, binary: true, stream: true }) });
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const lines = (await res.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      lines.slice(0, 3).map((l) => [l.seq, l.encoding, [...Buffer.from(l.chunk as string, 'base64')]]),
      [0, 1, 2].map((i) => [i + 1, 'base64', [0xff, 0xfe, i]]),
    );
    assert.deepEqual(lines.slice(3), [{ done: true }]);
    const text = await fetch(`${gw.url}/inference/story`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' }, body: body({ text: 't', chunks: 2, stream: true }) });
    assert.deepEqual(
      (await text.text()).split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown),
      [{ seq: 1, chunk: 'Answer for t is: 1\n\n' }, { seq: 2, chunk: 'Answer for t is: 2\n\n' }, { done: true }],
    );

    const x = new RawExchange(port, '/inference/b', body({ chunks: 2, stream: true }));
    await x.closedOrComplete();
    assert.match(x.headers['x-switchyard-stream'] ?? '', /^[\w-]{20}$/);
    assert.equal(x.text, 'chunk 0\nchunk 1\n');
  });

  test('chunked: a mid-stream failure sends the chunks so far, a final error line, and cuts the connection', async () => {
    const x = new RawExchange(port, '/inference/b', body({ chunks: 10, fail_at: 3, stream: true }));
    await x.closedOrComplete();
    assert.equal(x.status, 200);
    assert.equal(x.complete, false, 'no terminating chunk: the body must not pass for complete');
    const lines = x.text.split('\n').filter(Boolean);
    assert.deepEqual(lines.slice(0, 3), ['chunk 0', 'chunk 1', 'chunk 2']);
    const last = JSON.parse(lines[3]!) as { error: { code: string; message: string } };
    assert.equal(last.error.code, 'SY_PREDICTOR_ERROR');
    assert.match(last.error.message, /failed at chunk 3/);
    assert.equal(lines.length, 4);
  });

  test('SSE: a mid-stream failure is an error event with the code, and the response ends cleanly', async () => {
    const res = await fetch(`${gw.url}/inference/b`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/event-stream' }, body: body({ chunks: 10, fail_at: 2, stream: true }) });
    const events = sseEvents(await res.text());
    assert.deepEqual(
      events.slice(0, 2).map((e) => e.data),
      ['chunk 0\n', 'chunk 1\n'],
    );
    assert.equal(events.length, 3);
    assert.equal(events[2]!.event, 'error');
    assert.equal((JSON.parse(events[2]!.data) as { error: { code: string } }).error.code, 'SY_PREDICTOR_ERROR');
  });

  test('a stream request to a predictor without predictStream is 400 SY_STREAM_UNSUPPORTED', async () => {
    const echoGw = await startGateway({ endpoints: { e: { predictor: example('echo/predictor.js') } } });
    try {
      const res = await fetch(`${echoGw.url}/inference/e`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body({ stream: true }) });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'SY_STREAM_UNSUPPORTED');
    } finally {
      await echoGw.close();
    }
  });

  test('a chunk that met backpressure arrives whole as soon as the client reads, not with the next chunk', async () => {
    const mark = `held-${Date.now()}`;
    const size = 32 * 1024 * 1024; // more than the kernel's socket buffers hold: the write must wait
    const x = new RawExchange(port, '/inference/b', body({ chunks: 2, size, ms: 60_000, mark, stream: true }), {}, { keepChunks: false });
    const replica = gw.gateway.endpoints.get('b')!.replicas[0]!;
    try {
      x.socket.pause();
      // The chunk is larger than the stream's byte credit: the generator waits for the client now.
      await waitFor(() => [...replica.calls.values()].some((c) => c.seq >= 1), 10_000, 'the first chunk to reach the gateway');
      await sleep(500);
      x.socket.resume();
      // The next chunk is a minute away: the first can only complete if the gateway flushes it.
      await waitFor(() => x.bodyBytes === size, 15_000, 'all of the first chunk');
    } finally {
      x.socket.destroy();
    }
    await waitFor(() => existsSync(marker(outputDir, `${mark}.finally`)), 10_000, "the generator's finally");
  });

  for (const sse of [false, true]) {
    test(`${sse ? 'SSE' : 'chunked'}: a client that disconnects stops the generator in the worker`, async () => {
      const mark = `gone-${sse ? 'sse' : 'chunked'}-${Date.now()}`;
      let seen = 0;
      const x = new RawExchange(port, '/inference/b', body({ chunks: 100_000, ms: 20, mark, stream: true }), sse ? { accept: 'text/event-stream' } : {}, { onChunk: () => seen++ });
      await waitFor(() => seen >= 2, 10_000, 'the first chunks');
      x.socket.destroy();
      await waitFor(() => existsSync(marker(outputDir, `${mark}.finally`)), 10_000, "the generator's finally");
      assert.ok(existsSync(marker(outputDir, `${mark}.aborted`)), 'the AbortSignal fired');
      await waitFor(() => gw.gateway.endpoints.get('b')!.inFlight === 0, 5000, 'the token to be returned');
    });
  }
});

const CHUNK = 64 * 1024;
const CHUNKS = 1600; // 100 MiB
const MIB = 1024 * 1024;

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

describe('a slow reader of a fast 100 MiB stream', { skip: process.platform !== 'linux' && 'reads /proc for the gateway RSS' }, () => {
  let server: RunningServer;
  const dir = tempDir();

  before(async () => {
    const config = path.join(dir, 'switchyard.yaml');
    writeFileSync(
      config,
      [
        'server:',
        '  log_level: silent',
        'endpoints:',
        '  b:',
        `    predictor: ${JSON.stringify(fixture('behaviours'))}`,
        `    output_dir: ${JSON.stringify(dir)}`,
      ].join('\n') + '\n',
    );
    const main = fileURLToPath(new URL('../../gateway/cli/main.js', import.meta.url));
    server = await startServer({ command: process.execPath, args: (p) => [main, 'serve', '--config', config, '--port', String(p), '--host', '127.0.0.1'], readyPath: '/readyz' });
  });
  after(() => server?.stop());

  test('pauses the generator and keeps the gateway memory bounded, then delivers every byte in order', async (t) => {
    // Warm up the same path with 50 MiB at full speed: the baseline then includes what streaming
    // keeps allocated for good (heaps, allocator arenas, garbage between collections).
    const warm = new RawExchange(server.port, '/inference/b', body({ chunks: 800, size: CHUNK, stream: true }), {}, { keepChunks: false });
    await warm.closedOrComplete();
    assert.equal(warm.bodyBytes, 800 * CHUNK);
    const baseline = rssBytes(server.pid);

    const mark = `slow-${Date.now()}`;
    let corrupt = 0;
    const x = new RawExchange(server.port, '/inference/b', body({ chunks: CHUNKS, size: CHUNK, stream: true, mark, progress: true }), {}, {
      keepChunks: false,
      onChunk: (chunk, i) => {
        if (chunk.length !== CHUNK || chunk[0] !== i % 256 || chunk[CHUNK - 1] !== i % 256) corrupt++;
      },
    });
    // Slow phase: sip for a few seconds, long enough for an unbounded producer to finish 100 MiB.
    let peak = baseline;
    x.socket.pause();
    const slowUntil = Date.now() + 3000;
    while (Date.now() < slowUntil) {
      x.socket.resume();
      await new Promise((resolve) => x.socket.once('data', resolve));
      x.socket.pause();
      peak = Math.max(peak, rssBytes(server.pid));
      await sleep(25);
    }
    const produced = Number(readFileSync(path.join(dir, `${mark}.progress`), 'utf8'));
    const readSoFar = x.bodyBytes;
    t.diagnostic(`read ${(readSoFar / MIB).toFixed(1)} MiB, produced ${((produced * CHUNK) / MIB).toFixed(1)} MiB, gateway RSS +${((peak - baseline) / MIB).toFixed(1)} MiB`);
    assert.ok(!existsSync(path.join(dir, `${mark}.finally`)), 'the generator is paused, not finished');
    // What the generator got ahead of the reader: kernel socket buffers, uWS, and the stream credit.
    assert.ok(produced * CHUNK - readSoFar < 40 * MIB, `the generator ran ${((produced * CHUNK - readSoFar) / MIB).toFixed(1)} MiB ahead of the reader`);
    assert.ok(peak - baseline < 40 * MIB, `gateway RSS grew by ${((peak - baseline) / MIB).toFixed(1)} MiB while 100 MiB were pending`);

    x.socket.resume();
    await x.closedOrComplete();
    assert.equal(x.complete, true);
    assert.equal(x.bodyBytes, CHUNKS * CHUNK);
    assert.equal(corrupt, 0, 'every chunk arrived whole and in order');
    await waitFor(() => existsSync(path.join(dir, `${mark}.finally`)), 5000, "the generator's finally");
  });
});
