/**
 * WebSocket load: N sockets, K requests in flight on each, every request tagged with an id. It is
 * a closed loop (a finished request starts the next one on the same socket), so what it measures
 * is what a socket can complete, not an offered rate. Per request it times the first chunk, the
 * gaps between chunks and the completion; all of it goes into hdr histograms (latency.ts).
 *
 * The wire shape of requests and replies is not baked in: a `WsExchange` builds a request message
 * for an id and says what an incoming message is (a chunk, the end, an error, and of which id).
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { createLatencyHistogram, encodeHistogram, recordMs, summarize, type LatencySummary } from './latency.js';
import { round, type ErrorCounts, type LoadProgress } from './http-load.js';

/** What one incoming message means to the load generator. */
export interface WsReply {
  id: string;
  /** The message carries a chunk of a streamed answer. */
  chunk: boolean;
  /** The request is complete after this message. */
  final: boolean;
  /** The request failed; the code is counted (e.g. `SY_QUEUE_FULL`). Implies final. */
  error?: string;
}

export interface WsExchange {
  request(id: string): string | Buffer;
  /** undefined for messages that belong to no request (they are ignored). */
  classify(data: Buffer, isBinary: boolean): WsReply | undefined;
}

/**
 * Switchyard's WebSocket shape (docs/streaming.md), JSON text frames: `{"id","input","stream"}`
 * out; replies carry the id and one of `chunk` (a stream chunk), `done: true` (the end of a
 * stream), `result` (a unary answer) or `error` (`{code,message}`). A reply with the id and none
 * of these (a baseline's own answer shape) also completes its request.
 */
export function switchyardExchange(input: unknown, stream: boolean): WsExchange {
  const tail = `,"input":${JSON.stringify(input ?? {})}${stream ? ',"stream":true' : ''}}`;
  return {
    request: (id) => `{"id":${JSON.stringify(id)}${tail}`,
    classify(data) {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      } catch {
        return undefined;
      }
      if (message === null || typeof message !== 'object' || message.id === undefined || message.id === null) return undefined;
      const id = String(message.id);
      if (message.error !== undefined) {
        const code = (message.error as { code?: unknown } | null)?.code;
        return { id, chunk: false, final: true, error: typeof code === 'string' ? code : 'error' };
      }
      if ('chunk' in message) return { id, chunk: true, final: false };
      return { id, chunk: false, final: true };
    },
  };
}

export interface WsLoadOptions {
  url: string;
  sockets: number;
  inFlightPerSocket: number;
  durationS: number;
  warmupS?: number | undefined;
  timeoutS?: number;
  exchange: WsExchange;
  onProgress?: (progress: LoadProgress) => void;
  signal?: AbortSignal;
}

export interface WsLoadResult {
  kind: 'ws';
  url: string;
  sockets: number;
  inFlightPerSocket: number;
  durationS: number;
  /** Requests that completed without error. */
  requests: number;
  rps: number;
  errors: ErrorCounts;
  latency: LatencySummary;
  latencyHistogram: string;
  firstChunk: LatencySummary;
  firstChunkHistogram: string;
  chunkGap: LatencySummary;
  chunkGapHistogram: string;
  chunks: number;
  chunksPerS: number;
}

interface InFlight {
  sentAt: number;
  lastChunkAt: number;
}

export async function measureWs(options: WsLoadOptions): Promise<WsLoadResult> {
  if (!/^wss?:\/\//.test(options.url)) throw new Error(`url must start with ws:// or wss:// (got ${options.url})`);
  if (!Number.isInteger(options.sockets) || options.sockets < 1) throw new Error('sockets must be a positive integer');
  if (!Number.isInteger(options.inFlightPerSocket) || options.inFlightPerSocket < 1) throw new Error('inFlightPerSocket must be a positive integer');
  if (!(options.durationS > 0)) throw new Error('duration must be a positive number of seconds');

  const latency = createLatencyHistogram();
  const firstChunk = createLatencyHistogram();
  const chunkGap = createLatencyHistogram();
  const errors: ErrorCounts = { total: 0, byStatus: {}, connection: 0, timeouts: 0, mismatches: 0 };
  const timeoutMs = (options.timeoutS ?? 10) * 1000;
  let measuring = !(options.warmupS && options.warmupS > 0);
  let running = true;
  let completed = 0;
  let chunks = 0;
  let completedThisSecond = 0;
  let completedTotal = 0;
  let nextId = 0;
  const open = new Set<WebSocket>();

  const countError = (kind: 'connection' | 'timeouts' | string): void => {
    if (!measuring) return;
    errors.total++;
    if (kind === 'connection' || kind === 'timeouts') errors[kind]++;
    else errors.byStatus[kind] = (errors.byStatus[kind] ?? 0) + 1;
  };

  const drive = (ws: WebSocket): void => {
    const inFlight = new Map<string, InFlight>();
    const send = (): void => {
      if (!running || ws.readyState !== WebSocket.OPEN) return;
      const id = (nextId++).toString(36);
      inFlight.set(id, { sentAt: performance.now(), lastChunkAt: 0 });
      ws.send(options.exchange.request(id));
    };
    const finish = (id: string): void => {
      inFlight.delete(id);
      send();
    };
    ws.on('open', () => {
      for (let i = 0; i < options.inFlightPerSocket; i++) send();
    });
    ws.on('message', (data, isBinary) => {
      const reply = options.exchange.classify(toBuffer(data), isBinary);
      const request = reply && inFlight.get(reply.id);
      if (!reply || !request) return;
      const now = performance.now();
      if (reply.error !== undefined) {
        countError(reply.error);
        finish(reply.id);
        return;
      }
      if (reply.chunk) {
        if (measuring) {
          chunks++;
          if (request.lastChunkAt === 0) recordMs(firstChunk, now - request.sentAt);
          else recordMs(chunkGap, now - request.lastChunkAt);
        }
        request.lastChunkAt = now;
      }
      if (reply.final) {
        if (measuring) {
          recordMs(latency, now - request.sentAt);
          completed++;
          completedThisSecond++;
        }
        finish(reply.id);
      }
    });
    const sweep = setInterval(() => {
      const now = performance.now();
      for (const [id, request] of inFlight) {
        if (now - request.sentAt < timeoutMs) continue;
        countError('timeouts');
        finish(id);
      }
    }, 250);
    ws.on('close', () => {
      clearInterval(sweep);
      open.delete(ws);
      if (!running) return;
      for (let i = 0; i < inFlight.size; i++) countError('connection');
      inFlight.clear();
      // Reconnect after a pause, so a server that refuses sockets is not hammered in a tight loop.
      setTimeout(() => running && connect(), 100);
    });
  };

  const connect = (): WebSocket => {
    const ws = new WebSocket(options.url, { perMessageDeflate: false });
    ws.on('error', () => {
      // 'close' follows and does the accounting.
    });
    open.add(ws);
    drive(ws);
    return ws;
  };

  try {
    await connectAll(options.sockets, connect);
  } catch (err) {
    running = false;
    for (const ws of open) ws.terminate();
    latency.destroy();
    firstChunk.destroy();
    chunkGap.destroy();
    throw err;
  }
  if (!measuring) await sleep(options.warmupS! * 1000, options.signal);
  measuring = true;
  const startedAt = performance.now();
  const progress = options.onProgress
    ? setInterval(() => {
        completedTotal += completedThisSecond;
        options.onProgress!({ elapsedS: Math.round((performance.now() - startedAt) / 1000), lastSecond: completedThisSecond, total: completedTotal, errors: errors.total });
        completedThisSecond = 0;
      }, 1000)
    : undefined;
  await sleep(options.durationS * 1000, options.signal);
  running = false;
  const elapsedS = (performance.now() - startedAt) / 1000;
  if (progress) clearInterval(progress);
  for (const ws of open) ws.terminate();

  const result: WsLoadResult = {
    kind: 'ws',
    url: options.url,
    sockets: options.sockets,
    inFlightPerSocket: options.inFlightPerSocket,
    durationS: round(elapsedS, 3),
    requests: completed,
    rps: round(completed / elapsedS, 1),
    errors,
    latency: summarize(latency),
    latencyHistogram: encodeHistogram(latency),
    firstChunk: summarize(firstChunk),
    firstChunkHistogram: encodeHistogram(firstChunk),
    chunkGap: summarize(chunkGap),
    chunkGapHistogram: encodeHistogram(chunkGap),
    chunks,
    chunksPerS: round(chunks / elapsedS, 1),
  };
  latency.destroy();
  firstChunk.destroy();
  chunkGap.destroy();
  return result;
}

/** Opens the sockets and waits until all are open; fails with the first connection error. */
function connectAll(count: number, connect: () => WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    let pending = count;
    for (let i = 0; i < count; i++) {
      const ws = connect();
      const onError = (err: Error): void => reject(new Error(`cannot open a WebSocket to ${ws.url}: ${err.message}`));
      ws.once('error', onError);
      ws.once('open', () => {
        ws.off('error', onError);
        if (--pending === 0) resolve();
      });
    }
  });
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
