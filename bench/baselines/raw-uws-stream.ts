/**
 * The ceiling for streams and files: uWebSockets.js doing the same work inline on its own event
 * loop, with no worker threads, no routing, no credit. It answers the requests the gateway's demo
 * `stream` and `image` endpoints answer, with the same bytes:
 *
 *   POST /inference/stream {"text","chunks","stream":true}  chunked HTTP, the numbered answer lines
 *                                                           from a generator in this thread, with
 *                                                           write/onWritable backpressure
 *   WS   /inference/stream {"id","input","stream":true}     `{"id","chunk"}` per line, then
 *                                                           `{"id","done":true}`, pausing on
 *                                                           getBufferedAmount/drain
 *   POST /inference/image (Accept: image/png)               the PNG from memory (drawn once)
 *   POST /inference/image-disk (Accept: image/png)          the same PNG read from a file on every
 *                                                           request, as a plain read (what an mmap
 *                                                           addon would replace)
 *
 * Standalone like raw-uws.ts: it imports uWebSockets.js itself, not through native/. The only
 * project code it uses is the example's own drawing, so both sides send identical bytes.
 *
 * Usage: node dist/bench/baselines/raw-uws-stream.js [port]   (0 or none: any free port)
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import uWS from 'uWebSockets.js';
import { renderPng, type Picture } from '../../examples/image/predictor.js';

const port = Number(process.argv[2] ?? 0);
const WS_HIGH_WATER = 1024 * 1024;

function* answer(text: string, chunks: number): Generator<string> {
  for (let i = 1; i <= chunks; i++) yield `Answer for ${text} is: ${i}\n\n`;
}

interface StreamInput {
  text?: unknown;
  chunks?: unknown;
}

function question(input: StreamInput): { text: string; chunks: number } {
  const chunks = typeof input.chunks === 'number' && Number.isInteger(input.chunks) && input.chunks > 0 ? Math.min(input.chunks, 1000) : 5;
  return { text: typeof input.text === 'string' && input.text ? input.text : '[Empty question]', chunks };
}

/** Reads a whole body (copying: uWS detaches each chunk when its callback returns). */
function readBody(res: uWS.HttpResponse, done: (body: Buffer) => void): void {
  const parts: Buffer[] = [];
  res.onData((chunk, isLast) => {
    parts.push(Buffer.from(new Uint8Array(chunk)));
    if (isLast) done(Buffer.concat(parts));
  });
}

function parseJson(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const pictures = new Map<string, Buffer>();
function picture(input: Record<string, unknown>): Buffer {
  const p: Picture = {
    text: typeof input.text === 'string' ? input.text : '',
    width: typeof input.width === 'number' ? input.width : 256,
    height: typeof input.height === 'number' ? input.height : 256,
    pattern: input.pattern === 'noise' ? 'noise' : 'waves',
  };
  const key = JSON.stringify(p);
  let png = pictures.get(key);
  if (!png) {
    png = Buffer.from(renderPng(p));
    pictures.set(key, png);
  }
  return png;
}

const diskDir = mkdtempSync(path.join(os.tmpdir(), 'raw-uws-stream-'));
const onDisk = new Map<string, { file: string; size: number }>();
function pictureOnDisk(input: Record<string, unknown>): { file: string; size: number } {
  const png = picture(input);
  const key = png.subarray(0, 64).toString('base64') + png.length;
  let entry = onDisk.get(key);
  if (!entry) {
    entry = { file: path.join(diskDir, `${onDisk.size}.png`), size: png.length };
    writeFileSync(entry.file, png);
    onDisk.set(key, entry);
  }
  return entry;
}

const badRequest = (res: uWS.HttpResponse) =>
  res.cork(() => res.writeStatus('400 Bad Request').writeHeader('content-type', 'application/json').end('{"error":{"code":"SY_BAD_REQUEST","message":"invalid JSON"}}'));

const app = uWS.App();

app.get('/readyz', (res) => {
  res.end('ready');
});

app.post('/inference/stream', (res) => {
  let aborted = false;
  let resume: (() => void) | undefined;
  res.onAborted(() => {
    aborted = true;
    resume?.();
  });
  readBody(res, (body) => {
    const input = parseJson(body);
    if (!input) {
      badRequest(res);
      return;
    }
    const q = question(input);
    void (async () => {
      res.cork(() => res.writeStatus('200 OK').writeHeader('content-type', 'text/plain; charset=utf-8'));
      res.onWritable(() => {
        resume?.();
        return true;
      });
      for (const line of answer(q.text, q.chunks)) {
        if (aborted) return;
        let ok = true;
        res.cork(() => {
          ok = res.write(line);
        });
        if (!ok) {
          await new Promise<void>((resolve) => (resume = resolve));
          resume = undefined;
          // uWS leaves its own buffer alone while a writable handler is set: flush it.
          if (!aborted) res.cork(() => undefined);
        }
      }
      if (!aborted) res.cork(() => res.end());
    })();
  });
});

function sendImage(res: uWS.HttpResponse, fromDisk: boolean): void {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  readBody(res, (body) => {
    const input = parseJson(body);
    if (!input) {
      badRequest(res);
      return;
    }
    if (!fromDisk) {
      const png = picture(input);
      res.cork(() => res.writeHeader('content-type', 'image/png').end(png));
      return;
    }
    const { file, size } = pictureOnDisk(input);
    void (async () => {
      const handle = await open(file, 'r');
      try {
        const bytes = Buffer.allocUnsafe(size);
        await handle.read(bytes, 0, size, 0);
        if (!aborted) res.cork(() => res.writeHeader('content-type', 'image/png').end(bytes));
      } finally {
        await handle.close();
      }
    })();
  });
}

app.post('/inference/image', (res) => sendImage(res, false));
app.post('/inference/image-disk', (res) => sendImage(res, true));

interface SocketData {
  /** Resolvers of generators waiting for the socket to drain. */
  waiting: Array<() => void>;
  closed: boolean;
}

app.ws<SocketData>('/inference/stream', {
  maxPayloadLength: 16 * 1024 * 1024,
  maxBackpressure: 4 * WS_HIGH_WATER,
  upgrade: (res, req, context) => {
    res.upgrade<SocketData>({ waiting: [], closed: false }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  message: (ws, message) => {
    const request = parseJson(Buffer.from(message));
    if (!request || request.id === undefined) {
      ws.send('{"id":null,"error":{"code":"SY_BAD_REQUEST","message":"invalid message"}}');
      return;
    }
    const head = `{"id":${JSON.stringify(request.id)},`;
    const q = question((request.input ?? {}) as StreamInput);
    const data = ws.getUserData();
    void (async () => {
      for (const line of answer(q.text, q.chunks)) {
        if (data.closed) return;
        if (ws.getBufferedAmount() >= WS_HIGH_WATER) {
          await new Promise<void>((resolve) => data.waiting.push(resolve));
          if (data.closed) return;
        }
        ws.cork(() => ws.send(`${head}"chunk":${JSON.stringify(line)}}`));
      }
      if (!data.closed) ws.cork(() => ws.send(`${head}"done":true}`));
    })();
  },
  drain: (ws) => {
    const data = ws.getUserData();
    const waiting = data.waiting;
    data.waiting = [];
    for (const resolve of waiting) resolve();
  },
  close: (ws) => {
    const data = ws.getUserData();
    data.closed = true;
    for (const resolve of data.waiting) resolve();
  },
});

// Without a catch-all, uWS closes the connection of a request that matches no route.
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json').end('{"error":{"code":"SY_NOT_FOUND","message":"no such route"}}');
});

app.listen('127.0.0.1', port, (listenSocket) => {
  if (!listenSocket) {
    console.error(`raw-uws-stream: cannot listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
  console.log(`listening on http://127.0.0.1:${uWS.us_socket_local_port(listenSocket)}`);
});

process.on('SIGTERM', () => process.exit(0));
